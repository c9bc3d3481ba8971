"""seq2seq.loggers: metrics.jsonl, TensorBoard event files, logger selection, cheap import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from seq2seq.errors import Seq2SeqError
from seq2seq.loggers import MetricsLog, TensorBoardLog, build_loggers

ROWS = [{"split": "train", "step": s, "epoch": 0, "loss": 1.0 / s} for s in (1, 2, 3, 4)]


def _disk(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_log_appends_and_truncates(tmp_path):
    log = MetricsLog(tmp_path)
    for row in ROWS:
        log.log(row)
    assert _disk(tmp_path / "metrics.jsonl") == ROWS and log.records == ROWS

    resumed = MetricsLog(tmp_path)
    resumed.truncate(2)
    assert resumed.records == ROWS[:2] and _disk(tmp_path / "metrics.jsonl") == ROWS[:2]
    resumed.log(ROWS[2])
    assert _disk(tmp_path / "metrics.jsonl") == ROWS[:3] and resumed.records == ROWS[:3]


def test_metrics_log_truncate_edge_cases(tmp_path):
    fresh = MetricsLog(tmp_path)
    fresh.truncate(5)                                   # no file yet: nothing to keep
    assert fresh.records == [] and not (tmp_path / "metrics.jsonl").exists()

    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"split": "tr')   # crash mid-append
    log = MetricsLog(tmp_path)
    log.truncate(10)
    assert log.records == ROWS[:1] and _disk(path) == ROWS[:1]

    path.write_text("not json\n" + json.dumps(ROWS[0]) + "\n")
    with pytest.raises(Seq2SeqError, match=r"metrics\.jsonl:1:"):
        MetricsLog(tmp_path).truncate(10)


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    tb = TensorBoardLog(tmp_path)
    tb.log({"split": "train", "step": 10, "epoch": 1, "loss": 2.5, "lr": 0.001, "tokens_per_s": 1200,
            "teacher_forcing": 1.0, "note": "text", "flag": True})
    tb.log({"split": "train", "step": 20, "epoch": 1, "loss": 1.25, "lr": 0.0005, "tokens_per_s": 1300,
            "teacher_forcing": 0.5, "note": "text", "flag": False})
    tb.log({"split": "valid", "step": 20, "epoch": 1, "loss": 1.5, "wer": 12.5})
    tb.close()
    acc = _events(tmp_path)
    expected = {"train/loss": [(10, 2.5), (20, 1.25)], "train/lr": [(10, 0.001), (20, 0.0005)],
                "train/tokens_per_s": [(10, 1200.0), (20, 1300.0)],
                "train/teacher_forcing": [(10, 1.0), (20, 0.5)],
                "valid/loss": [(20, 1.5)], "valid/wer": [(20, 12.5)]}
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)      # no step/epoch/str/bool scalars
    for tag, points in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        # event files store float32: compare exactly against the float32 rounding of each value
        assert got == [(s, float(np.float32(v))) for s, v in points], tag


def test_tensorboard_resume_hides_later_events(tmp_path):
    pytest.importorskip("tensorboard")
    tb = TensorBoardLog(tmp_path)
    for step, loss in ((1, 4.0), (2, 3.0), (3, 2.0)):
        tb.log({"split": "train", "step": step, "loss": loss})
    tb.close()
    (resumed,) = build_loggers(["tensorboard"], tmp_path, resume_step=1)   # crashed after step 3, resumed at 1
    resumed.log({"split": "train", "step": 2, "loss": 2.75})
    resumed.close()
    assert [(e.step, e.value) for e in _events(tmp_path).Scalars("train/loss")] == [(1, 4.0), (2, 2.75)]


def test_tensorboard_attention_image(tmp_path):
    pytest.importorskip("tensorboard")
    tb = TensorBoardLog(tmp_path)
    attention = torch.softmax(torch.arange(12, dtype=torch.float32).reshape(3, 4), dim=-1)
    tb.log_attention(7, attention, ["a", "b", "c", "d"], ["x", "y"])       # 3rd row: <eos>
    with pytest.raises(ValueError, match="does not fit"):
        tb.log_attention(7, attention.numpy(), ["a", "b"], ["x", "y"])
    tb.close()
    acc = _events(tmp_path)
    assert acc.Tags()["images"] == ["valid/attention"]
    (image,) = acc.Images("valid/attention")
    assert image.step == 7 and image.width > 100 and image.height > 100
    assert image.encoded_image_string.startswith(b"\x89PNG")


def test_build_loggers(tmp_path):
    assert build_loggers([], tmp_path) == []
    with pytest.raises(Seq2SeqError, match=r"unknown logger 'wandb'; valid: tensorboard"):
        build_loggers(["tensorboard", "wandb"], tmp_path)
    assert not (tmp_path / "tensorboard").exists()                    # rejected before creating anything
    if __import__("importlib").util.find_spec("tensorboard"):
        loggers = build_loggers(["tensorboard", "tensorboard"], tmp_path)
        assert [type(x) for x in loggers] == [TensorBoardLog]
        loggers[0].close()


def test_missing_tensorboard_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)             # makes `import tensorboard` fail
    with pytest.raises(Seq2SeqError, match=r"pip install 'seq2seq\[tensorboard\]'"):
        TensorBoardLog(tmp_path)


def test_import_is_cheap():
    code = ("import sys, seq2seq.loggers; "
            "print([m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tensorboard', 'torch')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_training_writes_tensorboard_scalars_and_the_attention_image(tiny_data, tmp_path):
    """``training.loggers: [tensorboard]`` through the trainer: losses, metrics, learning rate,
    tokens/s and the attention of the first validation example, at the steps of metrics.jsonl."""
    pytest.importorskip("tensorboard")
    import json

    from seq2seq.training import train

    from conftest import make_config

    config = make_config(tiny_data, **{"training.max_steps": 6, "training.validate_every": 3,
                                       "training.log_every": 3, "training.loggers": "[tensorboard]"})
    train(config, tmp_path / "run")
    acc = _events(tmp_path / "run")
    assert {"train/loss", "train/tokens_per_s", "train/lr", "valid/loss", "valid/wer"} <= set(acc.Tags()["scalars"])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    wer = [(r["step"], r["wer"]) for r in rows if r["split"] == "valid"]
    assert [(e.step, e.value) for e in acc.Scalars("valid/wer")] == pytest.approx(wer)
    assert [image.step for image in acc.Images("valid/attention")] == [3, 6]
