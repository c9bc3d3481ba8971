"""Shared fixtures: tiny toy data and configs, CPU, fixed seeds."""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2seq.config import config_from_dict
from seq2seq.data.toy import write_toy_task

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same global RNG states, so a draw a test forgets to seed
    is still the same on every run and in any test order."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


BASE = {
    "name": "t",
    "seed": 1,
    "data": {"src_tokenizer": "word", "tgt_tokenizer": "word"},
    "model": {
        "encoder": {"cell": "gru", "embedding_size": 32, "hidden_size": 64, "layers": 1, "bidirectional": True,
                    "dropout": 0.0},
        "decoder": {"cell": "gru", "embedding_size": 32, "hidden_size": 64, "layers": 1, "dropout": 0.0,
                    "attention": "luong_general"},
        "bridge": "projection",
    },
    "training": {"batch_size": 32, "learning_rate": 0.005, "max_steps": 50, "validate_every": 1000,
                 "log_every": 1000, "early_stopping_metric": "accuracy", "progress_bar": False},
    "decoding": {"max_len_a": 1.0, "max_len_b": 3},
}


def run_cli(*args, cwd, stdin=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m seq2seq ARGS`` in ``cwd`` on one thread (as the in-process tests run, so
    outputs compare exactly), killed after ``timeout`` seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "seq2seq", *map(str, args)], cwd=cwd, input=stdin, env=env,
                          capture_output=True, text=True, timeout=timeout)


def make_config(data_dir: Path, **overrides):
    """A validated tiny config over ``data_dir``; overrides are dotted keys."""
    raw = copy.deepcopy(BASE)
    raw["data"].update(train=str(data_dir / "train.tsv"), valid=str(data_dir / "valid.tsv"),
                       test=str(data_dir / "test.tsv"))
    return config_from_dict(raw, overrides=[f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="session")
def reverse_data(tmp_path_factory) -> Path:
    """Reverse task: 3,000 training pairs of 2-8 symbols."""
    d = tmp_path_factory.mktemp("reverse")
    write_toy_task("reverse", d, train=3000, valid=200, test=200)
    return d


@pytest.fixture(scope="session")
def reverse_short_data(tmp_path_factory) -> Path:
    """Reverse task with 2-5 symbols: what a fixed-size context (no attention) learns in seconds."""
    from seq2seq.data.toy import toy_pairs

    d = tmp_path_factory.mktemp("reverse_short")
    for name, n, seed in (("train", 3000, 1), ("valid", 200, 2), ("test", 200, 3)):
        (d / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in toy_pairs("reverse", n, seed, max_len=5)))
    return d


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Copy task: 200 training pairs, for fast pipeline tests."""
    d = tmp_path_factory.mktemp("copy")
    write_toy_task("copy", d, train=200, valid=40, test=40)
    return d
