"""Decoding-speed benchmark: words per second, greedy and beam 5, on the 12,000
standard G2P test words (``../shared/data/g2p-cmudict-g014b2b/g014b2b.ref``).

Models, each trained for ``--train-steps`` updates of 64 words on the peers
README's common G2P data (so all decode with comparable quality):

1. ``identical``: ours, identical to OpenNMT-py's row in ``../shared/peers/README.md``
   (bi-LSTM 128/dir, LSTM decoder 256 with input feeding, additive attention, bridge);
2. ``default``: ours, the default G2P model of ``configs/g2p_cmudict.yaml``;
3. ``onmt``: OpenNMT-py 3.5.1 with the same model, trained and decoding in its own
   venv (``--onmt-env``; skipped when absent).  Its time is the ``Total translation
   time`` it reports (model loading excluded).  JoeyNMT is skipped when its venv
   (``--joey-env``) is absent.

Decoding: batches of 64 words, 2 threads, output capped at 40 tokens; ours is
timed around :func:`seq2seq.search.decode_dataset` (batching included).  This
machine's timings vary by +-20% from run to run, so every decoder (ours and
OpenNMT-py's) is timed ``--repeats`` times and the fastest run is reported.

    python benchmarks/decode_speed.py [--train-steps 2000] [--threads 2] [--json FILE]
    python benchmarks/decode_speed.py --threads 2 --models identical --kinds onnx_fp32 onnx_int8 --skip-onmt
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

import torch  # noqa: E402

from seq2seq.config import load_config  # noqa: E402
from seq2seq.data.batching import BucketSampler, ParallelDataset  # noqa: E402
from seq2seq.export.exporter import write_graphs  # noqa: E402
from seq2seq.export.runtime import OnnxEncoderDecoder  # noqa: E402
from seq2seq.metrics import word_error_rate  # noqa: E402
from seq2seq.models.encoder_decoder import EncoderDecoder  # noqa: E402
from seq2seq.search import DecodeOptions, decode_dataset  # noqa: E402
from train_speed import IDENTICAL, build_ours, common_data  # noqa: E402

TEST = HERE.parent.parent / "shared" / "data" / "g2p-cmudict-g014b2b" / "g014b2b.ref"
MAX_LEN = 40
KINDS = ["fp32", "bf16", "onnx_fp32", "onnx_int8"]


def test_words() -> list[str]:
    """The first column of g014b2b.ref, lower-cased."""
    return [line.split("\t", 1)[0].strip().lower() for line in TEST.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_references() -> list[list[list[str]]]:
    """Per test word, its reference pronunciations (stress-free phonemes)."""
    return [[r.split() for r in line.split("\t")[1:]] for line in TEST.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def wer(outputs: list[list[int]], tv, references) -> float:
    """G2P WER (%) against g014b2b.ref; the models predict stressed phonemes (the
    common data's), so stress digits are stripped first."""
    hyps = [[re.sub(r"\d", "", p) for p in tv.decode(ids)] for ids in outputs]
    return word_error_rate(hyps, references[:len(hyps)])


def decode_row(model, kind: str, words: list[str], sv, tv, beam: int, repeats: int, threads: int) -> dict:
    """Decode with PyTorch (``fp32``, ``bf16``), or export ``model``'s encoder and decoder
    step (``seq2seq.export``; ``onnx_fp32``, ``onnx_int8``) and decode through
    onnxruntime with the same search code."""
    if not kind.startswith("onnx"):
        return decode_ours(model, words, sv, tv, beam, repeats, kind)
    with tempfile.TemporaryDirectory() as folder:
        write_graphs(model, Path(folder), quantize="int8" if kind == "onnx_int8" else None)
        graphs = OnnxEncoderDecoder(Path(folder, "encoder.onnx"), Path(folder, "decoder_step.onnx"),
                                    model.decoder.hidden_size, threads)
        return decode_ours(graphs, words, sv, tv, beam, repeats)


def train_ours(model_cfg, dataset, sv, tv, steps: int) -> EncoderDecoder:
    """``steps`` updates of 64 words with the training-speed benchmark's step."""
    model, step = build_ours(model_cfg, sv, tv)
    sampler = BucketSampler(dataset.lengths(), 64, shuffle=True, seed=1, sort_key=dataset.sort_key())
    done, epoch = 0, 0
    while done < steps:
        batches = sampler.batches(epoch)[:steps - done]
        for idx in batches:
            step(dataset.batch(idx))
        done, epoch = done + len(batches), epoch + 1
    return model.eval()


def decode_ours(model, words: list[str], sv, tv, beam: int, repeats: int = 3, precision: str = "fp32") -> dict:
    ids = [sv.encode(list(w)) for w in words]
    dataset = ParallelDataset(ids, None, sv, tv)
    options = DecodeOptions(strategy="beam" if beam > 1 else "greedy", beam_size=beam, max_len=MAX_LEN,
                            max_len_a=0.0, max_len_b=MAX_LEN, precision=precision)
    decode_dataset(model, dataset, tv.bos_id, tv.eos_id, 64, options, torch.device("cpu"))   # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = decode_dataset(model, dataset, tv.bos_id, tv.eos_id, 64, options, torch.device("cpu"))
        runs.append(time.perf_counter() - start)
    seconds = min(runs)
    mean_len = sum(len(h[0].tokens) for h in out) / len(out)
    return {"words_per_s": len(words) / seconds, "seconds": seconds, "runs_seconds": runs,
            "mean_output_len": mean_len, "outputs": [h[0].tokens for h in out]}


def onmt_decode(env_dir: str, workdir: str, words: list[str], steps: int, threads: int, repeats: int = 3) -> dict:
    """Train OpenNMT-py's model for ``steps`` updates, then time onmt_translate greedy and beam 5."""
    from onmt_speed import measure_onmt_training, time_onmt_translate

    measure_onmt_training(env_dir, workdir, steps=steps, threads=threads)
    checkpoint = Path(workdir, "run", f"model_step_{steps + 1}.pt")
    src = Path(workdir, "test.src")
    src.write_text("".join(" ".join(w) + "\n" for w in words), encoding="utf-8")
    results = {}
    for beam in (1, 5):
        runs = time_onmt_translate(env_dir, str(checkpoint), str(src), str(Path(workdir, f"pred_beam{beam}.txt")),
                                   threads, ["-beam_size", str(beam), "-max_length", str(MAX_LEN)], repeats)
        seconds = min(runs)
        results["greedy" if beam == 1 else "beam5"] = {"words_per_s": len(words) / seconds, "seconds": seconds,
                                                       "runs_seconds": runs}
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-steps", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--onmt-env", default=os.environ.get("ONMT_ENV", ""),
                   help="OpenNMT-py 3.5.1's virtual environment (default $ONMT_ENV); make it with the "
                        "recipe in ../shared/peers/README.md (pip install --no-deps OpenNMT-py==3.5.1, then "
                        "its dependencies with torch==2.13.0)")
    p.add_argument("--joey-env", default=os.environ.get("JOEY_ENV", ""),
                   help="JoeyNMT's virtual environment (default $JOEY_ENV; recipe in ../shared/peers/README.md)")
    p.add_argument("--limit", type=int, default=None, help="decode only the first N test words (smoke test)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per decoder; the fastest is reported")
    p.add_argument("--skip-onmt", action="store_true")
    p.add_argument("--skip-onnx", action="store_true", help="no onnxruntime rows (fp32 and int8 exports)")
    p.add_argument("--models", nargs="+", choices=["identical", "default"], default=["identical", "default"],
                   help="our models to train and decode")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=KINDS,
                   help="decoding paths (fp32 always runs: the agreement is counted against it; bf16 only on "
                        "the identical model)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    words = test_words()[:args.limit]
    references = test_references()
    dataset, sv, tv = common_data()
    results: dict = {}
    default_cfg = load_config(HERE.parent / "configs" / "g2p_cmudict.yaml").model
    for name, cfg in (("identical", IDENTICAL), ("default", default_cfg)):
        if name not in args.models:
            continue
        model = train_ours(cfg, dataset, sv, tv, args.train_steps)
        kinds = [k for k in KINDS if (k == "fp32" or k in args.kinds) and (k != "bf16" or name == "identical")
                 and not (args.skip_onnx and k.startswith("onnx"))]
        for kind in kinds:
            row = name if kind == "fp32" else f"{name}_{kind}"
            results[row] = {mode: decode_row(model, kind, words, sv, tv, beam, args.repeats, args.threads)
                            for mode, beam in (("greedy", 1), ("beam5", 5))}
            for mode, r in results[row].items():
                r["wer"] = wer(r["outputs"], tv, references)
                reference = results[name][mode]["outputs"]      # PyTorch fp32, same model and search
                r["same_as_pytorch_fp32"] = 100.0 * sum(a == b for a, b in zip(r["outputs"], reference)) / len(
                    reference)
            print(f"[{row}] " + ", ".join(f"{m}: {r['words_per_s']:,.0f} w/s, WER {r['wer']:.2f}, "
                                          f"{r['same_as_pytorch_fp32']:.2f}% same" for m, r in results[row].items()),
                  file=sys.stderr)
    if args.skip_onmt:
        pass
    elif Path(args.onmt_env, "bin", "python").exists():
        results["onmt"] = onmt_decode(args.onmt_env, "/tmp/seq2seq_onmt_decode", words, args.train_steps,
                                      args.threads, args.repeats)
        print(f"[onmt] {results['onmt']}", file=sys.stderr)
    else:
        print(f"[onmt] no environment at {args.onmt_env!r} (set --onmt-env or ONMT_ENV); skipped", file=sys.stderr)
    if not Path(args.joey_env, "bin", "python").exists():
        print(f"[joeynmt] no environment at {args.joey_env!r} (set --joey-env or JOEY_ENV); skipped",
              file=sys.stderr)
    print(f"\nDecoding speed, {len(words):,} g014b2b test words, batch 64, {args.threads} threads, "
          f"models trained {args.train_steps} updates")
    print(f"{'model':24s} {'greedy w/s':>11s} {'WER':>6s} {'beam-5 w/s':>11s} {'WER':>6s}")
    for name, r in results.items():
        print(f"{name:24s} {r['greedy']['words_per_s']:>11,.0f} {r['greedy'].get('wer', float('nan')):>6.2f} "
              f"{r['beam5']['words_per_s']:>11,.0f} {r['beam5'].get('wer', float('nan')):>6.2f}")
    for name in [n for n in results if n.startswith("identical_onnx")] + (["onmt"] if "identical" in results
                                                                         and "onmt" in results else []):
        base = results["identical"]
        print(f"{name} / identical (PyTorch fp32): greedy "
              f"{results[name]['greedy']['words_per_s'] / base['greedy']['words_per_s']:.2f}x, beam-5 "
              f"{results[name]['beam5']['words_per_s'] / base['beam5']['words_per_s']:.2f}x")
    if "onmt" in results:
        for name in [n for n in results if n != "onmt"]:
            print(f"{name} / onmt: greedy {results[name]['greedy']['words_per_s'] / results['onmt']['greedy']['words_per_s']:.2f}x, "
                  f"beam-5 {results[name]['beam5']['words_per_s'] / results['onmt']['beam5']['words_per_s']:.2f}x")
    for r in results.values():                      # outputs are for the agreement above, not the JSON
        for mode in r.values():
            mode.pop("outputs", None)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
