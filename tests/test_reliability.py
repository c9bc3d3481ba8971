"""What a second writer, a kill, a full disk, a diverged loss, damaged run files and
bad input lines do to a run (the README's "Guarantees" name these tests)."""

from __future__ import annotations

import errno
import io
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
import yaml

from seq2seq import checkpoint
from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.data.tsv import decode_lines
from seq2seq.errors import Seq2SeqError
from seq2seq.run_lock import LOCK_NAME, RunLock
from seq2seq.training import Trainer, resume, train

from conftest import make_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_run(tiny_data, tmp_path_factory) -> Path:
    """A trained text run: 4 steps, validation (best/last) every 2."""
    run = tmp_path_factory.mktemp("small") / "run"
    train(make_config(tiny_data, **{"training.max_steps": 4, "training.validate_every": 2}), run)
    return run


def copy_run(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


# ------------------------------------------------------------------ one writer per run


def test_run_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(Seq2SeqError, match=rf"{tmp_path}: in use by process {os.getpid()} \(started \d{{4}}-"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path) as again:                           # released on exit
        assert again.held
    assert (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_killed_process_never_blocks(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from seq2seq.run_lock import RunLock; "
                               "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Seq2SeqError, match=f"in use by process {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunLock(tmp_path) as lock:                            # the OS released the dead holder's lock
        assert lock.held


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "seq2seq", *map(str, args)]


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.monotonic()
    try:
        _wait_for_(predicate, what, proc, timeout)
    finally:
        print("WAIT", what, round(time.monotonic() - t0, 2), flush=True)


def _wait_for_(predicate, what, proc, timeout):
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _last_step(run: Path) -> int:
    try:
        return json.loads((run / "checkpoints" / "last.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return -1


def _prewarmed(go: Path, *args, cwd: Path) -> subprocess.Popen:
    """``seq2seq ARGS`` in a process that imports everything first, then waits for the file
    ``go``: it then acts within milliseconds, whatever the machine's import time."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, time, pathlib\nfrom seq2seq.cli import main\nimport seq2seq.training\n"
         "while not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.01)\nsys.exit(main(sys.argv[2:]))",
         str(go), *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_writer_is_refused_and_a_killed_writer_never_blocks(tiny_data, tmp_path):
    """``train --resume RUN`` while another process trains RUN exits 2 naming that process,
    and the first run finishes unharmed; after SIGKILL of a writer, a resume succeeds."""
    cfg = make_config(tiny_data, **{"data.valid": "null", "training.max_steps": 20,     # no validation: fast
                                    "training.validate_every": 10, "training.log_every": 10,
                                    "training.num_threads": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
    run, go_second, go_third = tmp_path / "run", tmp_path / "go2", tmp_path / "go3"
    second = _prewarmed(go_second, "train", "--resume", run, "--set", "training.max_steps=100", cwd=tmp_path)
    third = _prewarmed(go_third, "train", "--resume", run, "--set", "training.max_steps=100000",
                       cwd=tmp_path)
    first = subprocess.Popen(_cli("train", tmp_path / "c.yaml", "--run", run), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run / "config.yaml").exists() and f"process {first.pid}" in
                  (run / LOCK_NAME).read_text(errors="replace"), "the first writer's lock", first)
        go_second.touch()
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
        assert f"seq2seq: error: {run}: in use by process {first.pid} (started " in err
        _, err1 = first.communicate(timeout=300)
        assert first.returncode == 0, err1                     # the first writer finished unharmed
        assert json.loads((run / "training.json").read_text())["steps"] == 20 and _last_step(run) == 20
        assert yaml.safe_load((run / "config.yaml").read_text())["training"]["max_steps"] == 20

        go_third.touch()                                       # a writer killed while it trains
        _wait_for(lambda: _last_step(run) > 20, "a checkpoint of the resumed run", third)
        third.send_signal(signal.SIGKILL)
        third.wait()
    finally:
        for p in (first, second, third):
            p.kill()
            p.wait()
    killed_at = _last_step(run)
    resume(run, [f"training.max_steps={killed_at + 5}"])        # its lock does not block the next writer
    assert _last_step(run) == killed_at + 5


def test_average_is_a_writer(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path / "run")
    with RunLock(run):
        assert main(["average", str(run)]) == 2
    assert f"{run}: in use by process {os.getpid()}" in capsys.readouterr().err


def test_unwritable_run_directory_is_an_error(tiny_data, tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("seq2seq.run_lock.os.open", refuse)
    with pytest.raises(Seq2SeqError, match="cannot write the run directory .Permission denied"):
        train(make_config(tiny_data, **{"training.max_steps": 1}), tmp_path / "run")
    monkeypatch.undo()
    monkeypatch.setattr("seq2seq.checkpoint.tempfile.mkstemp", refuse)
    with pytest.raises(Seq2SeqError, match="out.txt: cannot write .Permission denied.; choose a folder"):
        checkpoint.atomic_write_text(tmp_path / "out.txt", "x")


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    """A data file, vocabulary or checkpoint written through a temporary file is readable as
    any other file the user writes (umask applied), not mkstemp's owner-only 0600."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    checkpoint.atomic_write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_an_error(tiny_data, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(Seq2SeqError, match="cannot"):
        train(make_config(tiny_data, **{"training.max_steps": 1}), ro / "run")


# ------------------------------------------------------------------ checkpoints


def test_weights_that_do_not_fit_the_config_name_tensor_shapes_and_key(small_run, tmp_path):
    from seq2seq import Seq2Seq

    run = copy_run(small_run, tmp_path / "edited")
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"]["encoder"]["hidden_size"] = 48
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(Seq2SeqError) as e:
        Seq2Seq.load(run)
    msg = str(e.value)
    assert "best.safetensors: tensor 'encoder." in msg and "(192," in msg and "(144," in msg, msg
    assert "check model.encoder.hidden_size" in msg, msg
    with pytest.raises(Seq2SeqError, match="tensor 'encoder.*check model.encoder.hidden_size"):
        resume(run)                                       # the trainer's restore says the same

    run = copy_run(small_run, tmp_path / "vocab")
    with open(run / "src_vocab.txt", "a") as f:
        f.write("extra\n")
    with pytest.raises(Seq2SeqError, match=r"tensor 'encoder.embedding.weight' has shape \(\d+, 32\) in the "
                                           r"checkpoint but \(\d+, 32\).*check src_vocab.txt"):
        Seq2Seq.load(run)

    run = copy_run(small_run, tmp_path / "attention")
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["model"]["decoder"]["attention"] = "none"
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(Seq2SeqError, match="do not fit the model that config.yaml describes: .* unexpected"):
        Seq2Seq.load(run)


def test_checkpoint_from_a_newer_format_is_refused(tmp_path):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    save_checkpoint(tmp_path / "x", {"w": torch.ones(2)}, {"step": 1})
    raw = (tmp_path / "x.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    (tmp_path / "x.safetensors").write_bytes(st_save(st_load(raw), metadata={**header, "format_version": "3"}))
    with pytest.raises(Seq2SeqError, match="checkpoint format 3 is newer than this seq2seq reads .up to 2.; upgrade"):
        load_checkpoint(tmp_path / "x")


def test_a_format_1_checkpoint_still_loads(tmp_path):
    from safetensors.torch import save as st_save

    (tmp_path / "x.safetensors").write_bytes(st_save({"w": torch.ones(2)},
                                                     metadata={"checkpoint_id": "abc", "format": "seq2seq"}))
    (tmp_path / "x.json").write_text(json.dumps({"step": 7, "checkpoint_id": "abc"}))
    tensors, meta = load_checkpoint(tmp_path / "x")
    assert torch.equal(tensors["w"], torch.ones(2)) and meta["step"] == 7


def test_a_flipped_weight_byte_is_detected(tmp_path):
    save_checkpoint(tmp_path / "x", {"w": torch.arange(8.0)}, {"step": 1})
    raw = bytearray((tmp_path / "x.safetensors").read_bytes())
    raw[-3] ^= 0x10                                      # inside the tensor data: still a valid file
    (tmp_path / "x.safetensors").write_bytes(bytes(raw))
    with pytest.raises(Seq2SeqError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "x")


def test_reader_meeting_a_half_replaced_pair_retries_once(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "x", {"w": torch.zeros(2)}, {"step": 1})
    old_json = (tmp_path / "x.json").read_bytes()
    save_checkpoint(tmp_path / "x", {"w": torch.ones(2)}, {"step": 2})
    new_json = (tmp_path / "x.json").read_bytes()
    (tmp_path / "x.json").write_bytes(old_json)           # the writer has renamed .safetensors, not yet .json
    waits = []

    def writer_finishes(seconds):
        waits.append(seconds)
        (tmp_path / "x.json").write_bytes(new_json)

    monkeypatch.setattr(checkpoint.time, "sleep", writer_finishes)
    tensors, meta = load_checkpoint(tmp_path / "x")
    assert meta["step"] == 2 and torch.equal(tensors["w"], torch.ones(2)) and waits == [checkpoint.TORN_RETRY_S]
    (tmp_path / "x.json").write_bytes(old_json)           # a pair that stays torn is reported after one retry
    monkeypatch.setattr(checkpoint.time, "sleep", lambda s: waits.append(s))
    with pytest.raises(Seq2SeqError, match="different saves"):
        load_checkpoint(tmp_path / "x")
    assert len(waits) == 2


def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(small_run, tmp_path, monkeypatch):
    run = copy_run(small_run, tmp_path / "run")
    before, before_meta = load_checkpoint(run / "checkpoints" / "last")
    fsync, calls = os.fsync, []

    def disk_fills_up(fd):                # the 2nd file (.json) of the first checkpoint save finds no space
        if "/checkpoints/" in os.readlink(f"/proc/self/fd/{fd}"):
            calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", disk_fills_up)
    with pytest.raises(Seq2SeqError, match=r"\.json: disk full while writing .No space left on device.; free space"):
        resume(run, ["training.max_steps=8"])
    monkeypatch.undo()
    after, after_meta = load_checkpoint(run / "checkpoints" / "last")        # intact and loadable
    assert after_meta == before_meta and after.keys() == before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert load_checkpoint(run / "checkpoints" / "best")[1] == load_checkpoint(small_run / "checkpoints" / "best")[1]
    assert not list((run / "checkpoints").glob(".*.tmp"))
    resume(run, ["training.max_steps=6"])                  # space again: the run goes on from step 4
    assert load_checkpoint(run / "checkpoints" / "last")[1]["step"] == 6


def test_nan_loss_stops_training_and_never_saves_nan(tiny_data, tmp_path, monkeypatch):
    step = Trainer.train_step

    def diverge_at_5(self, batches):
        if self.state.step == 4:                            # the 5th update: weights become NaN
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))
        return step(self, batches)

    monkeypatch.setattr(Trainer, "train_step", diverge_at_5)
    run = tmp_path / "run"
    cfg = make_config(tiny_data, **{"training.max_steps": 10, "training.validate_every": 3,
                                    "training.log_every": 1})
    with pytest.raises(Seq2SeqError, match=r"training diverged: the loss is nan at step 5 \(the last finite loss "
                                           r"was [0-9.]+ at step 4\)"):
        train(cfg, run)
    for name in ("best", "last"):
        tensors, meta = load_checkpoint(run / "checkpoints" / name)
        assert meta["step"] == 3 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 4 and all(r["loss"] == r["loss"] for r in rows)   # no NaN logged


# ------------------------------------------------------------------ predict's input lines


def test_decode_lines_keeps_line_numbers():
    assert decode_lines(b"a\r\nb\n\nc") == (["a", "b", "", "c"], [])
    assert decode_lines(b"") == ([], []) and decode_lines(b"\n") == ([""], [])
    assert decode_lines("x\u2028y\n".encode()) == (["x\u2028y"], [])      # one line: only \n ends a line
    with pytest.raises(Seq2SeqError, match=r"^<stdin>:3: invalid UTF-8 at byte 1 of the line"):
        decode_lines(b"a\nb\nc\xff\nd\n")
    assert decode_lines(b"a\n\xff\xfe\nd\n\x80", on_bad_line="skip") == (["a", "", "d", ""], [2, 4])


def _predict(run: Path, stdin: bytes, *args, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = main(["predict", str(run), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_predict_bad_line_error_names_the_line_and_decodes_nothing(small_run, monkeypatch, capsys):
    status, out, err = _predict(small_run, b"a b\nc \xff d\ne\n", monkeypatch=monkeypatch, capsys=capsys)
    assert status == 2 and out == ""
    assert err.startswith("seq2seq: error: <stdin>:2: invalid UTF-8 at byte 2 of the line; nothing was decoded")


def test_predict_bad_line_skip_answers_with_an_empty_line(small_run, monkeypatch, capsys):
    with pytest.warns(UserWarning, match=r"<stdin>: 1 line\(s\) of invalid UTF-8 answered with empty lines "
                                         r"\(--on-bad-line skip\), the first is line 2"):
        status, out, err = _predict(small_run, b"a b\nc \xff d\ne\n", "--on-bad-line", "skip",
                                    monkeypatch=monkeypatch, capsys=capsys)
    lines = out.split("\n")
    assert status == 0 and len(lines) == 4 and lines[1] == "" and lines[3] == ""
    assert [lines[0], lines[2]] == _predict(small_run, b"a b\ne\n", monkeypatch=monkeypatch,
                                            capsys=capsys)[1].splitlines()
