"""The ``seq2seq`` command end to end on tiny data, and its errors."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli as cli

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path, data_dir, extra=""):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"""\
name: tiny
data:
  train: {data_dir}/train.tsv
  valid: {data_dir}/valid.tsv
  src_tokenizer: word
  tgt_tokenizer: word
model:
  encoder: {{cell: gru, embedding_size: 16, hidden_size: 32}}
  decoder: {{cell: gru, embedding_size: 16, hidden_size: 32}}
training:
  max_steps: 30
  validate_every: 15
  log_every: 10
{extra}""")
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run, shared by the module's tests (the one that resumes works on a copy)."""
    tmp_path = tmp_path_factory.mktemp("cli")
    r = cli("data", "toy", "--task", "copy", "--out", tmp_path / "data", "--train", 300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = write_config(tmp_path, tmp_path / "data")
    r = cli("train", cfg, "--set", "training.learning_rate=0.005", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[valid] step 30" in r.stderr
    return tmp_path


def test_train_evaluate_predict(trained):
    run = trained / "runs" / "tiny"
    assert (run / "checkpoints" / "best.safetensors").exists()
    r = cli("evaluate", run, "--data", trained / "data" / "test.tsv", "--json", cwd=trained)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert {"wer", "per", "accuracy", "loss", "ppl"} <= set(res) and res["sentences"] == 200
    table = cli("evaluate", run, "--data", trained / "data" / "test.tsv", cwd=trained)
    assert "wer" in table.stdout and "per" in table.stdout
    r = cli("predict", run, cwd=trained, stdin="a b c\n\n   \nd e\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[2] == "" and lines[0] and lines[3]


def test_python_api_matches_cli(trained):
    from seq2seq import Seq2Seq

    model = Seq2Seq.load(trained / "runs" / "tiny")
    outs = model.predict(["a b c", "d e"])
    r = cli("predict", trained / "runs" / "tiny", cwd=trained, stdin="a b c\nd e\n")
    assert r.stdout.splitlines() == outs
    preds = model.predict(["a b c", ""], return_attention=True)
    assert preds[1][0].text == "" and preds[1][0].attention is None and preds[0][0].attention.shape[1] == 3
    assert preds[0][0].text == outs[0]
    nbest = model.predict(["a b c", "d e"], beam=4, nbest=3, length_penalty=0.6)
    assert [len(p) for p in nbest] == [3, 3]
    assert all(p[0].score >= p[1].score >= p[2].score for p in nbest)
    samples = model.predict(["a b c"], strategy="sample", num_samples=4, seed=1, temperature=0.7)
    assert len(samples[0]) == 4
    assert [p.text for p in samples[0]] == [p.text for p in model.predict(
        ["a b c"], strategy="sample", num_samples=4, seed=1, temperature=0.7)[0]]


def test_beam_nbest_scores_attention_and_heatmap(trained):
    run = trained / "runs" / "tiny"
    r = cli("predict", run, "--beam", 4, "--nbest", 3, "--scores", "--attention", trained / "attn.json",
            cwd=trained, stdin="a b c\nd e\n")
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == ["0", "0", "0", "1", "1", "1"]
    scores = [float(row[2]) for row in rows]
    assert scores[0] >= scores[1] >= scores[2] and scores[3] >= scores[4] >= scores[5]
    records = json.loads((trained / "attn.json").read_text())
    assert records[0]["source"] == ["a", "b", "c"] and len(records[0]["hypotheses"]) == 3
    first = records[0]["hypotheses"][0]
    assert len(first["attention"][0]) == 3 and len(first["attention"]) in (len(first["tokens"]), len(first["tokens"]) + 1)
    r = cli("plot-attention", trained / "attn.json", "--index", 1, "--rank", 2, "--out", trained / "a.png", cwd=trained)
    assert r.returncode == 0, r.stderr
    assert (trained / "a.png").read_bytes()[:4] == b"\x89PNG"
    one_line_error(cli("plot-attention", trained / "attn.json", "--index", 5, "--out", trained / "b.png",
                       cwd=trained), "attn.json", "--index 5")
    r = cli("evaluate", run, "--data", trained / "data" / "test.tsv", "--json", "--beam", 4, "--nbest", 2,
            cwd=trained)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["oracle_wer"] <= res["wer"] and res["oracle_per"] <= res["per"]
    one_line_error(cli("predict", run, "--beam", 2, "--nbest", 3, cwd=trained, stdin="a\n"), "nbest (3)")
    one_line_error(cli("evaluate", run, "--data", trained / "data" / "test.tsv", "--sample", "--top-p", 0,
                       cwd=trained), "top-p")


def test_resume_and_existing_run(trained, tmp_path):
    trained = Path(shutil.copytree(trained, tmp_path / "copy"))
    cfg = trained / "tiny.yaml"
    r = cli("train", cfg, cwd=trained)
    assert r.returncode == 2 and "exists; pass --overwrite" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--resume", trained / "runs" / "tiny", "--set", "training.max_steps=40", cwd=trained)
    assert r.returncode == 0, r.stderr
    assert "[resume]" in r.stderr and "from step 30" in r.stderr
    last = json.loads((trained / "runs" / "tiny" / "checkpoints" / "last.json").read_text())
    assert last["step"] == 40


def one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seq2seq: error:"), r.stderr
    for f in fragments:
        assert f in err[0], err[0]


def test_errors_are_one_line_with_status_2(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text("a b\tA B\nno tab here\n")
    (data / "valid.tsv").write_text("a\tA\n")
    cfg = write_config(tmp_path, data)
    one_line_error(cli("train", cfg, cwd=tmp_path), "train.tsv:2", "no tab")
    (data / "train.tsv").write_bytes(b"a b\tA B\n\xff\xfe\tX\n")
    one_line_error(cli("train", cfg, cwd=tmp_path), "train.tsv:2", "UTF-8")
    (data / "train.tsv").write_text("a b\t\n")
    one_line_error(cli("train", cfg, cwd=tmp_path), "train.tsv:1", "empty target")
    bad = write_config(tmp_path, data, extra="  learning_rat: 0.1\n")
    one_line_error(cli("train", bad, cwd=tmp_path), "tiny.yaml:14", "training.learning_rat", "learning_rate")
    one_line_error(cli("train", tmp_path / "missing.yaml", cwd=tmp_path), "missing.yaml", "not found")
    one_line_error(cli("train", cfg, "--set", "model.decoder.attention=magic", cwd=tmp_path),
                   "model.decoder.attention")
    one_line_error(cli("evaluate", tmp_path / "norun", "--data", data / "valid.tsv", cwd=tmp_path),
                   "not a run directory")
