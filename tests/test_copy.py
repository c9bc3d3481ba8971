"""Copy attention (pointer-generator, See et al. 2017) and coverage."""

import pytest
import torch

from seq2seq.api import Seq2Seq
from seq2seq.config import config_from_dict
from seq2seq.data.corpus import Corpus
from seq2seq.data.toy import toy_pairs
from seq2seq.data.tsv import Example
from seq2seq.data.vocab import Vocabulary
from seq2seq.criteria import coverage_loss
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.search import DecodeOptions, beam_search, greedy_search
from seq2seq.training import train

from conftest import make_config

WORDS = [f"w{i}" for i in range(300)]


def test_vocabulary_extends_with_a_sources_unknown_words():
    v = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>", "a", "b"])
    ids, oovs = v.extend(["a", "x", "b", "y", "x"])
    assert ids == [4, 6, 5, 7, 6] and oovs == ["x", "y"]
    assert v.encode(["y", "a", "z"], oovs) == [7, 4, 1]          # z: unknown and not in the source
    assert v.decode([7, 4, 6, 3, 5], oovs) == ["y", "a", "x"]


def _copy_model(attention="luong_general", coverage=False, cell="gru"):
    raw = {"data": {"train": "unused", "src_tokenizer": "word", "tgt_tokenizer": "word", "tgt_max_size": 3},
           "model": {"encoder": {"cell": cell, "embedding_size": 8, "hidden_size": 8, "dropout": 0.0},
                     "decoder": {"cell": cell, "embedding_size": 8, "hidden_size": 16, "dropout": 0.0,
                                 "attention": attention, "copy_attention": True, "coverage": coverage}},
           "training": {"max_steps": 1}}
    cfg = config_from_dict(raw)
    examples = [Example("a b c", ["a b c"], 1), Example("a q", ["q a"], 2), Example("z a b c d", ["d z"], 3),
                Example("a", ["a a"], 4)]
    corpus = Corpus.from_config(cfg.data, examples, copy=True)
    split = corpus.split(examples)
    torch.manual_seed(0)
    model = EncoderDecoder.from_config(cfg.model, len(corpus.src_vocab), len(corpus.tgt_vocab)).eval()
    return model, corpus, split


@pytest.mark.parametrize("attention,coverage", [("luong_general", False), ("bahdanau", False),
                                                ("luong_concat", True), ("luong_dot", True)])
def test_copy_distribution_sums_to_one_and_never_gives_padding_mass(attention, coverage):
    model, corpus, split = _copy_model("luong_general" if attention == "luong_dot" else attention, coverage)
    batch = split.dataset.batch([0, 1, 2, 3])
    v = len(corpus.tgt_vocab)
    assert split.oovs[2] != [] and int(batch.src_ext.max()) >= v        # unknown words get extended ids
    out = model(batch, return_attention=True)
    logp, attn = out.logits, out.attention
    probs = logp.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:2]), atol=1e-5, rtol=0)
    assert probs[..., corpus.tgt_vocab.pad_id].max() == 0 and probs[..., corpus.tgt_vocab.bos_id].max() == 0
    # an extended id only has mass in the sentences whose source contains it
    for row in range(4):
        present = set(batch.src_ext[row].tolist())
        for ext_id in range(v, probs.size(-1)):
            if ext_id not in present:
                assert probs[row, :, ext_id].max() == 0
    # padded source positions get no attention, hence copy nothing
    assert attn.masked_select(~batch.src_mask.unsqueeze(1).expand_as(attn)).abs().max() == 0


@pytest.mark.parametrize("coverage", [False, True])
def test_copy_step_matches_teacher_forcing_and_padding_is_harmless(coverage):
    model, corpus, split = _copy_model("bahdanau", coverage)
    ds = split.dataset
    batch = ds.batch([0, 1, 2, 3])
    full = model(batch).logits
    from seq2seq.search.common import start_state

    state = start_state(model, batch)
    for t in range(batch.tgt_in.size(1)):
        step, state, _ = model.decoder.step(batch.tgt_in[:, t], state)
        torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-5)
    for i in range(4):
        alone = model(ds.batch([i])).logits
        n = alone.size(1)
        ext = alone.size(-1)
        torch.testing.assert_close(full[i, :n, :ext], alone[0], atol=1e-5, rtol=1e-5)


def test_coverage_loss_known_value():
    a = torch.tensor([[[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]])   # (1, 3, 3)
    # c_1 = 0; c_2 = (.5, .5, 0): min -> .5; c_3 = (1, .5, .5): min -> .5
    assert coverage_loss(a, torch.ones(1, 3, dtype=torch.bool)).item() == pytest.approx(1.0)
    assert coverage_loss(a, torch.tensor([[True, True, False]])).item() == pytest.approx(0.5)


def test_beam_search_with_copy_outputs_source_words():
    model, corpus, split = _copy_model("luong_general")
    batch = split.dataset.batch([0, 1, 2, 3])
    opts = DecodeOptions(strategy="beam", beam_size=3, nbest=3, max_len_a=1.0, max_len_b=2)
    hyps = beam_search(model, batch, corpus.tgt_vocab.bos_id, corpus.tgt_vocab.eos_id, opts)
    greedy = greedy_search(model, batch, corpus.tgt_vocab.bos_id, corpus.tgt_vocab.eos_id, opts)
    for row, nbest in enumerate(hyps):
        assert len(nbest) == 3
        ext = set(batch.src_ext[row].tolist())
        for h in nbest + greedy[row]:
            for tok in h.tokens:       # any id past the vocabulary is one of this sentence's source words
                assert tok < len(corpus.tgt_vocab) or tok in ext


@pytest.fixture(scope="module")
def copy_oov_data(tmp_path_factory):
    """Copy strings of 3-6 words from 300; the target vocabulary keeps 20 words, so
    most target words are unknown to it and must be copied from the source."""
    d = tmp_path_factory.mktemp("copy_oov")
    for name, n, seed in (("train", 3000, 1), ("valid", 200, 2), ("test", 200, 3)):
        pairs = toy_pairs("copy", n, seed, symbols=WORDS, min_len=3, max_len=6)
        (d / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    return d


def test_copy_attention_learns_to_copy_out_of_vocabulary_words(copy_oov_data, tmp_path):
    config = make_config(copy_oov_data, **{"data.tgt_max_size": 20, "model.decoder.copy_attention": "true",
                                           "training.max_steps": 800, "training.validate_every": 400,
                                           "training.learning_rate": 0.003})
    torch.manual_seed(0)
    train(config, tmp_path / "run")
    model = Seq2Seq.load(tmp_path / "run")
    test = (copy_oov_data / "test.tsv").read_text().splitlines()
    oov_share = sum(w not in model.corpus.tgt_vocab.stoi for line in test for w in line.split("\t")[1].split())
    assert oov_share / sum(len(line.split("\t")[1].split()) for line in test) > 0.8
    assert model.evaluate(copy_oov_data / "test.tsv")["accuracy"] >= 95.0
    assert model.evaluate(copy_oov_data / "test.tsv", beam=4)["accuracy"] >= 95.0
    sources = [line.split("\t")[0] for line in test[:5]]
    assert model.predict(sources) == sources
