"""English -> Spanish translation on the Bible split of ``seq2seq data bible``.

Trains ``configs/translation_en_es.yaml`` (unless ``--evaluate-only``), then scores
the best checkpoint on the held-out test books with sacrebleu BLEU and chrF on
detokenised output, greedy and with beam search, with and without ``<unk>``
replacement, and writes the numbers, their sacrebleu signatures, the training time
and a few sample translations to ``--json``.

    python benchmarks/translation_en_es.py [--set KEY=VALUE ...] [--run runs/translation_en_es]
    python benchmarks/translation_en_es.py --evaluate-only --run runs/translation_en_es [--onnx]

``--onnx`` also exports the run (fp32 and int8) and scores the exports through
onnxruntime, greedy and beam; every decoding row gets its sentences per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from seq2seq.api import Seq2Seq
from seq2seq.checkpoint import atomic_write_text
from seq2seq.config import load_config
from seq2seq.data.tsv import read_tsv
from seq2seq.export.exporter import export_onnx
from seq2seq.modules import num_parameters
from seq2seq.training import train

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "translation_en_es.yaml"))
    p.add_argument("--run", default="runs/translation_en_es")
    p.add_argument("--set", nargs="*", action="extend", default=[], dest="overrides")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--onnx", action="store_true", help="also export the run (fp32 and int8, seq2seq export) and "
                                                       "score the exports through onnxruntime, greedy and beam")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "translation_en_es.json"))
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    config = load_config(args.config, args.overrides)
    run = Path(args.run)
    if not args.evaluate_only:
        start = time.perf_counter()
        train(config, run)
        print(f"[bench] training took {time.perf_counter() - start:.0f} s", file=sys.stderr)
    model = Seq2Seq.load(run)
    test = model.config.data.test
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    trained = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    best = max(valid, key=lambda r: r.get("bleu", float("-inf"))) if valid else None
    results = {
        "config": args.config, "run": str(run), "overrides": args.overrides, "test": test,
        "threads": args.threads, "parameters": num_parameters(model.model),
        "training": {"steps": records[-1]["step"], "epochs_started": records[-1]["epoch"] + 1,
                     "minutes": round(trained[-1]["elapsed_s"] / 60, 1) if trained else None,
                     "precision": model.config.training.precision, "num_threads": model.config.training.num_threads,
                     "best_valid_bleu": best and best.get("bleu"), "best_step": best and best["step"]},
        "decoding": {},
    }
    for name, options in (("greedy", {}), ("greedy_replace_unk", {"replace_unk": True}),
                          (f"beam{args.beam}", {"beam": args.beam}),
                          (f"beam{args.beam}_replace_unk", {"beam": args.beam, "replace_unk": True})):
        start = time.perf_counter()
        scores = model.evaluate(test, metrics=["bleu", "chrf"], **options)
        scores["decode_seconds"] = round(time.perf_counter() - start, 3)
        results["decoding"][name] = scores
        print(f"[bench] {name}: BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f} "
              f"({scores['decode_seconds']} s)", file=sys.stderr)
    if args.onnx:
        with tempfile.TemporaryDirectory() as folder:
            for quantize in (None, "int8"):
                kind = f"onnx_{quantize or 'fp32'}"
                export_onnx(run, Path(folder) / kind, quantize=quantize)
                exported = Seq2Seq.load(Path(folder) / kind)
                for name, options in (("greedy", {}), (f"beam{args.beam}", {"beam": args.beam})):
                    start = time.perf_counter()
                    scores = exported.evaluate(test, metrics=["bleu", "chrf"], **options)
                    scores["decode_seconds"] = round(time.perf_counter() - start, 3)
                    results["decoding"][f"{kind}_{name}"] = scores
                    print(f"[bench] {kind} {name}: BLEU {scores['bleu']:.2f} chrF {scores['chrf']:.2f} "
                          f"({scores['decode_seconds']} s)", file=sys.stderr)
    for scores in results["decoding"].values():
        scores["sentences_per_s"] = round(scores["sentences"] / max(scores["decode_seconds"], 1e-9), 1)
    examples = read_tsv(test, multi_reference=True)[:SAMPLES]
    outputs = model.predict([e.source for e in examples], beam=args.beam, replace_unk=True)
    results["samples"] = [{"source": e.source, "reference": e.references[0], "output": o}
                          for e, o in zip(examples, outputs)]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.json), json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"[bench] wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
