"""Run directory, checkpoints (atomic, no pickle) and exact resume."""

import json

import pytest
import torch

from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.errors import Seq2SeqError
from seq2seq.training import resume, train

from conftest import make_config


def test_run_directory_contents(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(make_config(tiny_data, **{"training.max_steps": 20, "training.validate_every": 10,
                                    "training.log_every": 5}), run)
    for name in ("config.yaml", "src_vocab.txt", "tgt_vocab.txt", "metrics.jsonl", "curves.png",
                 "checkpoints/best.safetensors", "checkpoints/best.json", "checkpoints/last.safetensors",
                 "checkpoints/last.json"):
        assert (run / name).exists(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [5, 10, 15, 20]
    valid = [r for r in rows if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [10, 20] and {"loss", "ppl", "wer", "per", "accuracy"} <= set(valid[0])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_run_is_not_overwritten(tiny_data, tmp_path):
    run = tmp_path / "run"
    cfg = make_config(tiny_data, **{"training.max_steps": 2})
    train(cfg, run)
    before = (run / "checkpoints" / "last.safetensors").read_bytes()
    with pytest.raises(Seq2SeqError, match="exists; pass --overwrite"):
        train(cfg, run)
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == before
    other = tmp_path / "not_a_run"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(Seq2SeqError, match="not a run directory"):
        train(cfg, other, overwrite=True)
    assert (other / "precious.txt").read_text() == "keep me"


def test_checkpoint_round_trip_and_torn_pair(tmp_path):
    t = {"a": torch.arange(6.0).view(2, 3), "b": torch.tensor([1, 2], dtype=torch.uint8)}
    save_checkpoint(tmp_path / "x", t, {"step": 3})
    tensors, meta = load_checkpoint(tmp_path / "x")
    assert torch.equal(tensors["a"], t["a"]) and meta["step"] == 3
    json_first = (tmp_path / "x.json").read_text()
    save_checkpoint(tmp_path / "x", t, {"step": 4})
    (tmp_path / "x.json").write_text(json_first)          # as if a crash fell between the two renames
    with pytest.raises(Seq2SeqError, match="different saves"):
        load_checkpoint(tmp_path / "x")
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(Seq2SeqError, match="corrupt"):
        load_checkpoint(tmp_path / "x")
    assert not list(tmp_path.glob(".*tmp"))                 # no temporary files left behind


@pytest.mark.parametrize("extra", [{}, {"model.decoder.attention": "luong_concat", "model.decoder.input_feeding": "true",
                                        "model.decoder.dropout": 0.3, "model.encoder.dropout": 0.3}])
def test_resume_continues_exactly(tiny_data, tmp_path, extra):
    """Training 30 steps straight equals 12 steps + resume to 30 (optimizer, RNG, data order restored)."""
    over = {"training.validate_every": 6, "training.log_every": 3, "training.batch_size": 16, **extra}
    straight = tmp_path / "straight"
    torch.manual_seed(0)
    train(make_config(tiny_data, **{**over, "training.max_steps": 30}), straight)
    split = tmp_path / "split"
    torch.manual_seed(123)   # resume must not depend on the caller's RNG state
    train(make_config(tiny_data, **{**over, "training.max_steps": 12}), split)
    torch.manual_seed(456)
    resume(split, ["training.max_steps=30"])
    a, _ = load_checkpoint(straight / "checkpoints" / "last")
    b, meta = load_checkpoint(split / "checkpoints" / "last")
    assert meta["step"] == 30
    for k in a:
        if not k.startswith("rng"):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    rows_a = (straight / "metrics.jsonl").read_text().splitlines()
    rows_b = (split / "metrics.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k not in ("tokens_per_s", "elapsed_s")}
                          for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)


def test_resume_refuses_model_changes(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(make_config(tiny_data, **{"training.max_steps": 2}), run)
    with pytest.raises(Seq2SeqError, match="can only change"):
        resume(run, ["model.decoder.hidden_size=8"])
