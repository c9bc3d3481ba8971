"""Every cell, attention and bridge learns the toy reverse task (>= 95% sequence accuracy).

The source reaches the decoder through attention, the bridge, or both; the
combination ``attention: none`` + ``bridge: none`` is excluded since the decoder
could not see the source at all.  Without attention the whole source must pass
through one fixed-size state (Sutskever et al. 2014), so those cases reverse
strings of 2-5 symbols; with attention, 2-8.
"""

import pytest
import torch

from seq2seq.api import Seq2Seq
from seq2seq.training import train

from conftest import make_config

ATTENTION_CASES = {
    # each cell type (with attention and a projection bridge)
    "cell=rnn": {"model.encoder.cell": "rnn", "model.decoder.cell": "rnn"},
    "cell=gru": {"model.encoder.cell": "gru", "model.decoder.cell": "gru"},
    "cell=lstm": {"model.encoder.cell": "lstm", "model.decoder.cell": "lstm"},
    # each attention type (luong_general is the default; bahdanau is the scheduled-sampling case below)
    "attention=luong_dot": {"model.decoder.attention": "luong_dot", "model.encoder.hidden_size": 32,
                            "training.max_steps": 1500},
    "attention=luong_concat+input_feeding": {"model.decoder.attention": "luong_concat",
                                             "model.decoder.input_feeding": "true"},
    # the bridge that passes nothing: attention alone carries the source
    "bridge=none": {"model.bridge": "none"},
    # the encoder-decoder family: reversed source, scheduled sampling (both modes), Transformer
    "reverse_source+input_feeding": {"model.reverse_source": "true", "model.decoder.input_feeding": "true"},
    "scheduled_sampling=two_pass": {"training.teacher_forcing.schedule": "linear",
                                    "training.teacher_forcing.end": 0.5, "training.teacher_forcing.steps": 1000},
    "scheduled_sampling=exact+bahdanau": {"model.decoder.attention": "bahdanau",
                                          "training.teacher_forcing.schedule": "inverse_sigmoid",
                                          "training.teacher_forcing.k": 300},
    "transformer": {"model.encoder.type": "transformer", "model.decoder.type": "transformer",
                    "model.decoder.hidden_size": 64, "training.learning_rate": 0.002,
                    "training.scheduler": "inverse_sqrt", "training.warmup_steps": 200},
}
NO_ATTENTION_CASES = {
    "bridge=last": {"model.bridge": "last", "model.encoder.hidden_size": 48},
    "bridge=projection+lstm": {"model.bridge": "projection", "model.encoder.cell": "lstm",
                               "model.decoder.cell": "lstm", "model.encoder.hidden_size": 96},
    # Cho et al. 2014: the context at every step and in the readout
    "context_every_step": {"model.decoder.context_every_step": "true", "model.encoder.hidden_size": 96},
    # Sutskever et al. 2014: reversed source through the final state
    "reverse_source+lstm": {"model.bridge": "last", "model.reverse_source": "true", "model.encoder.cell": "lstm",
                            "model.decoder.cell": "lstm", "model.encoder.hidden_size": 48},
}
COMMON = {"training.learning_rate": 0.002, "training.batch_size": 64, "training.validate_every": 250,
          "training.plateau_patience": 0}


def _train_and_score(data, overrides, tmp_path):
    config = make_config(data, **{**COMMON, **overrides})
    torch.manual_seed(0)
    train(config, tmp_path / "run")
    return Seq2Seq.load(tmp_path / "run").evaluate(data / "test.tsv")


@pytest.mark.parametrize("name", list(ATTENTION_CASES))
def test_learns_reverse_with_attention(name, reverse_data, tmp_path):
    results = _train_and_score(reverse_data, {"training.max_steps": 1000, **ATTENTION_CASES[name]}, tmp_path)
    assert results["accuracy"] >= 95.0, results


@pytest.mark.parametrize("name", list(NO_ATTENTION_CASES))
def test_learns_reverse_through_the_bridge_alone(name, reverse_short_data, tmp_path):
    overrides = {"training.max_steps": 2000, "model.decoder.attention": "none", "model.decoder.hidden_size": 96,
                 **NO_ATTENTION_CASES[name]}
    results = _train_and_score(reverse_short_data, overrides, tmp_path)
    assert results["accuracy"] >= 95.0, results


def test_every_shipped_config_validates():
    from pathlib import Path

    from seq2seq.config import load_config

    configs = sorted(Path("configs").rglob("*.yaml"))
    assert len(configs) >= 8
    for path in configs:
        load_config(path)


def test_word_pairs_toy_config_memorises_the_seed_pairs(tmp_path):
    from seq2seq.config import load_config

    config = load_config("configs/toy_word_pairs.yaml", ["training.progress_bar=false"])
    torch.manual_seed(0)
    train(config, tmp_path / "run")
    model = Seq2Seq.load(tmp_path / "run")
    assert model.predict(["king", "man", "prince"]) == ["queen", "woman", "princess"]
    assert model.evaluate("examples/word_pairs.tsv")["accuracy"] >= 95.0
