"""The trainer's README promises, each against an oracle written in the test: exact
resume after any stop, early stopping, ReduceLROnPlateau, limits, label smoothing,
weight decay, AdamW, bf16, the coverage loss, checkpoint pruning and averaging,
the scheduled-sampling log and plot, ``--overwrite``."""

import json

import pytest
import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.training import resume, train

from conftest import make_config


def rows(run, split=None):
    out = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in out if split is None or r["split"] == split]


def timeless(records):
    """Rows without the wall-clock fields (the only ones two runs may differ in)."""
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in records]


# ---------------------------------------------------------------- exact resume after any stop

RESUME = {"training.validate_every": 6, "training.log_every": 4, "training.batch_size": 16,
          "training.scheduler": "plateau", "training.plateau_patience": 0, "training.early_stopping_metric": "loss",
          "model.decoder.dropout": 0.3, "model.encoder.dropout": 0.3}


@pytest.mark.parametrize("stop", [{"training.max_steps": 13},                          # off the validation grid
                                  {"training.max_minutes": 1e-9}])                    # after the first update
def test_resume_after_an_off_grid_stop_is_exact(tiny_data, tmp_path, stop):
    """A run stopped between validations (by max_minutes or an off-grid max_steps) and
    resumed ends bit-identical to an uninterrupted run: weights, optimizer, scheduler,
    counters, and every logged row (the extra 'final' validation at the stop aside)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(make_config(tiny_data, **{**RESUME, "training.max_steps": 30}), straight)
    train(make_config(tiny_data, **{**RESUME, "training.max_steps": 30, **stop}), split)
    stopped_at = json.loads((split / "training.json").read_text())["steps"]
    assert 0 < stopped_at < 30 and stopped_at % 6
    final = rows(split, "valid")[-1]
    assert final["step"] == stopped_at and final["final"] is True       # the stop's own validation
    torch.manual_seed(99)                                                # resume must not read the caller's RNG
    resume(split, ["training.max_minutes=null", "training.max_steps=30"])
    a, meta_a = load_checkpoint(straight / "checkpoints" / "last")
    b, meta_b = load_checkpoint(split / "checkpoints" / "last")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)     # weights, Adam moments, RNG
    assert meta_a["scheduler"] == meta_b["scheduler"]                     # the stop's validation did not step it
    drop = ("elapsed_s", "window")
    assert ({k: v for k, v in meta_a["train_state"].items() if k not in drop}
            == {k: v for k, v in meta_b["train_state"].items() if k not in drop})
    assert timeless(rows(straight)) == timeless(r for r in rows(split) if not r.get("final"))
