"""Memory-mapped corpora: ``seq2seq preprocess`` (parallel workers, several chunks) gives
the same vocabularies and batches as the in-memory path, training from it gives the same
weights, and malformed lines are named or skipped and listed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.data.mapped import MappedDataset
from seq2seq.data.preprocess import preprocess
from seq2seq.errors import Seq2SeqError
from seq2seq.tasks.text import TextTask
from seq2seq.training import train

from conftest import make_config, run_cli


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """2,000 pairs of 1-14 words (rare words included, so min_freq maps some to <unk>), blank lines."""
    d = tmp_path_factory.mktemp("varied")
    rng = random.Random(3)
    words = [f"w{i}" for i in range(60)] + [f"rare{i}" for i in range(40)]
    lines = []
    for i in range(2000):
        src = [rng.choice(words[:60] if rng.random() < 0.95 else words) for _ in range(rng.randint(1, 14))]
        lines.append(" ".join(src) + "\t" + " ".join(reversed(src)))
        if i % 500 == 0:
            lines.append("")
    (d / "train.tsv").write_text("\n".join(lines) + "\n")
    (d / "valid.tsv").write_text("w1 w2\tw2 w1\nw3\tw3\n")
    (d / "test.tsv").write_text("w1 w2\tw2 w1\n")
    return d


@pytest.mark.parametrize("over", [{"data.src_min_freq": 2},
                                  {"data.max_src_len": 9, "data.long_source": "truncate", "data.max_tgt_len": 12},
                                  {"data.max_src_len": 9, "data.long_source": "drop", "training.batch_type": "tokens",
                                   "training.batch_size": 120},
                                  {"data.src_tokenizer": "char", "data.tgt_max_size": 30},
                                  {"data.src_tokenizer": "sentencepiece", "data.tgt_tokenizer": "sentencepiece",
                                   "data.sentencepiece.vocab_size": 80}])
def test_mapped_corpus_yields_the_same_batches_as_the_in_memory_path(varied, tmp_path, over):
    cfg = make_config(varied, **over)
    manifest = preprocess(cfg, tmp_path / "corpus", workers=2, chunk_bytes=4096)      # about 10 chunks
    memory = TextTask.for_training(cfg)
    mapped = TextTask.for_training(make_config(varied, **{**over, "data.train": str(tmp_path / "corpus")}))
    assert isinstance(mapped.train_data, MappedDataset)
    assert mapped.corpus.src_vocab.itos == memory.corpus.src_vocab.itos
    assert mapped.corpus.tgt_vocab.itos == memory.corpus.tgt_vocab.itos
    assert manifest["pairs"] == len(mapped.train_data) == len(memory.train_data)
    assert mapped.dropped == memory.dropped
    for world in (1, 2):
        for epoch in (0, 3):
            a, b = memory.epoch_batches(epoch, world), mapped.epoch_batches(epoch, world)
            assert len(a) == len(b) > 1
            for ia, ib in zip(a, b):
                assert torch.equal(ia, ib)
                x, y = memory.batch(ia), mapped.batch(ib)
                for name in ("src", "src_lengths", "src_mask", "tgt_in", "tgt_out", "tgt_mask", "indices"):
                    assert torch.equal(getattr(x, name), getattr(y, name)), name


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc/self/maps")
def test_a_batch_unmaps_what_it_read_and_lengths_stay_int32(varied, tmp_path):
    """Only the int32 lengths stay in memory; after a batch no page of the corpus files is
    mapped into the process any more (a map kept open would grow to the corpus's size)."""
    cfg = make_config(varied)
    preprocess(cfg, tmp_path / "corpus", workers=1)
    task = TextTask.for_training(make_config(varied, **{"data.train": str(tmp_path / "corpus")}))
    data = task.train_data
    assert data.src_lengths.dtype == data.tgt_lengths.dtype == data.sort_key().dtype == torch.int32
    batch = data.batch(task.epoch_batches(0)[0])
    assert batch.src_lengths.dtype == torch.long                  # what packing and the model expect
    assert str(tmp_path / "corpus") not in Path("/proc/self/maps").read_text()


def test_training_from_a_mapped_corpus_equals_training_from_the_tsv(varied, tmp_path):
    over = {"training.max_steps": 12, "training.validate_every": 6, "training.batch_size": 16}
    cfg = make_config(varied, **over)
    preprocess(cfg, tmp_path / "corpus", workers=2, chunk_bytes=8192)
    train(cfg, tmp_path / "tsv")
    train(make_config(varied, **{**over, "data.train": str(tmp_path / "corpus")}), tmp_path / "mapped")
    a, _ = load_checkpoint(tmp_path / "tsv" / "checkpoints" / "last")
    b, _ = load_checkpoint(tmp_path / "mapped" / "checkpoints" / "last")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def test_a_malformed_line_is_named_or_skipped_and_listed(varied, tmp_path):
    text = (varied / "train.tsv").read_text().splitlines()
    text[1233] = "no tab here"
    text[1500] = "w1\t"
    (tmp_path / "bad.tsv").write_text("\n".join(text) + "\n")
    cfg = make_config(varied, **{"data.train": str(tmp_path / "bad.tsv")})
    with pytest.raises(Seq2SeqError, match=r"bad\.tsv:1234: no tab between source and target"):
        preprocess(cfg, tmp_path / "c1", workers=2, chunk_bytes=4096)
    assert not (tmp_path / "c1").exists()
    with pytest.raises(Seq2SeqError, match=r"bad\.tsv:1234: .*2 malformed lines so far, more than data\.max_bad_lines=1"):
        preprocess(make_config(varied, **{"data.train": str(tmp_path / "bad.tsv"), "data.max_bad_lines": 1}),
                   tmp_path / "c1", workers=2, chunk_bytes=4096)
    m = preprocess(make_config(varied, **{"data.train": str(tmp_path / "bad.tsv"), "data.max_bad_lines": 2}),
                   tmp_path / "c2", workers=2, chunk_bytes=4096)
    listed = (tmp_path / "c2" / "bad_lines.txt").read_text().splitlines()
    assert listed == [f"{tmp_path / 'bad.tsv'}:1234: no tab between source and target (expected 'source<TAB>target')",
                      f"{tmp_path / 'bad.tsv'}:1501: empty target in column 2"]
    assert m["bad_lines"] == 2 and m["pairs"] == 1998
    over = {"training.max_steps": 1, "training.validate_every": 1}
    train(make_config(varied, **{**over, "data.train": str(tmp_path / "c2")}), tmp_path / "run_mapped")
    assert (tmp_path / "run_mapped" / "bad_lines.txt").read_text().splitlines() == listed

    # the in-memory path: the same rule, the same list, in the run directory
    with pytest.raises(Seq2SeqError, match=r"bad\.tsv:1234: no tab .*set data\.max_bad_lines to skip"):
        train(make_config(varied, **{**over, "data.train": str(tmp_path / "bad.tsv")}), tmp_path / "r0")
    with pytest.raises(Seq2SeqError, match=r"bad\.tsv:1234: .*2 malformed lines, more than data\.max_bad_lines=1"):
        train(make_config(varied, **{**over, "data.train": str(tmp_path / "bad.tsv"), "data.max_bad_lines": 1}),
              tmp_path / "r1")
    assert not (tmp_path / "r0").exists() and not (tmp_path / "r1").exists()
    task = TextTask.for_training(make_config(varied, **{"data.train": str(tmp_path / "bad.tsv"),
                                                        "data.max_bad_lines": 2}))
    assert "1998 pairs (2 malformed lines skipped, listed in bad_lines.txt)" in task.summary()
    train(make_config(varied, **{**over, "data.train": str(tmp_path / "bad.tsv"), "data.max_bad_lines": 2}),
          tmp_path / "run_tsv")
    assert (tmp_path / "run_tsv" / "bad_lines.txt").read_text().splitlines() == listed


def test_a_chunk_with_invalid_utf8_or_odd_lines_gives_what_the_in_memory_path_gives(varied, tmp_path):
    """preprocess decodes a chunk at once and parses well-formed pairs on a fast path; a chunk
    with invalid UTF-8 goes line by line, and blank, CRLF and padded lines take parse_line's rules."""
    lines = (varied / "train.tsv").read_bytes().split(b"\n")
    lines[10] = b"w\xff1\tw1"                                  # invalid UTF-8: skipped and listed
    lines[20] = b"  w2 w3 \t w3 w2\r"                           # padding and a carriage return
    lines[30] = b"\t\r"                                          # a blank line: skipped, not counted
    (tmp_path / "odd.tsv").write_bytes(b"\n".join(lines))
    over = {"data.train": str(tmp_path / "odd.tsv"), "data.max_bad_lines": 1}
    preprocess(make_config(varied, **over), tmp_path / "corpus", workers=2, chunk_bytes=4096)
    assert (tmp_path / "corpus" / "bad_lines.txt").read_text() == (
        f"{tmp_path / 'odd.tsv'}:11: invalid UTF-8 at byte 1 of the line\n")
    memory = TextTask.for_training(make_config(varied, **over))
    mapped = TextTask.for_training(make_config(varied, **{**over, "data.train": str(tmp_path / "corpus")}))
    assert mapped.corpus.src_vocab.itos == memory.corpus.src_vocab.itos
    assert len(mapped.train_data) == len(memory.train_data)
    for ia in memory.epoch_batches(0):
        x, y = memory.batch(ia), mapped.batch(ia)
        assert torch.equal(x.src, y.src) and torch.equal(x.tgt_out, y.tgt_out)


def test_reject_names_the_line_and_the_config_must_match_the_corpus(varied, tmp_path):
    cfg = make_config(varied, **{"data.max_src_len": 13, "data.long_source": "reject"})
    first = next(i for i, line in enumerate((varied / "train.tsv").read_text().splitlines(), 1)
                 if line and len(line.split("\t")[0].split()) > 13)
    with pytest.raises(Seq2SeqError, match=rf"train\.tsv:{first}: source has 14 tokens, more than data.max_src_len=13"):
        preprocess(cfg, tmp_path / "c", workers=2, chunk_bytes=4096)
    preprocess(make_config(varied), tmp_path / "c", workers=1)
    with pytest.raises(Seq2SeqError, match=r"manifest.json: built with data.src_tokenizer='word', the config says 'char'"):
        TextTask.for_training(make_config(varied, **{"data.train": str(tmp_path / "c"), "data.src_tokenizer": "char"}))


def test_preprocess_reuses_a_runs_vocabularies(varied, tmp_path):
    train(make_config(varied, **{"training.max_steps": 1, "data.src_min_freq": 30}), tmp_path / "run")
    m = preprocess(make_config(varied), tmp_path / "c", workers=2, vocab_dir=tmp_path / "run", chunk_bytes=4096)
    for side in ("src", "tgt"):
        assert (tmp_path / "c" / f"{side}_vocab.txt").read_text() == (tmp_path / "run" / f"{side}_vocab.txt").read_text()
    assert m["vocab"]["src"] < len(set((varied / "train.tsv").read_text().split()))   # min_freq 30 cut some


def test_preprocess_command(varied, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    from seq2seq.config import dump_config

    dump_config(make_config(varied), cfg)
    p = run_cli("preprocess", cfg, "--out", tmp_path / "c", "--workers", "2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "2,000 pairs" in p.stderr and "pairs/s" in p.stderr
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["pairs"] == 2000
    p = run_cli("preprocess", cfg, "--out", tmp_path / "c", cwd=tmp_path)
    assert p.returncode == 2 and "exists; pass --overwrite" in p.stderr
