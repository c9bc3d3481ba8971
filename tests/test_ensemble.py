"""Ensemble decoding: the mixture written out by hand, an ensemble of one equals its
model, batch invariance, mixed architectures and source tokenizers, the target
vocabulary check, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.api import Seq2Seq
from seq2seq.errors import Seq2SeqError
from seq2seq.training import train
from tests.conftest import make_config

SOURCES = ["a b c", "d e f g h", "b", "c c a d", "h g"]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """Copy-task runs: two seeds of one GRU model; an LSTM reading characters; one
    whose target vocabulary keeps fewer tokens."""
    root = tmp_path_factory.mktemp("ensemble")
    specs = {"gru1": {}, "gru2": {"seed": 2},
             "lstm_chars": {"data.src_tokenizer": "char", "model.encoder.cell": "lstm",
                            "model.decoder.cell": "lstm", "model.decoder.attention": "bahdanau"},
             "small_vocab": {"data.tgt_max_size": 4}}
    return {name: train(make_config(tiny_data, **{"training.max_steps": 60, **over}), root / name)
            for name, over in specs.items()}


def flat(nbest):
    return [(p.text, p.score) for preds in nbest for p in preds]


@pytest.mark.parametrize("options", [{}, {"beam": 3, "nbest": 2, "length_penalty": 0.6},
                                     {"strategy": "sample", "seed": 3, "num_samples": 2, "nbest": 2}])
def test_an_ensemble_of_one_decodes_as_its_model(runs, options):
    single = Seq2Seq.load(runs["gru1"], device="cpu")
    ensemble = Seq2Seq.load([runs["gru1"]], device="cpu")
    a = single.predict(SOURCES, with_scores=True, return_attention=True, **options)
    b = ensemble.predict(SOURCES, with_scores=True, return_attention=True, **options)
    assert [t for t, _ in flat(a)] == [t for t, _ in flat(b)]
    assert [s for _, s in flat(a)] == pytest.approx([s for _, s in flat(b)], abs=1e-5)
    assert torch.allclose(a[0][0].attention, b[0][0].attention, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"beam": 3, "nbest": 2, "length_penalty": 0.6}])
def test_an_ensemble_of_two_copies_decodes_as_the_model(runs, options):
    """The mean of two equal distributions is that distribution: outputs, scores, attention."""
    single = Seq2Seq.load(runs["gru1"], device="cpu")
    twice = Seq2Seq.load([runs["gru1"], runs["gru1"]], device="cpu", weights=[1, 3])
    a = single.predict(SOURCES, with_scores=True, return_attention=True, **options)
    b = twice.predict(SOURCES, with_scores=True, return_attention=True, **options)
    assert [t for t, _ in flat(a)] == [t for t, _ in flat(b)]
    assert [s for _, s in flat(a)] == pytest.approx([s for _, s in flat(b)], abs=1e-5)
    assert torch.allclose(a[0][0].attention, b[0][0].attention, atol=1e-6)


def test_a_step_is_the_weighted_mean_of_the_members_probabilities(runs):
    """log p = log(w1 p1 + w2 p2), written out from the members' own softmax; the
    attention is w1 a1 + w2 a2."""
    one, two = (Seq2Seq.load(runs[k], device="cpu") for k in ("gru1", "gru2"))
    ens = Seq2Seq.load([runs["gru1"], runs["gru2"]], device="cpu", weights=[1, 3])
    split = ens._with_members(ens.corpus.sources(SOURCES), lambda m: m.corpus.sources(SOURCES).dataset)
    batch = split.dataset.batch(torch.arange(len(SOURCES)))
    prev = torch.full((len(SOURCES),), ens.corpus.tgt_vocab.bos_id)
    with torch.no_grad():
        mixed, _, attention = ens.model.decoder.step(prev, ens.model.encode(batch.src, batch.src_lengths,
                                                                             batch.src_mask, members=batch.members)[1])
        members = []
        for m in (one, two):
            state = m.model.encode(batch.src, batch.src_lengths, batch.src_mask)[1]
            logits, _, a = m.model.decoder.step(prev, state)
            members.append((torch.softmax(logits, -1), a))
    expected = torch.log(0.25 * members[0][0] + 0.75 * members[1][0])
    assert torch.allclose(mixed, expected, atol=1e-5)
    assert torch.allclose(mixed.exp().sum(-1), torch.ones(len(SOURCES)), atol=1e-5)
    assert torch.allclose(attention, 0.25 * members[0][1] + 0.75 * members[1][1], atol=1e-6)


def test_ensemble_decoding_is_batch_invariant(runs):
    """Sentences finishing at different steps, decoded together or one by one."""
    ens = Seq2Seq.load([runs["gru1"], runs["gru2"], runs["lstm_chars"]], device="cpu")
    for options in ({}, {"beam": 4, "nbest": 3}):
        together = ens.predict(SOURCES, batch_size=len(SOURCES), with_scores=True, **options)
        alone = [ens.predict([s], batch_size=1, with_scores=True, **options)[0] for s in SOURCES]
        assert [t for t, _ in flat(together)] == [t for t, _ in flat(alone)]
        assert [s for _, s in flat(together)] == pytest.approx([s for _, s in flat(alone)], abs=1e-5)


def test_members_may_differ_in_architecture_and_source_tokenizer(runs):
    ens = Seq2Seq.load([runs["gru1"], runs["lstm_chars"]], device="cpu")
    assert not ens.model.shared_source
    out = ens.predict(SOURCES, beam=3)
    assert len(out) == len(SOURCES) and all(isinstance(t, str) for t in out)
    with pytest.raises(Seq2SeqError, match="need ensemble runs that tokenize the source alike"):
        ens.predict(SOURCES, return_attention=True)


def test_target_vocabularies_must_match(runs):
    with pytest.raises(Seq2SeqError, match=r"gru1 and .*small_vocab: target vocabularies differ in size"):
        Seq2Seq.load([runs["gru1"], runs["small_vocab"]], device="cpu")
    with pytest.raises(Seq2SeqError, match=r"--ensemble-weights: 1 weight\(s\) for 2 runs"):
        Seq2Seq.load([runs["gru1"], runs["gru2"]], device="cpu", weights=[1])


def test_evaluate_scores_the_mixture(runs, tiny_data):
    test = tiny_data / "test.tsv"
    single = Seq2Seq.load(runs["gru1"], device="cpu").evaluate(test)
    one = Seq2Seq.load([runs["gru1"]], device="cpu").evaluate(test)
    assert one["loss"] == pytest.approx(single["loss"], abs=1e-5) and one["accuracy"] == single["accuracy"]
    two = Seq2Seq.load([runs["gru1"], runs["gru2"], runs["lstm_chars"]], device="cpu").evaluate(test)
    assert two["sentences"] == single["sentences"] and 0 <= two["accuracy"] <= 100
    assert two["loss"] > 0


def test_cli_predict_and_evaluate_with_several_runs(runs, tiny_data, capsys):
    from seq2seq.cli import main

    def cli(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "seq2seq", *map(str, args)], input=stdin, capture_output=True,
                              text=True, timeout=120)

    r = cli("predict", runs["gru1"], runs["gru2"], "--ensemble-weights", 2, 1, "--beam", 3, "--scores",
            stdin="\n".join(SOURCES) + "\n")
    assert r.returncode == 0, r.stderr
    expected = Seq2Seq.load([runs["gru1"], runs["gru2"]], device="cpu", weights=[2, 1]).predict(
        SOURCES, beam=3, with_scores=True)
    assert r.stdout.splitlines() == [f"{p[0].text}\t{p[0].score:.4f}" for p in expected]
    capsys.readouterr()
    assert main(["evaluate", str(runs["gru1"]), str(runs["gru2"]), "--data", str(tiny_data / "test.tsv"), "--json"]) == 0
    assert '"accuracy"' in capsys.readouterr().out
    assert main(["evaluate", str(runs["gru1"]), str(runs["small_vocab"]), "--data", str(tiny_data / "test.tsv")]) == 2
    assert "target vocabularies differ in size (14 vs 8 tokens)" in capsys.readouterr().err


def test_serve_decodes_an_ensemble_as_the_api_does(runs):
    """``seq2seq serve NAME=DIR1,DIR2`` serves the members' ensemble: the same outputs and
    scores as ``Seq2Seq.load([DIR1, DIR2])``; a forecast run or a missing member is refused."""
    from fastapi.testclient import TestClient

    from seq2seq.serve.app import create_app
    from seq2seq.serve.models import load_model

    served = load_model(f"mix={runs['gru1']},{runs['lstm_chars']}", device="cpu")
    with TestClient(create_app([served])) as client:
        info = client.get("/v1/models").json()
        r = client.post("/v1/models/mix/predict", json={"inputs": SOURCES, "beam": 3})
    assert r.status_code == 200, r.text
    expected = Seq2Seq.load([runs["gru1"], runs["lstm_chars"]], device="cpu").predict(SOURCES, beam=3,
                                                                                      with_scores=True)
    got = [(o["hypotheses"][0]["text"], o["hypotheses"][0]["score"]) for o in r.json()["results"]]
    assert got == pytest.approx([(p[0].text, p[0].score) for p in expected])
    assert str(runs["lstm_chars"]) in str(info)
    assert load_model(f"{runs['gru1']},{runs['gru2']}", device="cpu").name == "gru1-gru2"
    with pytest.raises(Seq2SeqError, match="nope: not a run directory"):
        load_model(f"{runs['gru1']},nope")
