"""``seq2seq export RUN --format onnx --out DIR``: a trained text run as two ONNX graphs
(:mod:`seq2seq.export.graphs`), its vocabularies and tokenizer models, its config and a
checksummed ``manifest.json`` (:mod:`seq2seq.export.manifest`).

Exported with PyTorch's TorchScript-based exporter (``dynamo=False``): the dynamo-based
one graph-breaks on RNNs (pytorch #118740, #126339), and RNN cells export from CPU only
(pytorch #51553), so the run is loaded on the CPU.  Before anything is written, both
graphs run once in onnxruntime on a padded batch with a beam of two and are compared
with PyTorch's step, so a graph that would decode differently is refused, not shipped.
``--quantize int8`` applies onnxruntime's dynamic quantization (int8 weights, activations
quantized per call) to the graphs' matrix products and RNN ops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import torch

from seq2seq.config import dump_config, load_config
from seq2seq.data.vocab import Vocabulary
from seq2seq.errors import Seq2SeqError
from seq2seq.export.graphs import (EncoderGraph, ForecastDecoderGraph, ForecastEncoderGraph, StepGraph,
                                   check_exportable)
from seq2seq.export.manifest import FORMAT, VERSION, require_onnx, write_manifest
from seq2seq.export.runtime import Graph, OnnxForecastModel

DEFAULT_OPSET = 17
TOLERANCE = 1e-4          # fp32 export check: largest |onnxruntime - PyTorch| on the sample


def _sample(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Two padded sources of unequal length (so the packed encoder path is traced)."""
    first = Vocabulary.eos_id + 1                              # past the specials
    encoder = model.encoder
    vocab = (encoder.embedding if hasattr(encoder, "embedding") else encoder.embed.embedding).num_embeddings
    src = torch.randint(first, max(first + 1, vocab), (2, 6), generator=torch.Generator().manual_seed(0))
    src[1, 4:] = Vocabulary.pad_id
    return src, torch.tensor([6, 4])


def _axes(names: list[str], kinds: dict[str, dict[int, str]]) -> dict[str, dict[int, str]]:
    return {n: kinds[n.removesuffix("_out")] for n in names if n.removesuffix("_out") in kinds}


def _dynamic_axes(batch: str) -> dict[str, dict[int, str]]:
    """Dynamic dimensions of every named tensor; ``batch`` names the per-row axis."""
    return {"src": {0: "batch", 1: "src_len"}, "src_lengths": {0: "batch"}, "prev": {0: batch},
            "h": {1: batch}, "c": {1: batch}, "feed": {0: batch}, "coverage": {0: batch, 1: "src_len"},
            "mask": {0: "sources", 1: "src_len"}, "keys": {0: "sources", 1: "src_len"},
            "memory_proj": {0: "sources", 1: "src_len"}, "states": {0: "sources", 1: "src_len"},
            "context": {0: "sources"}, "logits": {0: batch}, "attention": {0: batch, 1: "src_len"},
            "self_k": {1: batch, 3: "steps"}, "self_v": {1: batch, 3: "steps"},
            "cross_k": {1: "sources", 3: "src_len"}, "cross_v": {1: "sources", 3: "src_len"}}


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's and quantizer's chatter: Python warnings (tracer notes on
    Python ints in shapes), C++ log lines on file descriptor 2 (``prim::PackPadded`` has
    no shape inference; the graph's shapes are checked by running it) and onnxruntime's
    quantization advice on the root logger."""
    sys.stderr.flush()
    saved = os.dup(2)
    level = logging.getLogger().level
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger().setLevel(logging.ERROR)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        logging.getLogger().setLevel(level)


def _export(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            axes: dict, opset: int) -> None:
    try:
        with _quiet():
            torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                              dynamic_axes=_axes(input_names + output_names, axes), opset_version=opset,
                              do_constant_folding=True, dynamo=False)
    except Exception as e:        # the exporter's errors are many and deep: one line, and nothing written
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise Seq2SeqError(f"cannot export: the ONNX exporter failed on {path.name} (opset {opset}): "
                           f"{type(e).__name__}: {first[:300]}") from None


def _graph_signature(path: Path) -> dict:
    """Input and output names, element types and shapes (named dims for dynamic axes)."""
    import onnx

    graph = onnx.load(str(path)).graph

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type).lower(),
                        "shape": dims})
        return out

    return {"inputs": describe(graph.input), "outputs": describe(graph.output)}


def _step_inputs(step: StepGraph, named: dict, src_len: int, gen: Optional[torch.Generator] = None) -> dict:
    """Decoder-step inputs for a beam of 2 on each source of the encoder outputs ``named``:
    ``<bos>``, zero ``feed`` / ``coverage`` and a key/value cache of 2 positions (tracing),
    or random tokens, ``feed``, ``coverage`` and a cache of 3 positions from ``gen`` (the
    check: another prefix length than the traced one)."""
    sources = named["mask"].size(0) if "mask" in named else named["h"].size(1)
    index = torch.arange(sources).repeat_interleave(2)
    rows, d = index.numel(), step.decoder
    inputs = {"prev": torch.full((rows,), Vocabulary.bos_id) if gen is None else
              torch.randint(Vocabulary.eos_id + 1, d.vocab_size, (rows,), generator=gen)}
    for name in step.input_names[1:]:
        if name in ("h", "c"):
            inputs[name] = named[name].index_select(1, index)
        elif name in ("feed", "coverage", "self_k", "self_v"):
            if name in ("self_k", "self_v"):                   # (layers, rows, heads, t, d_k)
                layers, _, heads, _, size = named["cross_k"].shape
                shape = (layers, rows, heads, 2 if gen is None else 3, size)
            else:
                shape = (rows, d.hidden_size if name == "feed" else src_len)
            inputs[name] = torch.zeros(shape) if gen is None else torch.rand(shape, generator=gen)
        else:
            inputs[name] = named[name]
    return inputs


def _check(folder: Path, encoder: EncoderGraph, step: StepGraph, src: torch.Tensor, lengths: torch.Tensor
           ) -> float:
    """Run both graphs in onnxruntime on the sample (random state, a beam of 2) and return
    the largest difference from PyTorch.

    Raises:
        Seq2SeqError: a difference above TOLERANCE."""
    with torch.no_grad():
        expected = dict(zip(encoder.output_names, encoder(src, lengths)))
    got = Graph(folder / "encoder.onnx", 1)({"src": src, "src_lengths": lengths})
    worst = max(float((got[k].float() - v.float()).abs().max()) for k, v in expected.items())
    feeds = _step_inputs(step, expected, src.size(1), torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = dict(zip(step.output_names, step(*feeds.values())))
    got = Graph(folder / "decoder_step.onnx", 1)(feeds)
    worst = max(worst, *(float((got[k] - v).abs().max()) for k, v in expected.items()))
    if worst > TOLERANCE:
        raise Seq2SeqError(f"cannot export: onnxruntime differs from PyTorch by {worst:.2e} on a sample batch "
                           f"(limit {TOLERANCE:g}); nothing was written")
    return worst


def _quantize(folder: Path, names: tuple[str, ...] = ("encoder.onnx", "decoder_step.onnx")) -> None:
    """int8 dynamic quantization of each graph's matrix products, in place.

    Products with a single output column (the additive attention's v_a^T) stay fp32:
    quantizing their large (.., S, A) input on every call costs more than the product.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in names:
        fp32 = folder / name
        tmp = folder / f"{name}.fp32"
        fp32.rename(tmp)
        graph = onnx.load(str(tmp)).graph
        columns = {i.name: i.dims[-1] for i in graph.initializer if len(i.dims) == 2}
        keep = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")
                and any(columns.get(x) == 1 for x in n.input)]
        with _quiet():
            quantize_dynamic(str(tmp), str(fp32), weight_type=QuantType.QInt8, nodes_to_exclude=keep)
        tmp.unlink()


def write_graphs(model: torch.nn.Module, folder: Path, opset: int = DEFAULT_OPSET, quantize: Optional[str] = None
                 ) -> dict:
    """Write ``encoder.onnx`` and ``decoder_step.onnx`` of ``model`` (eval mode, CPU) into ``folder``.

    Returns:
        Per graph its file, inputs and outputs (names, dtypes, shapes), and
        ``fp32_max_abs_error``: the largest difference from PyTorch on the sample.

    Raises:
        Seq2SeqError: a model that cannot be exported yet, or fp32 graphs that do not
            reproduce PyTorch's encoder and step within TOLERANCE.
    """
    check_exportable(model)
    encoder, step = EncoderGraph(model).eval(), StepGraph(model.decoder).eval()
    src, lengths = _sample(model)
    with torch.no_grad():
        _export(encoder, (src, lengths), folder / "encoder.onnx", ["src", "src_lengths"], encoder.output_names,
                _dynamic_axes("batch"), opset)
        named = dict(zip(encoder.output_names, encoder(src, lengths)))
        inputs = _step_inputs(step, named, src.size(1))                      # traced with a beam of 2
        _export(step, tuple(inputs.values()), folder / "decoder_step.onnx", step.input_names, step.output_names,
                _dynamic_axes("rows"), opset)
    error = _check(folder, encoder, step, src, lengths)
    if quantize:
        _quantize(folder)
    return {"encoder": {"file": "encoder.onnx", **_graph_signature(folder / "encoder.onnx")},
            "decoder_step": {"file": "decoder_step.onnx", **_graph_signature(folder / "decoder_step.onnx")},
            "fp32_max_abs_error": error}


def write_forecast_graphs(model: torch.nn.Module, folder: Path, config, opset: int = DEFAULT_OPSET,
                          quantize: Optional[str] = None) -> dict:
    """Write ``encoder.onnx`` and ``decoder.onnx`` of a forecast model into ``folder``.

    Args:
        model: a :class:`~seq2seq.forecast.model.ForecastModel` (eval mode, CPU).
        config: the run's :class:`~seq2seq.config.ForecastConfig` (window sizes of the sample).

    Returns:
        Per graph its file, inputs and outputs, and ``fp32_max_abs_error``: the largest
        difference between the forecasts of onnxruntime and PyTorch on the sample.

    Raises:
        Seq2SeqError: a decoder without inputs, or fp32 graphs that do not reproduce
            PyTorch's forecasts within TOLERANCE.
    """
    if model.decoder.input_features == 0:
        raise Seq2SeqError("cannot export: a forecast decoder without inputs (no calendar features and "
                           "model.decoder.feed_previous_output false)")
    encoder, decoder = ForecastEncoderGraph(model).eval(), ForecastDecoderGraph(model).eval()
    input_len, horizon = config.data.input_len, config.data.horizon
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, input_len, model.values + model.calendar, generator=gen)
    with torch.no_grad():
        _export(encoder, (x,), folder / "encoder.onnx", ["x"], encoder.output_names,
                {"x": {0: "batch", 1: "input_len"}, **_dynamic_axes("batch")}, opset)
        named = dict(zip(encoder.output_names, encoder(x)))
        inputs = torch.randn(2, 2, model.decoder.input_features, generator=gen)   # two steps: any count works
        _export(decoder, (inputs, *(named[n] for n in decoder.input_names[1:])), folder / "decoder.onnx",
                decoder.input_names, decoder.output_names,
                {"inputs": {0: "batch", 1: "steps"}, "outputs": {0: "batch", 1: "steps"},
                 "states": {0: "batch", 1: "input_len"}, "keys": {0: "batch", 1: "input_len"},
                 **{k: v for k, v in _dynamic_axes("batch").items() if k in ("h", "c")}}, opset)
    past = torch.randn(2, input_len, model.values, generator=gen)
    past_cal = torch.rand(2, input_len, model.calendar, generator=gen)
    future_cal = torch.rand(2, horizon, model.calendar, generator=gen)
    graphs = OnnxForecastModel(folder / "encoder.onnx", folder / "decoder.onnx", config.model, model.values,
                               model.calendar, threads=1)
    with torch.no_grad():
        error = float((graphs(past, past_cal, future_cal) - model(past, past_cal, future_cal)).abs().max())
    if error > TOLERANCE:
        raise Seq2SeqError(f"cannot export: onnxruntime's forecasts differ from PyTorch's by {error:.2e} on a "
                           f"sample (limit {TOLERANCE:g}); nothing was written")
    if quantize:
        _quantize(folder, ("encoder.onnx", "decoder.onnx"))
    return {"encoder": {"file": "encoder.onnx", **_graph_signature(folder / "encoder.onnx")},
            "decoder": {"file": "decoder.onnx", **_graph_signature(folder / "decoder.onnx")},
            "fp32_max_abs_error": error}


def export_onnx(run_dir: str | Path, out: str | Path, checkpoint: str = "best", quantize: Optional[str] = None,
                opset: int = DEFAULT_OPSET, overwrite: bool = False) -> dict:
    """Export a trained text or forecast run for onnxruntime (or any ONNX runtime).

    Args:
        run_dir: the run directory (``seq2seq train``).
        out: the directory to write; it must not exist or be empty unless ``overwrite``.
        checkpoint: ``best``, ``last`` or ``averaged``.
        quantize: None (fp32) or ``int8`` (dynamic quantization of the weights).
        opset: the ONNX opset (>= 14).
        overwrite: replace an existing ``out`` (only after the new export succeeded).

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        Seq2SeqError: a model that cannot be exported yet (one line: why), an existing
            ``out``, an fp32 graph that does not reproduce PyTorch, or a bad option.
    """
    require_onnx()
    import onnx
    import onnxruntime

    from seq2seq import __version__
    from seq2seq.api import Seq2Seq

    if quantize not in (None, "int8"):
        raise Seq2SeqError(f"--quantize must be int8, not {quantize!r}")
    if opset < 14:
        raise Seq2SeqError(f"--opset must be at least 14 (got {opset})")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise Seq2SeqError(f"{out}: exists and is not empty (choose another --out, or pass --overwrite)")
    config_file = Path(run_dir) / "config.yaml"
    task = load_config(config_file).task if config_file.is_file() else "text"   # the loaders name a missing file
    if task == "forecast":
        from seq2seq.forecast.api import Forecaster

        loaded = Forecaster.load(run_dir, checkpoint, device="cpu")
    else:
        loaded = Seq2Seq.load(run_dir, checkpoint, device="cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if task == "forecast":
            graphs = write_forecast_graphs(loaded.model, tmp, loaded.config, opset, quantize)
            shutil.copyfile(Path(run_dir) / "scalers.json", tmp / "scalers.json")
        else:
            graphs = write_graphs(loaded.model, tmp, opset, quantize)
            loaded.corpus.save(tmp)
        dump_config(loaded.config, tmp / "config.yaml")
        manifest = {
            "format": FORMAT, "version": VERSION, "task": task, "source_run": str(Path(run_dir).resolve()),
            "checkpoint": checkpoint, "quantization": quantize, "opset": opset, "exporter": "torchscript",
            "fp32_max_abs_error": graphs.pop("fp32_max_abs_error"),
            "versions": {"seq2seq": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__},
            "graphs": graphs,
            "config": loaded.config.model_dump(),
        }
        manifest = write_manifest(tmp, manifest)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest
