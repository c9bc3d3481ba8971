"""Text tasks: sentencepiece subwords, BLEU on detokenised output, <unk> replacement,
long-source policies, line alignment in predict, the chat prompt."""

import os
import pty
import select
import signal
import sys
import time

import pytest
import sacrebleu
import torch

from seq2seq.config import config_from_dict
from seq2seq.data.corpus import Corpus
from seq2seq.data.tokenizers import SentencePieceTokenizer, WordTokenizer
from seq2seq.data.tsv import Example, read_tsv
from seq2seq.data.vocab import SPECIALS, Vocabulary
from seq2seq.errors import Seq2SeqError
from seq2seq.search.common import Hypothesis

from conftest import make_config, run_cli as cli

SENTENCES = ["the cat sat on the mat", "a dog barked at the cat", "the mat is red", "dogs and cats play",
             "the red dog sat", "a cat is on a mat"] * 5


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_round_trip_and_save_load(tmp_path, model_type):
    tok = SentencePieceTokenizer.train(SENTENCES, model_type, vocab_size=40)
    assert 0 < len(tok) <= 40
    for text in ["the cat sat on the mat", "  dogs   play  ", "zebra unseen words"]:
        pieces = tok.encode(text)
        assert pieces[0].startswith("\u2581")                      # word-initial pieces carry the space
        assert tok.decode(pieces) == " ".join(text.split())        # detokenised text, unseen characters too
    tok.save(tmp_path / "m.model")
    again = SentencePieceTokenizer.load(tmp_path / "m.model")
    assert again.encode("the red cat") == tok.encode("the red cat")
    low = SentencePieceTokenizer.train(SENTENCES, model_type, vocab_size=40, lowercase=True)
    assert low.decode(low.encode("The CAT")) == "the cat"


def test_sentencepiece_model_errors(tmp_path):
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(Seq2SeqError, match="bad.model"):
        SentencePieceTokenizer.load(tmp_path / "bad.model")
    with pytest.raises(Seq2SeqError, match="no.model"):
        SentencePieceTokenizer.load(tmp_path / "no.model")


def _data_config(tmp_path, **data):
    raw = {"data": {"train": str(tmp_path / "t.tsv"), "src_tokenizer": "sentencepiece",
                    "tgt_tokenizer": "sentencepiece", **data}, "training": {"max_steps": 1}}
    return config_from_dict(raw).data


@pytest.mark.parametrize("joint", [True, False])
def test_corpus_trains_saves_and_loads_sentencepiece(tmp_path, joint):
    train = [Example(s, [s.upper()], i + 1) for i, s in enumerate(SENTENCES)]
    cfg = _data_config(tmp_path, sentencepiece={"vocab_size": 60, "joint": joint, "model_type": "bpe"})
    corpus = Corpus.from_config(cfg, train)
    corpus.save(tmp_path)
    files = sorted(p.name for p in tmp_path.glob("*.model"))
    assert files == (["sentencepiece.model"] if joint else ["src_sentencepiece.model", "tgt_sentencepiece.model"])
    loaded = Corpus.load(cfg, tmp_path)
    assert (loaded.src_tokenizer is loaded.tgt_tokenizer) == joint
    for side in ("src_tokenizer", "tgt_tokenizer"):
        assert getattr(loaded, side).encode("THE CAT sat") == getattr(corpus, side).encode("THE CAT sat")
    assert loaded.src_vocab.itos == corpus.src_vocab.itos and loaded.tgt_vocab.itos == corpus.tgt_vocab.itos
    # the target side of a joint model also knows the lower-case source pieces; a separate one does not
    assert ("\u2581the" in corpus.tgt_tokenizer.encode("the cat")) == joint


def test_joint_sentencepiece_needs_both_sides(tmp_path):
    with pytest.raises(Seq2SeqError, match="sentencepiece.joint"):
        config_from_dict({"data": {"train": "t.tsv", "src_tokenizer": "sentencepiece", "tgt_tokenizer": "word"},
                          "training": {"max_steps": 1}})


def _toy_corpus():
    src = Vocabulary(list(SPECIALS) + ["le", "chat"])
    tgt = Vocabulary(list(SPECIALS) + ["the", "cat"])
    return Corpus(WordTokenizer(), WordTokenizer(), src, tgt)


def test_unk_replaced_by_most_attended_source_token():
    corpus = _toy_corpus()
    the, cat, unk, eos = 4, 5, corpus.tgt_vocab.unk_id, corpus.tgt_vocab.eos_id
    attention = torch.tensor([[0.8, 0.1, 0.1],        # "the"  <- le
                              [0.1, 0.2, 0.7],        # <unk>  <- Zorglub
                              [0.1, 0.8, 0.1],        # "cat"  <- chat
                              [0.3, 0.3, 0.4]])       # <eos>
    hyp = Hypothesis([the, unk, cat], -1.0, -1.0, attention)
    source = ["le", "chat", "Zorglub"]
    assert corpus.output_tokens(hyp, source) == ["the", "<unk>", "cat"]
    assert corpus.output_tokens(hyp, source, replace_unk=True) == ["the", "Zorglub", "cat"]
    # copy attention: an extended id already names the source word; a generated <unk> is still replaced
    hyp_copy = Hypothesis([len(corpus.tgt_vocab), unk, eos], -1.0, -1.0, attention[[2, 0, 3]])
    assert corpus.output_tokens(hyp_copy, source, ["Zorglub"], replace_unk=True) == ["Zorglub", "le"]
    with pytest.raises(Seq2SeqError, match="attention"):
        corpus.output_tokens(Hypothesis([unk], 0.0, 0.0, None), source, replace_unk=True)


def test_long_source_policies():
    corpus = _toy_corpus()
    ex = [Example("le chat", ["the cat"], 1), Example("le chat le chat", ["the cat the cat"], 7)]
    assert [e.line for e in corpus.split(ex, max_src_len=2, long_source="drop").examples] == [1]
    cut = corpus.split(ex, max_src_len=3, long_source="truncate")
    assert cut.source_tokens == [["le", "chat"], ["le", "chat", "le"]]
    assert cut.dataset.src_lengths.tolist() == [2, 3]
    with pytest.raises(Seq2SeqError, match=r"train.tsv:7: source has 4 tokens, more than data.max_src_len=3"):
        corpus.split(ex, max_src_len=3, long_source="reject", where="train.tsv")


# ---------------------------------------------------------------- a tiny trained subword run


@pytest.fixture(scope="module")
def spm_run(tiny_data, tmp_path_factory):
    from seq2seq.training import train

    run = tmp_path_factory.mktemp("spm") / "run"
    config = make_config(tiny_data, **{"data.src_tokenizer": "sentencepiece", "data.tgt_tokenizer": "sentencepiece",
                                       "data.sentencepiece.vocab_size": 30, "data.max_src_len": 12,
                                       "training.max_steps": 150, "training.early_stopping_metric": "bleu",
                                       "training.validate_every": 75, "evaluation.metrics": "[bleu, chrf]"})
    train(config, run)
    return run


def test_subword_run_bleu_is_sacrebleu_on_detokenised_output(spm_run, tiny_data):
    from seq2seq.api import Seq2Seq

    assert (spm_run / "sentencepiece.model").exists()
    model = Seq2Seq.load(spm_run)
    examples = read_tsv(tiny_data / "test.tsv", multi_reference=True)
    hyps = model.predict([e.source for e in examples])
    results = model.evaluate(tiny_data / "test.tsv", metrics=["bleu", "chrf"])
    refs = [[e.references[0] for e in examples]]
    assert results["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, refs).score)
    assert results["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, refs).score)
    assert results["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert results["bleu"] > 20                     # it learned to copy through subwords
    assert not any("\u2581" in h for h in hyps)     # detokenised: no piece markers


def test_predict_keeps_line_alignment_with_empty_and_long_lines(spm_run, tmp_path):
    from seq2seq.api import Seq2Seq

    long = " ".join(["a b c d e"] * 4)                  # more than max_src_len=12 pieces
    lines = ["a b c", "", "   ", "d e", long, "b"]
    r = cli("predict", spm_run, "--replace-unk", cwd=tmp_path, stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("\n")[:-1]
    assert len(out) == len(lines)
    assert out[1] == out[2] == "" and out[4] == ""    # empty inputs, and the long one under long_source: drop
    assert out[0] and out[3] and out[5]
    assert "seq2seq: warning: 1 source(s) longer than data.max_src_len=12" in r.stderr and "line 5" in r.stderr
    model = Seq2Seq.load(spm_run)
    assert out[0] == model.predict(["a b c"])[0]
    model.config.data.long_source = "reject"
    with pytest.raises(Seq2SeqError, match="input:5: source has"):
        model.predict(lines)
    model.config.data.long_source = "truncate"
    cut = model.predict([long], with_scores=True)[0][0]
    assert cut.source_tokens == model.corpus.src_tokenizer.encode(long)[:12] and cut.text != ""


def _read_until(fd, marker: bytes, timeout: float = 120.0) -> bytes:
    buf, end = b"", time.time() + timeout
    while marker not in buf:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
        if not ready:
            raise AssertionError(f"no {marker!r} from the chat prompt; got {buf!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def _wait(pid: int, timeout: float = 30.0) -> int:
    """The child's exit code; killed (and the test failed) if it runs past ``timeout`` s."""
    end = time.time() + timeout
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the chat did not exit within {timeout} s")


def _chat(run):
    """A ``seq2seq chat`` on a pseudo terminal (one thread): (pid, fd)."""
    pid, fd = pty.fork()
    if pid == 0:                                         # child: the chat on the terminal's slave side
        os.execve(sys.executable, [sys.executable, "-m", "seq2seq", "chat", str(run), "--prompt", "you> "],
                  {**os.environ, "OMP_NUM_THREADS": "1"})
    return pid, fd


@pytest.mark.parametrize("end", [b"\x04", b"/quit\n"])          # Ctrl-D, or the /quit command
def test_chat_answers_through_a_pseudo_terminal(spm_run, end):
    from seq2seq.api import Seq2Seq

    expected = Seq2Seq.load(spm_run).predict(["b c d"])[0]
    pid, fd = _chat(spm_run)
    try:
        _read_until(fd, b"you> ")
        os.write(fd, b"b c d\n")
        answer = _read_until(fd, b"you> ").decode()
        os.write(fd, end)
        _read_until(fd, b"\n", timeout=30)
    finally:
        code = _wait(pid)
    lines = [x.strip() for x in answer.replace("\r", "").split("\n")]
    assert lines[0] == "b c d"                           # the terminal echoes the typed line
    assert lines[1] == expected
    assert code == 0
