"""The trainer's README promises, each against an oracle written in the test: exact
resume after any stop, early stopping, ReduceLROnPlateau, limits, label smoothing,
weight decay, AdamW, bf16, the coverage loss, checkpoint pruning and averaging,
the scheduled-sampling log and plot, ``--overwrite``."""

import io
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


@pytest.mark.parametrize("stop", [{"training.max_steps": 7},                           # off the validation grid
                                  {"training.max_minutes": 1e-9}])                    # after the first update
def test_resume_after_an_off_grid_stop_is_exact(tiny_data, tmp_path, stop):
    """A run stopped between validations (by max_minutes or an off-grid max_steps) and
    resumed ends bit-identical to an uninterrupted run: weights, optimizer, scheduler,
    counters, and every logged row (the extra 'final' validation at the stop aside)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(make_config(tiny_data, **{**RESUME, "training.max_steps": 18}), straight)
    train(make_config(tiny_data, **{**RESUME, "training.max_steps": 18, **stop}), split)
    stopped_at = json.loads((split / "training.json").read_text())["steps"]
    assert 0 < stopped_at < 18 and stopped_at % 6
    final = rows(split, "valid")[-1]
    assert final["step"] == stopped_at and final["final"] is True       # the stop's own validation
    torch.manual_seed(99)                                                # resume must not read the caller's RNG
    resume(split, ["training.max_minutes=null", "training.max_steps=18"])
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


# ---------------------------------------------------------------- early stopping and ReduceLROnPlateau

def test_patience_stops_and_plateau_halves_the_rate_after_validations_without_improvement(tiny_data, tmp_path):
    """A rate too small to change greedy outputs keeps accuracy flat: validation 1 sets the
    best, every later one is 'not better', so with plateau_patience 0 the rate halves at each
    of them (floored at min_learning_rate), and patience 3 stops at the 4th validation."""
    run = tmp_path / "run"
    lr = 1e-4
    train(make_config(tiny_data, **{"training.learning_rate": lr, "training.validate_every": 2,
                                    "training.max_steps": 40, "training.log_every": 1, "training.scheduler": "plateau",
                                    "training.plateau_patience": 0, "training.plateau_factor": 0.5,
                                    "training.min_learning_rate": 2e-5, "training.patience": 3}), run)
    valid = rows(run, "valid")
    assert len({r["accuracy"] for r in valid}) == 1                  # flat, as intended
    assert [r["step"] for r in valid] == [2, 4, 6, 8]
    assert [r["best"] for r in valid] == [True, False, False, False]
    assert [r["lr"] for r in valid] == pytest.approx([lr, lr / 2, lr / 4, 2e-5])   # 1e-4/8 < the floor
    assert [r["lr"] for r in rows(run, "train") if r["step"] in (3, 5, 7)] == pytest.approx([lr, lr / 2, lr / 4])
    done = json.loads((run / "training.json").read_text())
    assert done["steps"] == 8 and done["stopped"].startswith("early stopping") and done["best_step"] == 2


# ---------------------------------------------------------------- limits

def test_max_epochs_stops_after_every_pair_was_seen_that_many_times(tiny_data, tmp_path):
    from seq2seq.tasks import build_task

    config = make_config(tiny_data, **{"training.max_steps": "null", "training.max_epochs": 2,
                                       "training.log_every": 1, "training.validate_every": 1000})
    run = train(config, tmp_path / "run")
    task = build_task(config)
    epochs = [task.epoch_batches(e) for e in range(2)]
    for batches in epochs:                                           # each epoch covers the 200 pairs once
        assert sorted(i for b in batches for i in b.tolist()) == list(range(200))
    done = json.loads((run / "training.json").read_text())
    assert done["steps"] == sum(map(len, epochs)) and "max_epochs=2" in done["stopped"]
    assert [r["epoch"] for r in rows(run, "train")] == [0] * len(epochs[0]) + [1] * len(epochs[1])


def test_max_minutes_stops_on_the_wall_clock(tiny_data, tmp_path):
    import time

    start = time.perf_counter()
    run = train(make_config(tiny_data, **{"training.max_steps": 10**6, "training.max_minutes": 0.02}),
                tmp_path / "run")
    wall = time.perf_counter() - start
    done = json.loads((run / "training.json").read_text())
    assert "max_minutes=0.02" in done["stopped"] and 1 < done["steps"] < 10**6
    assert 1.2 <= done["seconds"] <= wall                           # 0.02 min = 1.2 s of training


# ---------------------------------------------------------------- optimisation

def _first_update(tiny_data, tmp_path, **over):
    """Weights before and after one update of a fresh run."""
    from seq2seq.tasks import build_task

    config = make_config(tiny_data, **{"training.max_steps": 1, "training.learning_rate": 0.01, **over})
    torch.manual_seed(config.seed)                                   # as train() builds the model
    before = {k: v.clone() for k, v in build_task(config).build_model().state_dict().items()}
    run = train(config, tmp_path / "run")
    after, _ = load_checkpoint(run / "checkpoints" / "last")
    return before, {k[len("model."):]: v for k, v in after.items() if k.startswith("model.")}


@pytest.mark.parametrize("optimizer,decay", [("adam", 0.0), ("adam", 0.1), ("adamw", 0.1), ("sgd", 0.1)])
def test_weight_decay_on_a_parameter_without_gradient(tiny_data, tmp_path, optimizer, decay):
    """The source <unk> embedding never occurs in training, so its gradient is 0 and only
    the decay moves it: adam's L2 term makes the gradient lambda w, and Adam's first step is
    lr g / (|g| + 1e-8); AdamW shrinks w by (1 - lr lambda) and takes no Adam step;
    SGD takes w - lr lambda w (Loshchilov & Hutter 2019, algorithm 2)."""
    before, after = _first_update(tiny_data, tmp_path, **{"training.optimizer": optimizer,
                                                          "training.weight_decay": decay})
    key = "encoder.embedding.weight"
    w0, w1 = before[key][1].double(), after[key][1].double()       # row 1 = <unk>
    lr = 0.01
    if optimizer == "adam":
        g = decay * w0
        expected = w0 - lr * g / (g.abs() + 1e-8)
    elif optimizer == "adamw":
        expected = w0 * (1 - lr * decay)
    else:
        expected = w0 - lr * decay * w0
    torch.testing.assert_close(w1, expected, rtol=1e-5, atol=1e-7)
    assert not torch.equal(before["decoder.output.weight"], after["decoder.output.weight"])   # it did train


def _criterion_on_a_batch(data, **over):
    """The training task's teacher-forced output and criterion terms for five pairs."""
    from seq2seq.tasks import build_task

    task = build_task(make_config(data, **over))
    torch.manual_seed(0)
    model = task.build_model()
    batch = task.batch(torch.arange(5))
    with torch.no_grad():
        output = task.forward(model, batch, 1.0)
        return task, batch, output, task.criterion(output, batch, 0)


def test_label_smoothing_is_szegedys_mixture_with_the_uniform_distribution(tiny_data):
    """loss = sum over real targets of (1 - eps) * -log p(y) + eps * mean_k -log p(k)."""
    eps = 0.2
    task, batch, output, terms = _criterion_on_a_batch(tiny_data, **{"training.label_smoothing": eps})
    logp = torch.log_softmax(output.logits.double(), -1)
    expected = 0.0
    for b in range(batch.tgt_out.size(0)):
        for t in range(batch.tgt_out.size(1)):
            y = int(batch.tgt_out[b, t])
            if y != task.corpus.tgt_vocab.pad_id:
                expected += (1 - eps) * -logp[b, t, y].item() + eps * -logp[b, t].mean().item()
    assert terms.loss.item() == pytest.approx(expected, rel=1e-5)


def test_coverage_loss_enters_the_trainers_objective(tiny_data):
    """objective = cross-entropy + w * sum_t sum_j min(a_tj, sum_{t'<t} a_t'j) (See et al. eq. 12-13)."""
    w = 0.7
    _, batch, output, terms = _criterion_on_a_batch(tiny_data, **{
        "model.decoder.coverage": "true", "model.decoder.attention": "bahdanau", "training.coverage_loss_weight": w})
    a = output.attention.double()
    cov = 0.0
    for b in range(a.size(0)):
        for t in range(int(batch.tgt_mask[b].sum())):
            for j in range(a.size(2)):
                cov += min(a[b, t, j].item(), a[b, :t, j].sum().item())
    assert cov > 0
    assert terms.objective.item() == pytest.approx(terms.loss.item() + w * cov, rel=1e-5)


def test_bf16_training_trains_in_mixed_precision(tiny_data, tmp_path):
    """bf16 autocast: fp32 parameters and optimizer state, a loss close to the fp32 run's
    but not equal to it (the products really ran in bfloat16)."""
    over = {"training.max_steps": 20, "training.log_every": 10}
    fp32 = train(make_config(tiny_data, **over), tmp_path / "fp32")
    bf16 = train(make_config(tiny_data, **over, **{"training.precision": "bf16"}), tmp_path / "bf16")
    tensors, _ = load_checkpoint(bf16 / "checkpoints" / "last")
    assert all(v.dtype == torch.float32 for k, v in tensors.items() if k.startswith(("model.", "optimizer.")) and
               v.is_floating_point())
    la, lb = [r["loss"] for r in rows(fp32, "train")], [r["loss"] for r in rows(bf16, "train")]
    assert la != lb and lb == pytest.approx(la, rel=0.05)


def test_bf16_on_a_cpu_without_native_bfloat16_is_warned(tiny_data, tmp_path, monkeypatch, capsys):
    """bf16 autocast on a CPU that lacks avx512_bf16 / amx_bf16 (Arm: bf16) is emulated and
    slower than fp32: training says so and names the key; cpuinfo flags are read as Linux writes them."""
    from seq2seq import training

    (tmp_path / "amd").write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    (tmp_path / "spr").write_text("flags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n")
    (tmp_path / "arm").write_text("Features\t: fp asimd bf16 i8mm\n")
    assert training.cpu_has_native_bf16(tmp_path / "amd") is False
    assert training.cpu_has_native_bf16(tmp_path / "spr") is True
    assert training.cpu_has_native_bf16(tmp_path / "arm") is True
    assert training.cpu_has_native_bf16(tmp_path / "missing") is None
    over = {"training.max_steps": 1, "training.precision": "bf16"}
    for native, warned in ((False, True), (True, False), (None, False)):
        monkeypatch.setattr(training, "cpu_has_native_bf16", lambda native=native: native)
        train(make_config(tiny_data, **over), tmp_path / f"run_{native}")
        err = capsys.readouterr().err
        assert ("without native bfloat16" in err and "set training.precision=fp32" in err) == warned, err


def test_precision_auto_is_bf16_only_where_bfloat16_is_native(tiny_data, tmp_path, monkeypatch, capsys):
    """training.precision=auto trains exactly as bf16 on a CPU with native bfloat16 products
    and exactly as fp32 on one without (same losses, bit for bit), and the log says which."""
    from seq2seq import training

    over = {"training.max_steps": 12, "training.log_every": 4}
    ref = {p: [r["loss"] for r in rows(train(make_config(tiny_data, **over, **{"training.precision": p}),
                                             tmp_path / p), "train")] for p in ("fp32", "bf16")}
    assert ref["fp32"] != ref["bf16"]
    capsys.readouterr()
    for native, expected in ((True, "bf16"), (False, "fp32"), (None, "fp32")):
        monkeypatch.setattr(training, "cpu_has_native_bf16", lambda native=native: native)
        assert training.resolve_precision("auto", torch.device("cpu")) == expected
        assert training.resolve_precision("fp32", torch.device("cpu")) == "fp32"
        run = train(make_config(tiny_data, **over, **{"training.precision": "auto"}), tmp_path / f"auto_{native}")
        assert [r["loss"] for r in rows(run, "train")] == ref[expected]
        assert f"[precision] auto: {expected} on cpu" in capsys.readouterr().err


def test_training_flushes_denormals_on_cpu(tiny_data, tmp_path, monkeypatch):
    """training.flush_denormal (default on): float32 values below 1.2e-38 read as 0 in every
    update (flush-to-zero / denormals-are-zero, set before the run starts) and not after it;
    false leaves the process's setting alone."""
    from seq2seq import training

    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-39])                    # a float32 denormal (made while not flushed)
    seen = []
    step = training.Trainer.train_step

    def recording_step(self, batches):
        seen.append((tiny * 1.0).item() == 0)
        return step(self, batches)

    monkeypatch.setattr(training.Trainer, "train_step", recording_step)
    try:
        assert (tiny * 1.0).item() != 0
        train(make_config(tiny_data, **{"training.max_steps": 3, "training.flush_denormal": False}), tmp_path / "off")
        assert seen == [False] * 3
        seen.clear()
        train(make_config(tiny_data, **{"training.max_steps": 3}), tmp_path / "on")
        assert seen == [True] * 3 and (tiny * 1.0).item() != 0
    finally:
        torch.set_flush_denormal(False)


# ---------------------------------------------------------------- scheduled sampling

def test_scheduled_sampling_is_applied_logged_and_drawn(tiny_data, tmp_path):
    """The linear schedule eps_i = max(end, start - (start - end) i / steps) (Bengio et al. 2015)
    at the update i that each logged step s took (i = s - 1), a teacher_forcing.png, and
    weights that differ from a teacher-forced run's (eps < 1 really fed model outputs)."""
    over = {"training.max_steps": 8, "training.log_every": 2}
    tf = train(make_config(tiny_data, **over), tmp_path / "tf")
    ss = train(make_config(tiny_data, **over, **{"training.teacher_forcing.schedule": "linear",
                                                 "training.teacher_forcing.start": 1.0,
                                                 "training.teacher_forcing.end": 0.2,
                                                 "training.teacher_forcing.steps": 4}), tmp_path / "ss")
    logged = [(r["step"], r["teacher_forcing"]) for r in rows(ss, "train")]
    assert logged == [(s, pytest.approx(max(0.2, 1.0 - 0.8 * (s - 1) / 4))) for s in (2, 4, 6, 8)]
    assert all("teacher_forcing" not in r for r in rows(tf))
    assert (ss / "teacher_forcing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tf / "teacher_forcing.png").exists()
    a, _ = load_checkpoint(tf / "checkpoints" / "last")
    b, _ = load_checkpoint(ss / "checkpoints" / "last")
    assert not torch.equal(a["model.decoder.output.weight"], b["model.decoder.output.weight"])


# ---------------------------------------------------------------- checkpoints kept and averaged

def test_keep_checkpoints_prunes_and_average_is_their_mean(tiny_data, tmp_path, monkeypatch, capsys):
    from seq2seq.api import Seq2Seq
    from seq2seq.cli import main

    run = train(make_config(tiny_data, **{"training.max_steps": 40, "training.validate_every": 10,
                                          "training.keep_checkpoints": 2}), tmp_path / "run")
    kept = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert kept == ["step_00000030.json", "step_00000030.safetensors", "step_00000040.json",
                    "step_00000040.safetensors"]
    assert main(["average", str(run)]) == 0
    a, _ = load_checkpoint(run / "checkpoints" / "step_00000030")
    b, _ = load_checkpoint(run / "checkpoints" / "step_00000040")
    model = Seq2Seq.load(run, checkpoint="averaged")
    for k, v in model.model.state_dict().items():
        torch.testing.assert_close(v, (a[f"model.{k}"] + b[f"model.{k}"]) / 2, msg=k)
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a b c\nd e f g\n")))
    assert main(["predict", str(run), "--checkpoint", "averaged", "--beam", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == model.predict(["a b c", "d e f g"], beam=3)
