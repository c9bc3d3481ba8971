"""Decoding promises of the README on a small trained copy model: the a * src_len + b
length cap, beam results independent of the batch when sentences finish at different
steps, <unk> replacement through beam search and sampling, bf16 decoding, evaluation
that never drops a long source, and ``train --overwrite``."""

import math

import pytest
import torch

from seq2seq.errors import Seq2SeqError
from seq2seq.training import train

from conftest import make_config

SOURCES = ["a", "b c", "d e f", "g h i j", "a c e g b", "b d f h a c", "h g f e d c b", "a b c d e f g h"]


@pytest.fixture(scope="module")
def copy_model(tiny_data, tmp_path_factory):
    from seq2seq.api import Seq2Seq

    run = train(make_config(tiny_data, **{"training.max_steps": 150, "training.validate_every": 150}),
                tmp_path_factory.mktemp("copy") / "run")
    return Seq2Seq.load(run)


@pytest.mark.parametrize("strategy", [dict(beam=1), dict(beam=4), dict(strategy="sample", seed=1)])
def test_length_cap_a_times_source_length_plus_b(copy_model, strategy):
    """At most floor(a * |x| + b) output tokens; a copy model wants |x| tokens, so the cap
    binds exactly on the sources longer than it."""
    a, b = 0.5, 1
    preds = copy_model.predict(SOURCES, with_scores=True, max_len_a=a, max_len_b=b, **strategy)
    for src, (p,) in zip(SOURCES, preds):
        n = len(src.split())
        cap = math.floor(a * n + b)
        assert len(p.tokens) <= cap, (src, p.text)
        if n >= 6:                                    # caps 4 and 5 against 6 to 8 wanted tokens
            assert len(p.tokens) == cap, (src, p.text)


def test_beam_results_do_not_depend_on_the_batch_when_rows_finish_at_different_steps(copy_model):
    """Each sentence decoded alone equals the same sentence inside batches of 3 and 8,
    shuffled, with sentences of 1 to 8 tokens finishing at different steps."""
    kw = dict(beam=4, nbest=3, length_penalty=0.6, with_scores=True)
    alone = [copy_model.predict([s], batch_size=1, **kw)[0] for s in SOURCES]
    assert len({len(n[0].tokens) for n in alone}) >= 6                 # finished at different steps
    order = [5, 0, 7, 2, 6, 1, 4, 3]
    for batch_size in (3, 8):
        mixed = copy_model.predict([SOURCES[i] for i in order], batch_size=batch_size, **kw)
        for i, got in zip(order, mixed):
            assert [h.tokens for h in got] == [h.tokens for h in alone[i]]
            assert [h.score for h in got] == pytest.approx([h.score for h in alone[i]], abs=1e-5)


@pytest.fixture()
def unk_model(copy_model):
    """The copy model with its output bias pushed to <unk>: every output is <unk>."""
    dec = copy_model.model.decoder
    unk = copy_model.corpus.tgt_vocab.unk_id
    saved = dec.output.bias.detach().clone()
    with torch.no_grad():
        dec.output.bias[unk] += 100.0
    yield copy_model
    with torch.no_grad():
        dec.output.bias.copy_(saved)


@pytest.mark.parametrize("strategy", [dict(beam=3, nbest=2), dict(strategy="sample", num_samples=3, seed=2)])
def test_unk_is_replaced_by_the_most_attended_source_word(unk_model, strategy):
    """Luong et al. 2015: each <unk> output becomes the source token of its row's attention argmax."""
    plain = unk_model.predict(SOURCES[2:5], with_scores=True, **strategy)
    assert all(set(ps[0].tokens) == {"<unk>"} for ps in plain)
    replaced = unk_model.predict(SOURCES[2:5], replace_unk=True, return_attention=True, **strategy)
    for src, ps, before in zip(SOURCES[2:5], replaced, plain):
        assert len(ps) == len(before)
        for p, q in zip(ps, before):                                     # the same hypotheses, seeded
            assert len(p.tokens) == len(q.tokens) == p.attention.shape[0]   # no <eos>: one row per output
            assert p.tokens == [src.split()[int(row.argmax())] if tok == "<unk>" else tok
                                for tok, row in zip(q.tokens, p.attention)]


def test_replace_unk_needs_attention(tiny_data, tmp_path):
    from seq2seq.api import Seq2Seq

    run = train(make_config(tiny_data, **{"training.max_steps": 1, "model.decoder.attention": "none"}),
                tmp_path / "run")
    with pytest.raises(Seq2SeqError, match="needs model.decoder.attention"):
        Seq2Seq.load(run).predict(["a b"], replace_unk=True)


def test_bf16_decoding_is_close_to_fp32(copy_model):
    """--precision bf16 (loose): the same outputs for nearly every source, scores within
    bfloat16's 3 significant digits, and not bit-identical scores (bf16 really ran)."""
    fp32 = copy_model.predict(SOURCES, beam=3, with_scores=True)
    bf16 = copy_model.predict(SOURCES, beam=3, with_scores=True, precision="bf16")
    same = sum(a[0].text == b[0].text for a, b in zip(fp32, bf16))
    assert same >= len(SOURCES) - 1
    pairs = [(a[0].score, b[0].score) for a, b in zip(fp32, bf16) if a[0].text == b[0].text]
    assert all(abs(x - y) <= 0.05 + 0.05 * abs(x) for x, y in pairs)
    assert any(x != y for x, y in pairs)


def test_evaluate_never_drops_a_long_source(copy_model, tiny_data, tmp_path):
    """Under data.long_source: drop, predict gives a long source an empty output, but
    evaluate decodes it whole: with one long source whose reference is unreachable, accuracy
    is 1 of 2 (50 %), not 1 of 1."""
    short, long = "a b", "a b c d e f g"
    ref = copy_model.predict([short])[0]
    (tmp_path / "t.tsv").write_text(f"{short}\t{ref}\n{long}\tzzz\n")
    d = copy_model.config.data
    saved = d.max_src_len, d.long_source
    d.max_src_len, d.long_source = 4, "drop"
    try:
        with pytest.warns(UserWarning, match="longer than data.max_src_len"):
            assert copy_model.predict([long]) == [""]
        res = copy_model.evaluate(tmp_path / "t.tsv", metrics=["accuracy", "wer"])
    finally:
        d.max_src_len, d.long_source = saved
    assert res["sentences"] == 2 and res["accuracy"] == pytest.approx(50.0) and res["wer"] == pytest.approx(50.0)


def test_overwrite_replaces_a_run(tiny_data, tmp_path, capsys):
    from seq2seq.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\ndata: {{train: {tiny_data}/train.tsv, src_tokenizer: word, tgt_tokenizer: word}}\n"
                   "model: {encoder: {hidden_size: 8, embedding_size: 8}, decoder: {hidden_size: 8, "
                   "embedding_size: 8}}\ntraining: {max_steps: 2, progress_bar: false}\n")
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--run", str(run)]) == 0
    (run / "marker").write_text("from the first run")
    assert main(["train", str(cfg), "--run", str(run)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (run / "marker").exists()
    assert main(["train", str(cfg), "--run", str(run), "--overwrite"]) == 0
    assert not (run / "marker").exists() and (run / "checkpoints" / "last.safetensors").exists()


def test_evaluate_scores_every_reference_of_a_multi_reference_file(copy_model, tmp_path):
    """source<TAB>ref1<TAB>ref2...: BLEU over all of each line's references (sacrebleu,
    shorter lists padded by repeating their first reference)."""
    import sacrebleu

    sources = SOURCES[1:5]
    hyps = copy_model.predict(sources)
    refs = [["b c"], ["d e f", "f e d", "d e"], ["g h i", "g h i j k"], ["a c e g b", "a"]]
    (tmp_path / "m.tsv").write_text("".join(f"{s}\t" + "\t".join(r) + "\n" for s, r in zip(sources, refs)))
    res = copy_model.evaluate(tmp_path / "m.tsv", metrics=["bleu", "wer"])
    full = [[rs[k] if k < len(rs) else rs[0] for rs in refs] for k in range(3)]
    assert res["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, full).score)
    wrong = sum(h not in rs for h, rs in zip(hyps, refs))               # WER: right if any reference matches
    assert res["wer"] == pytest.approx(100 * wrong / len(sources))
