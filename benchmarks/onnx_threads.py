"""onnxruntime's threads against our search's: words/s of the exported identical model
(fp32 and int8) under three settings, in interleaved rounds, beside PyTorch fp32.

Between two decoder steps our search runs torch operations (top-k, reordering); with
``--threads`` > 1 onnxruntime's pool threads and torch's compete for the cores. Settings:

1. ``spin, torch N``: onnxruntime's default (pool threads spin between runs), torch at N;
2. ``sleep, torch N``: pool threads sleep between runs (``session.intra_op.allow_spinning 0``);
3. ``sleep, torch 1``: as 2, and the search's torch operations on one thread (what
   ``seq2seq.export.runtime`` does now: ``OnnxEncoderDecoder.search_threads``).

The model is trained ``--train-steps`` updates on the peers' common G2P data, then decodes the
first ``--words`` g014b2b test words, greedy and beam 5, once per setting and round.

    python benchmarks/onnx_threads.py [--threads 2] [--rounds 3] [--words 4000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import seq2seq.export.runtime as runtime  # noqa: E402
from decode_speed import IDENTICAL, common_data, decode_ours, test_words, train_ours  # noqa: E402
from seq2seq.export.exporter import write_graphs  # noqa: E402


def session_factory(spin: bool):
    """runtime.session with the pool threads spinning or sleeping between runs."""
    def session(path: Path, threads: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--words", type=int, default=4000)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    n = args.threads
    torch.set_num_threads(n)
    dataset, sv, tv = common_data()
    model = train_ours(IDENTICAL, dataset, sv, tv, args.train_steps)
    words = test_words()[:args.words]
    settings = [(f"spin, torch {n}", True, n), (f"sleep, torch {n}", False, n), ("sleep, torch 1", False, 1)]
    results: dict[str, dict[str, list[float]]] = {}

    def record(name: str, decoder) -> None:
        for mode, beam in (("greedy", 1), ("beam5", 5)):
            speed = decode_ours(decoder, words, sv, tv, beam, repeats=1)["words_per_s"]
            results.setdefault(name, {}).setdefault(mode, []).append(round(speed, 1))

    original, original_threads = runtime.session, runtime.OnnxEncoderDecoder.search_threads
    try:
        with tempfile.TemporaryDirectory() as folder:
            exports = {}
            for kind in ("fp32", "int8"):
                exports[kind] = Path(folder, kind)
                exports[kind].mkdir()
                write_graphs(model, exports[kind], quantize="int8" if kind == "int8" else None)
            for r in range(args.rounds):
                torch.set_num_threads(n)
                record(f"PyTorch fp32, torch {n}", model)
                for kind, sub in exports.items():
                    for name, spin, search_threads in settings:
                        runtime.session = session_factory(spin)
                        runtime.OnnxEncoderDecoder.search_threads = search_threads
                        graphs = runtime.OnnxEncoderDecoder(sub / "encoder.onnx", sub / "decoder_step.onnx",
                                                            model.decoder.hidden_size, n)
                        record(f"onnxruntime {kind}, {name}", graphs)
                print(f"round {r + 1}: " + json.dumps(results), file=sys.stderr)
    finally:
        runtime.session, runtime.OnnxEncoderDecoder.search_threads = original, original_threads
    print(f"\n{args.words:,} test words, {n} threads, {args.rounds} interleaved rounds (words/s per round)")
    for name, modes in results.items():
        print(f"{name:36s} greedy {', '.join(f'{x:,.0f}' for x in modes['greedy']):28s} "
              f"beam 5 {', '.join(f'{x:,.0f}' for x in modes['beam5'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
