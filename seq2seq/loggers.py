"""Training loggers: ``RUN/metrics.jsonl`` (always) and TensorBoard event files (optional).

``training.loggers: [tensorboard]`` adds :class:`TensorBoardLog`, which writes
``RUN/tensorboard/events.out.tfevents.*``; view it with ``tensorboard --logdir RUN``.
It needs the optional extra: ``pip install 'seq2seq[tensorboard]'``.

Importing this module is cheap: torch, tensorboard and matplotlib are imported
only when a logger that needs them is used.
"""

from __future__ import annotations

import json
from pathlib import Path

from seq2seq.errors import Seq2SeqError

LOGGERS = ("tensorboard",)   # the valid names in ``training.loggers``


class MetricsLog:
    """``RUN/metrics.jsonl``: one JSON object per line, e.g. ``{"split": "train", "step": 100, "loss": 2.3}``.

    ``records`` holds every row so far, in order (the trainer's plots read it).
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.records: list[dict] = []

    def log(self, record: dict) -> None:
        """Append ``record`` (JSON-serialisable, with ``step``) to the file and to ``records``."""
        line = json.dumps(record) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
        self.records.append(record)

    def truncate(self, step: int) -> None:
        """On resume from ``step``: keep the file's rows with ``row["step"] <= step`` (rewritten
        atomically) and load them into ``records``. A missing file leaves ``records`` empty; a torn
        last line (a crash mid-append) is dropped.

        Raises:
            Seq2SeqError: a line other than a torn last one is not JSON, or a row has no ``step``.
        """
        from seq2seq.checkpoint import atomic_write_text   # imports torch; keep module import cheap

        if not self.path.exists():
            self.records = []
            return
        text = self.path.read_text(encoding="utf-8")
        lines, rows = text.splitlines(), []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                row["step"]
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                if i == len(lines) and not text.endswith("\n"):
                    break                                  # torn by a crash mid-append
                raise Seq2SeqError(f"{self.path}:{i}: not a metrics row with a 'step' ({e}); "
                                   f"delete the line or the file to resume") from None
            rows.append(row)
        self.records = [r for r in rows if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def close(self) -> None:
        """Nothing to release (every line is written when logged)."""


class TensorBoardLog:
    """``RUN/tensorboard/`` event files: scalars per record and an attention heatmap image.

    Args:
        run_dir: the run directory.
        resume_step: when resuming from this step, events logged after it by the
            interrupted run are hidden (TensorBoard's ``purge_step``), as
            :meth:`MetricsLog.truncate` drops their rows.

    Raises:
        Seq2SeqError: the ``tensorboard`` package is not installed.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        try:
            import tensorboard  # noqa: F401  (torch's SummaryWriter needs it)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise Seq2SeqError("training.loggers: 'tensorboard' needs the tensorboard package; "
                               "install it with: pip install 'seq2seq[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                    purge_step=None if resume_step is None else resume_step + 1)

    def log(self, record: dict) -> None:
        """Write each numeric value (int/float, not bool) except ``step``/``epoch`` as the scalar
        ``f"{record['split']}/{key}"`` (``train/loss``, ``valid/wer``, ``train/lr``,
        ``train/tokens_per_s``) at ``global_step=record["step"]``; values keep the record's units.

        Raises:
            KeyError: the record has no ``split`` or ``step``.
        """
        split, step = record["split"], record["step"]
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{split}/{key}", value, global_step=step)

    def log_attention(self, step: int, attention, source_tokens: list[str], target_tokens: list[str]) -> None:
        """Write one example's attention as the image ``valid/attention`` at ``step``.

        Args:
            attention: (tgt_len, src_len) weights in [0, 1], an array, nested list or tensor
                (any device); one row more than ``target_tokens`` is labelled ``<eos>``.
            source_tokens: src_len column labels; target_tokens: row labels.

        Raises:
            ValueError: the labels do not fit the matrix.
        """
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        from seq2seq.plotting import attention_figure

        canvas = FigureCanvasAgg(attention_figure(attention, source_tokens, target_tokens))
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()             # (H, W, 3) uint8
        self.writer.add_image("valid/attention", rgb, global_step=step, dataformats="HWC")

    def close(self) -> None:
        """Flush pending events to disk and close the event file."""
        self.writer.close()


def build_loggers(names: list[str], run_dir: Path, resume_step: int | None = None) -> list:
    """The optional loggers named in ``training.loggers`` (``[]`` or ``["tensorboard"]``), once each.

    :class:`MetricsLog` is not among them: it is always on and the trainer keeps it itself.

    Raises:
        Seq2SeqError: an unknown name (the message lists the valid ones), or tensorboard missing.
    """
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise Seq2SeqError(f"training.loggers: unknown logger {unknown[0]!r}; "
                           f"valid: {', '.join(LOGGERS)} (metrics.jsonl is always written)")
    return [TensorBoardLog(run_dir, resume_step=resume_step) for n in dict.fromkeys(names) if n == "tensorboard"]
