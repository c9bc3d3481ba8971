"""Data-parallel training (torchrun, gloo, 2 CPU processes, a tiny model): the same
weights as one process with the global batch, rank 0 the only writer, bit-identical
resume, resume on another number of ranks, the documented torchrun command line, and
a killed rank or Ctrl-C ending the whole job with no process left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import dump_config
from seq2seq.data.toy import write_toy_task
from seq2seq.training import resume, train

from conftest import make_config

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or sys.platform != "linux",
                                reason="torch.distributed with gloo on Linux")

TINY = {"model.encoder.hidden_size": 16, "model.decoder.hidden_size": 16, "model.encoder.embedding_size": 8,
        "model.decoder.embedding_size": 8, "training.batch_size": 8, "training.log_every": 5,
        "training.validate_every": 10, "training.scheduler": "none"}

# Records every file a rank opens for writing, renames or deletes under the run directory.
WRITE_AUDIT = '''
import os, sys
_run, _log = os.environ["AUDIT_RUN_DIR"], os.environ["AUDIT_LOG"] + "." + os.environ.get("RANK", "x")
def _hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, os.PathLike)):
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = (mode and any(c in mode for c in "wax+")) or (mode is None and flags & (os.O_WRONLY | os.O_RDWR))
        paths = [args[0]] if writing else []
    elif event in ("os.rename", "os.remove", "shutil.rmtree"):
        paths = [args[0]]
    else:
        return
    for p in paths:
        p = os.fspath(p)
        if isinstance(p, str) and os.path.abspath(p).startswith(_run):
            with open(_log, "a") as f:
                f.write(event + " " + p + "\\n")
sys.addaudithook(_hook)
'''


# Rank 1's time.perf_counter runs 3 times too fast (the trainer's clock for max_minutes).
FAST_CLOCK_ON_RANK_1 = '''
import os, time
if os.environ.get("RANK") == "1":
    _perf_counter = time.perf_counter
    _start = _perf_counter()
    time.perf_counter = lambda: _start + 3 * (_perf_counter() - _start)
'''


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ddp_data")
    write_toy_task("reverse", d, train=400, valid=24, test=24)
    return d


def torchrun(cfg_or_run: list[str], cwd: Path, env: dict | None = None, nproc: int = 2, timeout: int = 300):
    """The README's command line, ``torchrun --standalone --nproc_per_node 2 -m seq2seq train ...``."""
    exe = Path(sys.executable).with_name("torchrun")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*cmd, "--standalone", "--nproc_per_node", str(nproc), "-m", "seq2seq", "train",
                           *cfg_or_run], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run / "checkpoints" / "last")
    return tensors


def test_two_ranks_equal_one_process_with_the_global_batch_and_only_rank_0_writes(data, tmp_path):
    """2 ranks x batch 8 and 1 process x batch 16: the same global batches in the same
    order, so after 20 updates the same weights and Adam moments (to 1e-6).  Every write
    into the run directory (audited in each rank's interpreter) comes from rank 0."""
    cfg = tmp_path / "cfg.yaml"
    dump_config(make_config(data, **{**TINY, "training.max_steps": 20}), cfg)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(WRITE_AUDIT)
    two = tmp_path / "two"
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "AUDIT_RUN_DIR": str(two), "AUDIT_LOG": str(tmp_path / "writes")}
    p = torchrun([str(cfg), "--run-dir", str(two)], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "[distributed] 2 ranks (gloo): batch_size 8 examples per rank, global batch 16 examples" in p.stderr
    assert p.stderr.count("[done]") == 1                          # one voice for the job
    one = tmp_path / "one"
    train(make_config(data, **{**TINY, "training.max_steps": 20, "training.batch_size": 16}), one)
    a, b = weights(one), weights(two)
    assert json.loads((two / "training.json").read_text())["steps"] == 20
    for k in a:
        if k.startswith(("model.", "optimizer.")):
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    assert {"rng.torch", "rng.torch.rank1"} <= set(b)
    writes0 = (tmp_path / "writes.0").read_text().splitlines()
    assert any("last.safetensors" in w for w in writes0) and any("metrics.jsonl" in w for w in writes0)
    assert not (tmp_path / "writes.1").exists()                   # rank 1 never wrote into the run directory
    losses = lambda run: [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]  # noqa: E731
    assert losses(two) == pytest.approx(losses(one), abs=1e-5)


def test_resume_under_two_ranks_is_bit_identical_and_another_count_says_it_is_not(data, tmp_path, capsys):
    """12 updates straight and 6 + resume to 12, both under 2 ranks with dropout (each rank's
    RNG is saved and restored): every tensor of ``last`` is equal, bit for bit.  Resuming
    the 6-update run in one process continues from global step 6 and says it is not
    bit-identical."""
    over = {**TINY, "model.encoder.dropout": 0.3, "model.decoder.dropout": 0.3, "training.validate_every": 4}
    cfg12, cfg6 = tmp_path / "cfg12.yaml", tmp_path / "cfg6.yaml"
    dump_config(make_config(data, **{**over, "training.max_steps": 12}), cfg12)
    dump_config(make_config(data, **{**over, "training.max_steps": 6}), cfg6)
    straight, split = tmp_path / "straight", tmp_path / "split"
    for cfg, run in ((cfg12, straight), (cfg6, split)):
        p = torchrun([str(cfg), "--run-dir", str(run)], tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
    other = tmp_path / "other"
    shutil.copytree(split, other)
    p = torchrun(["--resume", str(split), "--set", "training.max_steps=12"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = weights(straight), weights(split)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    strip = lambda run: [{k: v for k, v in json.loads(r).items() if k not in ("tokens_per_s", "elapsed_s")}  # noqa: E731
                         for r in (run / "metrics.jsonl").read_text().splitlines() if '"final"' not in r]
    assert strip(straight) == strip(split)                        # the stop's own extra validation aside

    resume(other, ["training.max_steps=12"])                      # one process, from a 2-rank checkpoint
    err = capsys.readouterr().err
    assert "the run had 2 rank(s), this job has 1: continuing from global step 6" in err
    assert "not bit-identical" in err
    assert json.loads((other / "training.json").read_text())["steps"] == 12


def test_a_time_limit_stops_every_rank_at_the_same_step(data, tmp_path):
    """``max_minutes`` is read from rank 0's clock, shared every update: both ranks stop at the
    same step even though rank 1's clock runs 3 times too fast here (a rank leaving early
    would break the other's next collective: status != 0)."""
    cfg = tmp_path / "cfg.yaml"
    dump_config(make_config(data, **{**TINY, "training.max_steps": 10 ** 6, "training.max_minutes": 0.05,
                                     "training.validate_every": 10 ** 6}), cfg)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAST_CLOCK_ON_RANK_1)
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    p = torchrun([str(cfg), "--run-dir", str(tmp_path / "run")], tmp_path, env)
    assert p.returncode == 0, p.stderr[-3000:]
    done = json.loads((tmp_path / "run" / "training.json").read_text())
    assert done["stopped"] == "reached training.max_minutes=0.05" and done["steps"] > 1
    assert weights(tmp_path / "run")["rng.torch.rank1"].numel() > 0


def test_torchrun_reads_run_dir_as_ours_and_run_stays_an_alias():
    """torchrun's parser leaves ``--run-dir`` to seq2seq (``--run`` is ambiguous with its
    ``--run-path``: the trap this flag avoids); seq2seq still accepts ``--run``."""
    from torch.distributed.run import parse_args

    from seq2seq.cli import _parser

    args = parse_args(["--standalone", "--nproc_per_node", "2", "-m", "seq2seq", "train", "c.yaml",
                       "--run-dir", "runs/x", "--set", "training.max_steps=5"])
    assert args.training_script == "seq2seq"
    assert args.training_script_args == ["train", "c.yaml", "--run-dir", "runs/x", "--set", "training.max_steps=5"]
    with pytest.raises(SystemExit):
        parse_args(["--standalone", "--nproc_per_node", "2", "-m", "seq2seq", "train", "c.yaml", "--run", "runs/x"])
    assert _parser().parse_args(["train", "c.yaml", "--run", "runs/x"]).run == "runs/x"
    assert _parser().parse_args(["train", "c.yaml", "--run-dir", "runs/x"]).run == "runs/x"


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone(pids: list[int], wait_s: float = 20) -> bool:
    """Whether every process of ``pids`` has ended within ``wait_s`` seconds."""
    deadline = time.time() + wait_s
    while any(map(_alive, pids)) and time.time() < deadline:
        time.sleep(0.1)
    return not any(map(_alive, pids))


def _start_long_job(data: Path, tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """``seq2seq train CFG --nproc 2`` for a very long run; returns once both ranks train."""
    cfg = tmp_path / "cfg.yaml"
    dump_config(make_config(data, **{**TINY, "training.max_steps": 10 ** 7, "training.log_every": 2,
                                     "training.validate_every": 10 ** 6}), cfg)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", "train", str(cfg), "--nproc", "2", "--run-dir", str(run)],
                            cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "the job did not start training"
        time.sleep(0.2)
    workers = [p for p in _children(proc.pid) if "seq2seq" in Path(f"/proc/{p}/cmdline").read_bytes().decode()]
    assert len(workers) == 2, workers
    return proc, workers


def _end(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc.returncode, err


def test_a_killed_rank_ends_the_job_with_an_error_and_no_process_left(data, tmp_path):
    proc, workers = _start_long_job(data, tmp_path)
    os.kill(workers[1], signal.SIGKILL)
    code, err = _end(proc)
    assert code != 0
    assert "killed by SIGKILL" in err and "every rank of the job was stopped" in err, err[-3000:]
    assert _gone(workers)


def test_ctrl_c_ends_the_job_with_status_130_and_no_process_left(data, tmp_path):
    proc, workers = _start_long_job(data, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)                      # what Ctrl-C does: the terminal's whole process group
    code, err = _end(proc)
    assert code == 130, err[-3000:]
    assert "seq2seq: interrupted" in err
    assert _gone(workers)


def test_forecast_runs_train_data_parallel_too(tmp_path):
    """The one trainer, for the forecast task: 2 ranks x 16 windows equal 1 process x 32."""
    from seq2seq.config import ForecastConfig, config_from_dict
    from seq2seq.forecast.builtin_series import sine_csv

    from test_forecast import yaml_config

    csv = tmp_path / "sine.csv"
    sine_csv(csv, series=4, length=160, seed=3)
    raw = yaml_config(csv)
    raw["training"].update(max_steps=10, validate_every=5, log_every=5, batch_size=16, scheduler="none",
                           learning_rate=0.001)   # at 0.01, Adam lifts float32 summation-order noise to ~1e-6
    cfg = tmp_path / "cfg.yaml"
    dump_config(config_from_dict(raw, schema=ForecastConfig), cfg)
    p = torchrun([str(cfg), "--run-dir", str(tmp_path / "two")], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    raw["training"]["batch_size"] = 32
    train(config_from_dict(raw, schema=ForecastConfig), tmp_path / "one")
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for k in a:
        if k.startswith("model."):
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)


def test_a_launcher_killed_with_sigkill_leaves_no_rank_behind(data, tmp_path):
    """No handler runs in a SIGKILLed launcher; each rank's PR_SET_PDEATHSIG ends it."""
    proc, workers = _start_long_job(data, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert _gone(workers)


def test_nproc_hands_the_same_command_to_torchrun(monkeypatch):
    """``seq2seq train ... --nproc N`` launches ``seq2seq train ...`` (without --nproc) in N ranks."""
    import seq2seq.distributed
    from seq2seq.cli import main

    calls = []
    monkeypatch.setattr(seq2seq.distributed, "launch", lambda n, argv: calls.append((n, argv)))
    assert main(["train", "c.yaml", "--nproc", "3", "--run", "r", "--overwrite", "--set", "training.max_steps=5"]) == 0
    assert main(["train", "--resume", "r", "--nproc", "2", "--set", "training.max_steps=9"]) == 0
    assert calls == [(3, ["train", "c.yaml", "--run-dir", "r", "--overwrite", "--set", "training.max_steps=5"]),
                     (2, ["train", "--resume", "r", "--set", "training.max_steps=9"])]


def test_a_user_error_on_rank_0_ends_every_rank_with_its_message(data, tmp_path):
    """An existing run directory (no --overwrite): rank 0's one-line error, every rank ends."""
    cfg = tmp_path / "cfg.yaml"
    dump_config(make_config(data, **TINY), cfg)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("x")
    p = subprocess.run([sys.executable, "-m", "seq2seq", "train", str(cfg), "--nproc", "2", "--run-dir",
                        str(tmp_path / "run")], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert "run directory exists; pass --overwrite" in p.stderr
    assert "rank 1: stopping, rank 0 failed" in p.stderr and "rank 0 (pid" in p.stderr
    assert (tmp_path / "run" / "config.yaml").read_text() == "x"


def test_find_unused_parameters_reaches_ddp(data, tmp_path, monkeypatch):
    """``training.distributed.find_unused_parameters`` is handed to DistributedDataParallel
    (checked in one gloo rank of this process), and the update is unchanged by it."""
    import torch.distributed as dist

    from seq2seq.distributed import init, shutdown

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "0")                # a free port (one rank: nobody else connects)
    monkeypatch.setattr("seq2seq.distributed._die_with_parent", lambda: None)
    ranks, _ = init("gloo", 1.0, torch.device("cpu"))
    try:
        from seq2seq.tasks import build_task
        from seq2seq.training import Trainer

        for flag in (False, True):
            cfg = make_config(data, **{**TINY, "training.distributed.find_unused_parameters": flag})
            task = build_task(cfg)
            torch.manual_seed(0)
            trainer = Trainer(task, task.build_model(), tmp_path / str(flag), torch.device("cpu"), ranks)
            assert trainer.training_pass.find_unused_parameters is flag
            trainer.train_step([task.batch(task.epoch_batches(0)[0])])
            params = [p.detach().clone() for p in trainer.model.parameters()]
            if flag:
                for a, b in zip(first, params):
                    torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
            first = params
    finally:
        shutdown(ranks)
    assert not dist.is_initialized()
