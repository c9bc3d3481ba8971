"""The bad-input corpus: malformed data, configs, run directories, decoding options and
forecast CSVs, each run through the ``seq2seq`` command; every one must end with the
expected status and a one-line message matching its pattern, never a traceback.

The files are generated once per module (``world``).  Every case runs through the
CLI's ``main(argv)`` in this process (torch is imported once); a representative case
of each kind also runs as a real ``python -m seq2seq`` subprocess (``SUBPROCESS``).
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seq2seq.cli import main
from seq2seq.forecast.builtin_series import sine_csv
from seq2seq.run_lock import RunLock
from seq2seq.training import train

from conftest import make_config

# (id, command with {w} for the corpus folder, stdin bytes or None, status, message pattern)
CASES: list[tuple[str, str, bytes | None, int, str]] = [
    # ---- data files
    ("tsv-no-tab", "train {w}/cfg/notab.yaml --run {w}/new", None, 2, r"notab\.tsv:2: no tab between source"),
    ("tsv-bad-utf8", "train {w}/cfg/badutf8.yaml --run {w}/new", None, 2, r"badutf8\.tsv:2: invalid UTF-8 at byte 0"),
    ("tsv-empty-target", "train {w}/cfg/emptytgt.yaml --run {w}/new", None, 2, r"emptytgt\.tsv:1: empty target"),
    ("tsv-empty-source", "train {w}/cfg/emptysrc.yaml --run {w}/new", None, 2, r"emptysrc\.tsv:2: empty source"),
    ("tsv-three-columns", "train {w}/cfg/cols3.yaml --run {w}/new", None, 2, r"cols3\.tsv:1: 3 columns"),
    ("tsv-empty-file", "train {w}/cfg/empty.yaml --run {w}/new", None, 2, r"empty\.tsv: no examples"),
    ("tsv-missing", "train {w}/cfg/missing.yaml --run {w}/new", None, 2, r"nothere\.tsv: file not found"),
    ("tsv-is-a-folder", "train {w}/cfg/folder.yaml --run {w}/new", None, 2, r"folder\.tsv: cannot read"),
    ("tsv-bad-valid", "train {w}/cfg/badvalid.yaml --run {w}/new", None, 2, r"notab\.tsv:2: no tab"),
    ("evaluate-bad-tsv", "evaluate {w}/run --data {w}/data/notab.tsv", None, 2, r"notab\.tsv:2: no tab"),
    ("evaluate-missing-tsv", "evaluate {w}/run --data {w}/data/nothere.tsv", None, 2, r"nothere\.tsv: file not found"),
    ("evaluate-bad-utf8", "evaluate {w}/run --data {w}/data/badutf8.tsv", None, 2, r"badutf8\.tsv:2: invalid UTF-8"),
    ("evaluate-no-data", "evaluate {w}/run", None, 2, r"evaluate needs --data FILE"),
    ("predict-bad-utf8", "predict {w}/run", b"a b\n\xff\n", 2, r"<stdin>:2: invalid UTF-8 at byte 0 of the line"),
    ("predict-forecast-flags", "predict {w}/run --horizon 3", b"a\n", 2, r"--horizon: options of forecast runs"),
    ("data-toy-exists", "data toy --task copy --out {w}/data", None, 2, r"train\.tsv: exists; pass --overwrite"),
    ("data-toy-empty", "data toy --task copy --out {w}/toy --train 0", None, 2, r"--train must be >= 1"),
    ("data-sine-no-series", "data sine --out {w}/s.csv --series 0", None, 2, r"--series must be >= 1"),
    ("data-sine-no-steps", "data sine --out {w}/s.csv --length 0", None, 2, r"--length >= 2"),
    ("plot-attention-missing", "plot-attention {w}/nothere.json --out {w}/a.png", None, 2, r"nothere\.json: no such file"),
    ("plot-attention-not-json", "plot-attention {w}/data/notab.tsv --out {w}/a.png", None, 2,
     r"notab\.tsv: not a JSON file written by predict --attention"),
    # ---- configs
    ("config-missing", "train {w}/cfg/nothere.yaml", None, 2, r"nothere\.yaml: config file not found"),
    ("config-unknown-key", "train {w}/cfg/typo.yaml --run {w}/new", None, 2,
     r"typo\.yaml:\d+: unknown key 'training\.learning_rat' \(did you mean 'learning_rate'\?\)"),
    ("config-bad-type", "train {w}/cfg/badtype.yaml --run {w}/new", None, 2, r"badtype\.yaml:\d+: 'training\.max_steps'"),
    ("config-yaml-syntax", "train {w}/cfg/syntax.yaml", None, 2, r"syntax\.yaml:\d+: invalid YAML"),
    ("config-a-list", "train {w}/cfg/list.yaml", None, 2, r"list\.yaml: a config must be a YAML mapping"),
    ("config-unknown-task", "train {w}/cfg/task.yaml", None, 2, r"task\.yaml: unknown task 'tagging'"),
    ("config-task-not-a-string", "train {w}/cfg/tasklist.yaml", None, 2, r"tasklist\.yaml: 'task' must be one of"),
    ("config-not-utf8", "train {w}/cfg/latin1.yaml", None, 2, r"latin1\.yaml: cannot read config"),
    ("config-is-a-folder", "train {w}/cfg", None, 2, r"cfg: cannot read config"),
    ("config-bad-enum", "train {w}/cfg/good.yaml --set model.decoder.attention=magic", None, 2,
     r"'model\.decoder\.attention'.*check the --set overrides"),
    ("set-without-equals", "train {w}/cfg/good.yaml --set training.max_steps", None, 2, r"expected KEY=VALUE"),
    ("set-unknown-key", "train {w}/cfg/good.yaml --set training.nope=1", None, 2, r"unknown key 'training\.nope'"),
    ("set-negative-steps", "train {w}/cfg/good.yaml --set training.max_steps=-5", None, 2, r"'training\.max_steps'"),
    ("config-and-resume", "train {w}/cfg/good.yaml --resume {w}/run", None, 2, r"either a CONFIG or --resume"),
    ("train-without-config", "train", None, 2, r"train needs a CONFIG file"),
    ("resume-changes-model", "train --resume {w}/run --set model.decoder.hidden_size=8", None, 2,
     r"a resumed run can only change training\.\*"),
    ("sentencepiece-vocab-too-small", "train {w}/cfg/good.yaml --run {w}/new --set data.src_tokenizer=sentencepiece "
     "data.sentencepiece.vocab_size=2", None, 2, r"'data\.sentencepiece\.vocab_size': Input should be greater"),
    # ---- run directories
    ("run-exists", "train {w}/cfg/good.yaml --run {w}/run", None, 2, r"run directory exists; pass --overwrite"),
    ("run-is-a-file", "train {w}/cfg/good.yaml --run {w}/data/train.tsv", None, 2,
     r"train\.tsv: exists and is not a directory"),
    ("run-under-a-file", "train {w}/cfg/good.yaml --run {w}/data/train.tsv/run", None, 2,
     r"train\.tsv/run: cannot create the run directory"),
    ("overwrite-non-run", "train {w}/cfg/good.yaml --run {w}/data --overwrite", None, 2,
     r"data: not a run directory \(no config\.yaml\); refusing to delete"),
    ("evaluate-no-run", "evaluate {w}/norun --data {w}/data/valid.tsv", None, 2, r"norun: not a run directory"),
    ("predict-no-run", "predict {w}/norun", b"a\n", 2, r"norun: not a run directory"),
    ("resume-no-run", "train --resume {w}/norun", None, 2, r"norun: not a run directory"),
    ("checkpoint-unknown", "predict {w}/run --checkpoint newest", b"a\n", 2, r"checkpoint must be one of best, last"),
    ("checkpoint-averaged-missing", "predict {w}/run --checkpoint averaged", b"a\n", 2,
     r"averaged\.safetensors: checkpoint file not found"),
    ("checkpoint-garbage", "predict {w}/runs/garbage", b"a\n", 2, r"best\.safetensors: corrupt checkpoint"),
    ("checkpoint-truncated", "predict {w}/runs/truncated --checkpoint last", b"a\n", 2,
     r"last\.safetensors: corrupt checkpoint"),
    ("checkpoint-flipped-byte", "predict {w}/runs/flipped --checkpoint last", b"a\n", 2, r"checksum mismatch"),
    ("checkpoint-json-truncated", "predict {w}/runs/badjson --checkpoint last", b"a\n", 2,
     r"last\.json: corrupt checkpoint metadata"),
    ("checkpoint-torn-pair", "predict {w}/runs/torn --checkpoint last", b"a\n", 2, r"come from different saves"),
    ("checkpoint-file-missing", "predict {w}/runs/nojson --checkpoint last", b"a\n", 2,
     r"last\.json: checkpoint file not found"),
    ("checkpoint-newer-format", "predict {w}/runs/newer --checkpoint last", b"a\n", 2,
     r"checkpoint format 9 is newer than this seq2seq reads"),
    ("config-edited-shapes", "evaluate {w}/runs/hidden --data {w}/data/valid.tsv", None, 2,
     r"tensor 'encoder\.\S+' has shape \(192, 32\) in the checkpoint but \(144, 32\).*check model\.encoder\.hidden_size"),
    ("resume-config-edited", "train --resume {w}/runs/hidden", None, 2,
     r"last\.safetensors: tensor 'encoder\..*check model\.encoder\.hidden_size"),
    ("vocab-not-matching-embeddings", "predict {w}/runs/vocab", b"a\n", 2,
     r"tensor 'encoder\.embedding\.weight'.*check src_vocab\.txt"),
    ("vocab-bad-specials", "predict {w}/runs/badvocab", b"a\n", 2, r"tgt_vocab\.txt: a vocabulary must start with"),
    ("vocab-missing", "predict {w}/runs/novocab", b"a\n", 2, r"src_vocab\.txt: cannot read vocabulary"),
    ("sentencepiece-missing", "predict {w}/runs/spm_missing", b"a\n", 2,
     r"src_sentencepiece\.model: cannot read sentencepiece model"),
    ("sentencepiece-corrupt", "predict {w}/runs/spm_corrupt", b"a\n", 2,
     r"src_sentencepiece\.model: not a sentencepiece model"),
    ("run-config-broken", "predict {w}/runs/badyaml", b"a\n", 2, r"config\.yaml:\d+: invalid YAML"),
    ("run-in-use-resume", "train --resume {w}/runs/locked", None, 2, r"locked: in use by process \d+ \(started "),
    ("run-in-use-average", "average {w}/runs/locked", None, 2, r"locked: in use by process \d+"),
    ("run-in-use-overwrite", "train {w}/cfg/good.yaml --run {w}/runs/locked --overwrite", None, 2,
     r"locked: in use by process \d+"),
    ("average-nothing", "average {w}/run", None, 2, r"no checkpoints to average"),
    ("average-last-0", "average {w}/run --last 0", None, 2, r"--last must be >= 1"),
    ("average-no-run", "average {w}/norun", None, 2, r"norun: not a run directory"),
    # ---- the server's start-up (its requests: tests/test_serve.py, BAD and schemathesis)
    ("serve-no-run", "serve {w}/norun", None, 2, r"norun: not a run directory"),
    ("serve-damaged-checkpoint", "serve {w}/runs/flipped --checkpoint last", None, 2, r"checksum mismatch"),
    ("serve-config-edited", "serve {w}/runs/hidden", None, 2, r"check model\.encoder\.hidden_size"),
    ("serve-batch-0", "serve {w}/run --max-batch-size 0", None, 2, r"--max-batch-size must be positive"),
    # ---- ensembles
    ("ensemble-weights-count", "predict {w}/run {w}/run --ensemble-weights 1", b"a\n", 2,
     r"--ensemble-weights: 1 weight\(s\) for 2 runs"),
    ("ensemble-damaged-member", "predict {w}/run {w}/runs/garbage", b"a\n", 2, r"garbage/checkpoints/best\.safetensors: corrupt"),
    # ---- decoding options
    ("beam-0", "predict {w}/run --beam-size 0", b"a\n", 2, r"beam"),
    ("nbest-over-beam", "predict {w}/run --beam 2 --nbest 3", b"a\n", 2, r"nbest \(3\) must not exceed the beam size"),
    ("greedy-nbest", "predict {w}/run --nbest 2", b"a\n", 2, r"greedy decoding gives one hypothesis"),
    ("top-p-0", "evaluate {w}/run --data {w}/data/valid.tsv --sample --top-p 0", None, 2, r"top-p"),
    ("temperature-0", "predict {w}/run --sample --temperature 0", b"a\n", 2, r"temperature"),
    ("length-penalty-negative", "predict {w}/run --length-penalty -1", b"a\n", 2, r"length-penalty"),
    ("max-len-0", "predict {w}/run --max-len 0", b"a\n", 2, r"max-len"),
    ("batch-size-0", "predict {w}/run --batch-size 0", b"a\n", 2, r"--batch-size must be >= 1"),
    ("beam-not-a-number", "predict {w}/run --beam many", b"a\n", 2, r"argument --beam: invalid int value"),
    ("strategy-unknown", "predict {w}/run --strategy magic", b"a\n", 2, r"argument --strategy: invalid choice"),
    ("on-bad-line-unknown", "predict {w}/run --on-bad-line ignore", b"a\n", 2, r"argument --on-bad-line"),
    ("sample-not-variational", "sample {w}/run --num 2", None, 2, r"needs a variational run"),
    ("sample-num-0", "sample {w}/run --num 0", None, 2, r"--num must be >= 1"),
    ("replace-unk-no-attention", "predict {w}/runs/noattention --replace-unk", b"zz\n", 2,
     r"replace_unk \(--replace-unk\) reads the attention weights"),
    # ---- forecast CSVs and runs
    ("forecast-no-data", "predict {w}/frun", None, 2, r"needs --data HISTORY\.csv"),
    ("forecast-csv-missing", "predict {w}/frun --data {w}/csv/nothere.csv", None, 2, r"nothere\.csv: no such file"),
    ("forecast-not-a-number", "predict {w}/frun --data {w}/csv/notnum.csv", None, 2,
     r"notnum\.csv:4: column 'sin': 'abc' is not a number"),
    ("forecast-missing-column", "predict {w}/frun --data {w}/csv/nocol.csv", None, 2, r"nocol\.csv: no column 'cos'"),
    ("forecast-repeated-time", "predict {w}/frun --data {w}/csv/dup.csv", None, 2, r"dup\.csv:\d+: time .* appears twice"),
    ("forecast-bad-time", "predict {w}/frun --data {w}/csv/badtime.csv", None, 2, r"is neither a date nor a number"),
    ("forecast-empty-csv", "predict {w}/frun --data {w}/csv/empty.csv", None, 2, r"empty\.csv: not a readable CSV"),
    ("forecast-header-only", "predict {w}/frun --data {w}/csv/header.csv", None, 2, r"header\.csv: no rows"),
    ("forecast-missing-value", "predict {w}/frun --data {w}/csv/gap.csv", None, 2,
     r"gap\.csv \(series 's00'\):\d+: missing value in column 'sin'"),
    ("forecast-short-history", "predict {w}/frun --data {w}/csv/short.csv", None, 2, r"history has 5 steps"),
    ("forecast-holdout-too-long", "predict {w}/frun --data {w}/csv/short.csv --holdout --horizon 5", None, 2,
     r"--holdout 5 steps leaves series 's00' no history"),
    ("forecast-horizon-0", "predict {w}/frun --data {w}/sine.csv --horizon 0", None, 2, r"--horizon must be >= 1"),
    ("forecast-bad-utf8", "predict {w}/frun --data {w}/csv/latin1.csv", None, 2, r"latin1\.csv: not a readable CSV"),
    ("forecast-evaluate-bad-csv", "evaluate {w}/frun --data {w}/csv/notnum.csv", None, 2, r"notnum\.csv:4"),
    ("forecast-train-too-short", "train {w}/cfg/fshort.yaml --run {w}/new", None, 2, r"fewer than one window"),
    ("forecast-resume-changes-model", "train --resume {w}/frun --set model.encoder.hidden_size=3", None, 2,
     r"a resumed run can only change"),
]

# Representative cases (data, stdin, run directory, forecast CSV) also run as real
# ``python -m seq2seq`` processes: four, since each costs seconds of imports.
SUBPROCESS = ["tsv-no-tab", "predict-bad-utf8", "run-in-use-resume", "forecast-not-a-number"]


def _text_config(data: Path, **extra) -> dict:
    raw = make_config(data, **{"training.max_steps": 4, "training.validate_every": 2}).model_dump()
    for key, value in extra.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return raw


def _forecast_config(csv: Path) -> dict:
    return {"task": "forecast", "name": "f", "seed": 1,
            "data": {"path": str(csv), "time_column": "time", "id_column": "id", "value_columns": ["sin", "cos"],
                     "input_len": 8, "horizon": 3, "valid_size": 10, "test_size": 10},
            "model": {"encoder": {"cell": "gru", "input_size": 8, "hidden_size": 8},
                      "decoder": {"cell": "gru", "input_size": 8, "hidden_size": 8}},
            "training": {"max_steps": 2, "validate_every": 2, "progress_bar": False}}


def _one_sided_spm(raw: dict) -> None:
    raw["data"]["src_tokenizer"] = "sentencepiece"
    raw["data"]["sentencepiece"]["joint"] = False


def _edit_yaml(path: Path, fn) -> None:
    raw = yaml.safe_load(path.read_text())
    fn(raw)
    path.write_text(yaml.safe_dump(raw))


@pytest.fixture(scope="module")
def world(tiny_data, tmp_path_factory):
    """The corpus folder: data files, configs, a trained text and forecast run and damaged copies."""
    w = tmp_path_factory.mktemp("bad_inputs")
    data, cfg, runs, csv = w / "data", w / "cfg", w / "runs", w / "csv"
    for d in (data, cfg, runs, csv):
        d.mkdir()
    for name in ("train.tsv", "valid.tsv"):
        shutil.copy(tiny_data / name, data / name)
    files = {"notab.tsv": b"a b\tA B\nno tab here\n", "badutf8.tsv": b"a\tA\n\xff\xfe\tX\n",
             "emptytgt.tsv": b"a b\t \n", "emptysrc.tsv": b"a\tA\n \tB\n", "cols3.tsv": b"a\tA\tB\n",
             "empty.tsv": b"\n\n"}
    for name, content in files.items():
        (data / name).write_bytes(content)
    (data / "folder.tsv").mkdir()

    def config(name: str, raw: dict) -> None:
        (cfg / name).write_text(yaml.safe_dump(raw))

    good = _text_config(data)
    config("good.yaml", good)
    for name, train_file in (("notab", "notab.tsv"), ("badutf8", "badutf8.tsv"), ("emptytgt", "emptytgt.tsv"),
                             ("emptysrc", "emptysrc.tsv"), ("cols3", "cols3.tsv"), ("empty", "empty.tsv"),
                             ("missing", "nothere.tsv"), ("folder", "folder.tsv")):
        config(f"{name}.yaml", _text_config(data, **{"data.train": str(data / train_file)}))
    config("badvalid.yaml", _text_config(data, **{"data.valid": str(data / "notab.tsv")}))
    config("typo.yaml", _text_config(data, **{"training.learning_rat": 0.1}))
    config("badtype.yaml", _text_config(data, **{"training.max_steps": "many"}))
    (cfg / "syntax.yaml").write_text("data:\n  train: [x\nmodel: {}\n")
    (cfg / "list.yaml").write_text("- a\n- b\n")
    (cfg / "task.yaml").write_text("task: tagging\n")
    (cfg / "tasklist.yaml").write_text("task: [text]\n")
    (cfg / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))

    # runs: a trained text run and damaged copies
    run = w / "run"
    train(make_config(data, **{"training.max_steps": 4, "training.validate_every": 2}), run)

    def copy(name: str) -> Path:
        return Path(shutil.copytree(run, runs / name))

    ck = "checkpoints"
    (copy("garbage") / ck / "best.safetensors").write_bytes(b"not a checkpoint at all")
    last = copy("truncated") / ck / "last.safetensors"
    last.write_bytes(last.read_bytes()[:200])
    last = copy("flipped") / ck / "last.safetensors"
    raw = bytearray(last.read_bytes())
    raw[-5] ^= 0x01
    last.write_bytes(bytes(raw))
    last = copy("badjson") / ck / "last.json"
    last.write_text(last.read_text()[:40])
    torn = copy("torn")
    (torn / ck / "last.json").write_text((torn / ck / "best.json").read_text())
    (copy("nojson") / ck / "last.json").unlink()
    newer = copy("newer") / ck / "last.safetensors"
    raw = newer.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8:8 + n].replace(b'"format_version":"2"', b'"format_version":"9"')
    assert len(header) == n
    newer.write_bytes(raw[:8] + header + raw[8 + n:])
    _edit_yaml(copy("hidden") / "config.yaml", lambda r: r["model"]["encoder"].update(hidden_size=48))
    with open(copy("vocab") / "src_vocab.txt", "a") as f:
        f.write("extra\n")
    bad = copy("badvocab") / "tgt_vocab.txt"
    bad.write_text(bad.read_text().replace("<pad>", "<PAD>", 1))
    (copy("novocab") / "src_vocab.txt").unlink()
    _edit_yaml(copy("spm_missing") / "config.yaml", _one_sided_spm)
    spm = copy("spm_corrupt")
    _edit_yaml(spm / "config.yaml", _one_sided_spm)
    (spm / "src_sentencepiece.model").write_bytes(b"\x0a\x05junk!" * 10)
    (copy("badyaml") / "config.yaml").write_text("model: {encoder: [\n")
    copy("locked")
    noatt = runs / "noattention"
    train(make_config(data, **{"training.max_steps": 1, "model.decoder.attention": "none"}), noatt)

    # forecast: a CSV, a trained run, bad CSVs
    sine_csv(w / "sine.csv", series=2, length=60, seed=1)
    fcfg = _forecast_config(w / "sine.csv")
    config("forecast.yaml", fcfg)
    assert main(["train", str(cfg / "forecast.yaml"), "--run", str(w / "frun")]) == 0
    config("fshort.yaml", {**fcfg, "data": {**fcfg["data"], "path": str(csv / "short.csv")}})
    lines = (w / "sine.csv").read_text().splitlines()
    head, rows = lines[0], lines[1:]
    assert head == "id,time,sin,cos", head
    (csv / "notnum.csv").write_text("\n".join([head, rows[0], rows[1], rows[2].rsplit(",", 2)[0] + ",abc,0.5",
                                               *rows[3:20]]) + "\n")
    (csv / "nocol.csv").write_text("\n".join(",".join(r.split(",")[:3]) for r in lines[:20]) + "\n")
    (csv / "dup.csv").write_text("\n".join([head, *rows[:10], rows[5]]) + "\n")
    (csv / "badtime.csv").write_text("\n".join([head, *rows[:5], "s0,yesterday,0.1,0.2"]) + "\n")
    (csv / "empty.csv").write_text("")
    (csv / "header.csv").write_text(head + "\n")
    (csv / "gap.csv").write_text("\n".join([head, *rows[:3], rows[3].rsplit(",", 2)[0] + ",,0.1", *rows[4:20]]) + "\n")
    (csv / "short.csv").write_text("\n".join([head, *rows[:5]]) + "\n")
    (csv / "latin1.csv").write_bytes((head + "\n").encode() + "s\xe9,1,0.1,0.2\n".encode("latin-1"))
    with RunLock(runs / "locked"):
        yield w


def _argv(command: str, w: Path) -> list[str]:
    return shlex.split(command.format(w=w))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_its_one_line_error(case, world, monkeypatch, capsys):
    name, command, stdin, status, pattern = case
    monkeypatch.chdir(world)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
    try:
        got = main(_argv(command, world))
    except SystemExit as e:                           # argparse's own usage errors
        got = e.code
    err = capsys.readouterr().err
    assert got == status, err
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert "Traceback" not in err and re.search(pattern, last), err
    if "error: argument" not in last:                   # argparse prints its usage lines first
        assert err.strip() == last and last.startswith("seq2seq: error: "), err
    assert not (world / "new").exists() or not any((world / "new").iterdir())


def test_corpus_covers_every_kind():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)
    assert set(SUBPROCESS) <= {c[0] for c in CASES}


def test_bad_inputs_through_real_processes(world, tmp_path):
    """The representative cases as ``python -m seq2seq`` processes, all at once."""
    cases = {c[0]: c for c in CASES}
    procs = {}
    for name in SUBPROCESS:
        _, command, stdin, _, _ = cases[name]
        (tmp_path / name).write_bytes(stdin or b"")
        with open(tmp_path / name, "rb") as source:
            procs[name] = subprocess.Popen([sys.executable, "-m", "seq2seq", *_argv(command, world)], cwd=world,
                                           stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        err = err.decode("utf-8", "replace")
        _, _, _, status, pattern = cases[name]
        assert proc.returncode == status, (name, err)
        assert "Traceback" not in err and err.strip().count("\n") == 0, (name, err)
        assert err.startswith("seq2seq: error: ") and re.search(pattern, err), (name, err)
