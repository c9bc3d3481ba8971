"""The models a server holds: a text run (decoded through :class:`~seq2seq.api.Seq2Seq`)
or a forecast run (:class:`~seq2seq.forecast.api.Forecaster`), each with the
:class:`~seq2seq.serve.batching.DynamicBatcher` whose worker thread alone calls it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Hashable, Optional

import numpy as np

from seq2seq.config import DecodeOptions
from seq2seq.errors import Seq2SeqError
from seq2seq.modules import num_parameters
from seq2seq.serve.batching import DynamicBatcher, Job


def _stack(cfg) -> str:
    """``bi-LSTM 2x256`` for an encoder / decoder config."""
    if getattr(cfg, "type", "rnn") == "transformer":
        return f"Transformer {cfg.layers}x{cfg.hidden_size} ({cfg.heads} heads)"
    bi = "bi-" if getattr(cfg, "bidirectional", False) else ""
    return f"{bi}{cfg.cell.upper()} {cfg.layers}x{cfg.hidden_size}"


class ServedModel:
    """One run, served under ``name``.

    Args:
        name: the URL name (the run directory's name unless given).
        run_dir: the run directory (an ensemble's: the list of its members').
        checkpoint: ``best``, ``last`` or ``averaged``.
    """

    task: str = ""

    def __init__(self, name: str, run_dir: Path | list[Path], checkpoint: str):
        self.name, self.run_dir, self.checkpoint = name, run_dir, checkpoint
        self.batcher: Optional[DynamicBatcher] = None

    def start(self, max_batch_size: int, max_wait_s: float, max_queue: int, on_batch=None) -> None:
        """Start the worker thread that owns this model."""
        self.batcher = DynamicBatcher(self.run_batch, max_batch_size, max_wait_s, max_queue, on_batch,
                                      name=f"serve-{self.name}")

    def submit(self, job: Job):
        """Queue a job on this model's worker (see :meth:`DynamicBatcher.submit`)."""
        return self.batcher.submit(job)

    def run_batch(self, key: Hashable, items: list) -> list:   # pragma: no cover - overridden
        raise NotImplementedError

    def info(self) -> dict:
        """What ``GET /v1/models`` says of this model."""
        raise NotImplementedError


class TextModel(ServedModel):
    """A text run: ``predict`` jobs keyed by their :class:`DecodeOptions`."""

    task = "text"

    def __init__(self, name: str, run_dir: Path | list[Path], checkpoint: str = "best", device: str = "auto"):
        from seq2seq.api import Seq2Seq

        super().__init__(name, run_dir, checkpoint)
        self.model = Seq2Seq.load(run_dir, checkpoint, device)       # a list of runs: their ensemble
        self.batch_size = self.model.config.decoding.batch_size

    def options(self, overrides: dict) -> DecodeOptions:
        """The run's decoding defaults with a request's overrides.

        Raises:
            Seq2SeqError: an invalid value or combination.
        """
        return self.model.decode_options(**overrides)

    def run_batch(self, key: DecodeOptions, items: list[str]) -> list:
        """Decode ``items`` (source texts) with options ``key``: per source, its
        :class:`~seq2seq.api.Prediction` list, best first."""
        options = {k: getattr(key, k) for k in DecodeOptions.model_fields}
        return self.model.predict(items, batch_size=max(self.batch_size, len(items)), with_scores=True, **options)

    def info(self) -> dict:
        c, m = self.model.config, self.model.config.model
        attention = "none" if m.decoder.attention == "none" else m.decoder.attention
        run = [str(r) for r in self.run_dir] if isinstance(self.run_dir, list) else str(self.run_dir)
        return {"name": self.name, "task": self.task, "run": run, "checkpoint": self.checkpoint,
                "architecture": f"encoder {_stack(m.encoder)}, decoder {_stack(m.decoder)}, attention {attention}",
                "parameters": num_parameters(self.model.model),
                "vocabulary": {"source": len(self.model.corpus.src_vocab), "target": len(self.model.corpus.tgt_vocab)},
                "tokenizers": {"source": c.data.src_tokenizer, "target": c.data.tgt_tokenizer},
                "decoding": c.decoding.model_dump()}


class ForecastModel(ServedModel):
    """A forecast run: one job per request (a list of series and a horizon)."""

    task = "forecast"

    def __init__(self, name: str, run_dir: Path, checkpoint: str = "best", device: str = "auto"):
        from seq2seq.forecast.api import Forecaster

        super().__init__(name, run_dir, checkpoint)
        self.model = Forecaster.load(run_dir, checkpoint, device)

    def run_batch(self, key: Hashable, items: list) -> list:
        """``items``: one ``(series, horizon)`` pair; returns ``[response dict]``."""
        (series, horizon), = items
        return [self.forecast(series, horizon)]

    def forecast(self, series: list, horizon: Optional[int]) -> dict:
        """Forecast every series; the JSON answer of ``POST .../forecast``.

        Raises:
            Seq2SeqError: horizon < 1 or a series shorter than ``data.input_len``.
        """
        d = self.model.config.data
        horizon = horizon or d.horizon
        table = self.model.forecast_table(series, horizon)
        quantiles = list(self.model.model.quantiles) if len(self.model.model.quantiles) > 1 else []
        shown = max(d.input_len, 3 * horizon)
        out = []
        for s in series:
            rows = table[table[d.id_column] == s.id] if d.id_column else table
            out.append({"id": s.id or None,
                        "history": {"time": _times(s.times[-shown:]),
                                    "values": {c: _floats(s.values[-shown:, j])
                                               for j, c in enumerate(d.value_columns)}},
                        "time": _times(rows[d.time_column].to_numpy()),
                        "values": {c: _floats(rows[c].to_numpy()) for c in d.value_columns},
                        "quantiles": {c: {f"{q:g}": _floats(rows[f"{c}_q{q:g}"].to_numpy()) for q in quantiles}
                                      for c in d.value_columns} if quantiles else {}})
        return {"model": self.name, "horizon": horizon, "quantiles": quantiles, "series": out}

    def info(self) -> dict:
        c = self.model.config
        m, d = c.model, c.data
        return {"name": self.name, "task": self.task, "run": str(self.run_dir), "checkpoint": self.checkpoint,
                "architecture": f"encoder {_stack(m.encoder)}, decoder {_stack(m.decoder)}, bridge {m.bridge}",
                "parameters": num_parameters(self.model.model),
                "columns": {"time": d.time_column, "values": list(d.value_columns), "id": d.id_column},
                "input_len": d.input_len, "horizon": d.horizon, "quantiles": list(m.quantiles)}


def _times(times: np.ndarray) -> list:
    """Times as JSON: ISO strings for dates (``2007-07-01``, or with the time of day
    where any has one), numbers otherwise."""
    if np.issubdtype(times.dtype, np.datetime64):
        days = times.astype("datetime64[D]")
        return [str(t) for t in (days if np.all(days == times) else times.astype("datetime64[s]"))]
    return [float(t) for t in times]


def _floats(values: np.ndarray) -> list[Optional[float]]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def load_model(run: str, checkpoint: str = "best", device: str = "auto", name: Optional[str] = None) -> ServedModel:
    """Load ``run`` as a text or a forecast model (its config's ``task``).

    Args:
        run: a run directory; ``NAME=DIR`` serves it under NAME; ``[NAME=]DIR1,DIR2,...``
            serves text runs as one ensemble (:meth:`seq2seq.api.Seq2Seq.ensemble`: the mean
            of the members' probabilities at each step), named after its members by default.

    Raises:
        Seq2SeqError: not a run directory, a forecast run in an ensemble, runs that cannot
            form an ensemble, or a missing / corrupt checkpoint.
    """
    from seq2seq.forecast.cli import is_forecast_run

    if name is None and "=" in run and not Path(run).exists():
        name, run = run.split("=", 1)
    members = run.split(",") if "," in run and not Path(run).exists() else [run]
    paths = [Path(r) for r in members]
    for member, path in zip(members, paths):
        if not (path / "config.yaml").is_file():
            raise Seq2SeqError(f"{member}: not a run directory (no config.yaml)")
    if len(paths) > 1:
        if any(is_forecast_run(path) for path in paths):
            raise Seq2SeqError(f"{run}: only text runs form an ensemble")
        return TextModel(name or "-".join(path.resolve().name for path in paths), paths, checkpoint, device)
    path = paths[0]
    cls = ForecastModel if is_forecast_run(path) else TextModel
    return cls(name or path.resolve().name, path, checkpoint, device)


def prediction_json(prediction: Any, scores: bool, attention: bool) -> dict:
    """One hypothesis as JSON: text and tokens; score and log-probability with
    ``scores``; the (steps, src_len) attention and its source tokens with ``attention``."""
    out = {"text": prediction.text, "tokens": prediction.tokens}
    if scores:
        out["score"], out["log_prob"] = prediction.score, prediction.log_prob
    if attention:
        out["source_tokens"] = prediction.source_tokens
        out["attention"] = prediction.attention.tolist() if prediction.attention is not None else None
    return out
