"""Sequence autoencoder and variational seq2seq (Bowman et al. 2016)."""

import math

import pytest
import torch

from seq2seq.api import Seq2Seq
from seq2seq.config import ModelConfig
from seq2seq.data.tsv import read_tsv
from seq2seq.errors import Seq2SeqError
from seq2seq.modules.latent import GaussianLatent, kl_annealing
from seq2seq.training import train

from conftest import make_config

VAE = {"model.latent_size": 16, "model.decoder.attention": "none", "model.encoder.hidden_size": 48,
       "model.decoder.hidden_size": 96, "data.autoencoder": "true"}


def test_kl_term_known_values():
    latent = GaussianLatent(4, 2).eval()
    with torch.no_grad():
        latent.proj.weight.zero_()
        latent.proj.bias.copy_(torch.tensor([0.0, 1.0, 0.0, math.log(4.0)]))   # mu = (0, 1), var = (1, 4)
    z, kl = latent(torch.randn(3, 4))
    assert torch.equal(z, torch.tensor([[0.0, 1.0]] * 3))                       # eval: z = mu
    # KL(N(mu, var) || N(0, 1)) = 1/2 (var + mu^2 - 1 - log var), summed over dimensions
    expected = 0.5 * (1 + 0 - 1 - 0) + 0.5 * (4 + 1 - 1 - math.log(4.0))
    torch.testing.assert_close(kl, torch.full((3,), expected))


def test_reparameterised_samples_have_the_posterior_moments():
    latent = GaussianLatent(1, 1).train()
    with torch.no_grad():
        latent.proj.weight.zero_()
        latent.proj.bias.copy_(torch.tensor([2.0, math.log(0.25)]))             # mu 2, sigma 0.5
    torch.manual_seed(0)
    z, _ = latent(torch.zeros(20000, 1))
    assert z.mean().item() == pytest.approx(2.0, abs=0.02)
    assert z.std().item() == pytest.approx(0.5, abs=0.02)


def test_kl_annealing_schedules():
    assert kl_annealing("constant", 0, 100) == 1.0
    assert [kl_annealing("linear", i, 100) for i in (0, 50, 100, 400)] == [0.0, 0.5, 1.0, 1.0]
    assert kl_annealing("logistic", 50, 100) == pytest.approx(0.5)
    assert kl_annealing("logistic", 0, 100) == pytest.approx(1 / (1 + math.exp(5)))
    assert kl_annealing("logistic", 100, 100) == pytest.approx(1 / (1 + math.exp(-5)))


def test_latent_needs_a_decoder_that_only_sees_z():
    with pytest.raises(ValueError, match="only through z"):
        ModelConfig.model_validate({"latent_size": 8})                    # default attention: luong_general
    with pytest.raises(ValueError, match="bridge: projection"):
        ModelConfig.model_validate({"latent_size": 8, "bridge": "last", "decoder": {"attention": "none"}})


def test_autoencoder_reads_the_first_column_as_both_sides(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("a b c\nd e\tignored\n")
    ex = read_tsv(p, autoencoder=True)
    assert [(e.source, e.references) for e in ex] == [("a b c", ["a b c"]), ("d e", ["d e"])]


def test_word_dropout_replaces_inputs_but_not_bos_or_padding(tiny_data, tmp_path):
    from seq2seq.data.corpus import Corpus
    from seq2seq.tasks.text import TextTask

    config = make_config(tiny_data, **{"training.word_dropout": 0.4})
    examples = read_tsv(config.data.train)
    corpus = Corpus.from_config(config.data, examples)
    split = corpus.split(examples)
    task = TextTask(config, corpus, split)
    batch = split.dataset.batch(torch.arange(200))
    torch.manual_seed(0)
    dropped = task.word_dropout(batch)
    unk = corpus.tgt_vocab.unk_id
    changed = dropped.tgt_in != batch.tgt_in
    assert torch.equal(dropped.tgt_in[changed], torch.full((int(changed.sum()),), unk))
    assert not changed[:, 0].any() and not changed[~batch.tgt_mask].any()
    real = batch.tgt_mask.clone()
    real[:, 0] = False
    assert changed[real].float().mean().item() == pytest.approx(0.4, abs=0.05)


def test_variational_autoencoder_reconstructs_and_samples(reverse_short_data, tmp_path, capsys):
    config = make_config(reverse_short_data, **VAE, **{"training.max_steps": 1000, "training.validate_every": 250,
                                                       "training.kl_anneal_steps": 1000,
                                                       "training.learning_rate": 0.003})
    torch.manual_seed(0)
    train(config, tmp_path / "run")
    rows = [r for r in map(eval_json, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())]
    assert any("kl" in r for r in rows)
    model = Seq2Seq.load(tmp_path / "run")
    # Reconstruction through z alone: a 2-5 symbol string over 10 symbols has a chance
    # below 1% unconditionally; the KL term trades some of it away as its weight anneals in.
    assert model.evaluate(reverse_short_data / "test.tsv")["accuracy"] >= 50.0
    samples = model.sample_prior(20, strategy="sample", seed=3)
    assert len(samples) == 20 and sum(bool(s) for s in samples) >= 15
    assert model.sample_prior(5, seed=1) == model.sample_prior(5, seed=1)
    symbols = set("abcdefghij")
    assert all(set(s.split()) <= symbols for s in samples)
    from seq2seq.cli import main                         # the `seq2seq sample` command prints the same draws

    assert main(["sample", str(tmp_path / "run"), "--num", "20", "--sample", "--seed", "3"]) == 0
    assert capsys.readouterr().out.split("\n") == samples + [""]


def test_sample_prior_needs_a_variational_run(tiny_data, tmp_path):
    train(make_config(tiny_data, **{"training.max_steps": 2}), tmp_path / "run")
    with pytest.raises(Seq2SeqError, match="variational"):
        Seq2Seq.load(tmp_path / "run").sample_prior(2)


def eval_json(line):
    import json

    return json.loads(line)
