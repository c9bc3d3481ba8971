"""Generated inputs (hypothesis): every reader gives its result or a Seq2SeqError, never
another exception; tokenizers round-trip where they claim to; repeated ``--set`` keeps
every item in order; the search keeps its invariants under random fake decoders; a
damaged checkpoint is an error, never a silently different model.

Example counts are bounded (``FAST``, ``SLOW``) so the suite keeps its time budget;
``database=None`` leaves no ``.hypothesis`` folder behind.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from seq2seq import checkpoint
from seq2seq.cli import _parser
from seq2seq.config import Config, config_from_dict, load_config
from seq2seq.data.tokenizers import SPACE, CharTokenizer, SentencePieceTokenizer, WordTokenizer
from seq2seq.data.tsv import BadLine, count_lines, decode_lines, parse_line, parse_lines, read_tsv
from seq2seq.errors import Seq2SeqError
from seq2seq.forecast.series import read_series_csv
from seq2seq.search import DecodeOptions, beam_search, greedy_search

from conftest import BASE
from test_search import FakeState          # step counter + each row's sentence id; reorder follows the beam

HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
FAST = settings(max_examples=100, deadline=None, database=None, suppress_health_check=HEALTH)
SLOW = settings(max_examples=30, deadline=None, database=None, suppress_health_check=HEALTH)

# Bytes that matter to line- and field-based readers, mixed with anything at all.
PIECES = [b"\t", b"\n", b"\r\n", b"\r", b" ", b"a", b"b c", b"\xc3\xa9", b"\xff", b"\x80", b"\x00", b",", b'"',
          b"1", b"-2.5", b"nan", b"2020-01-01", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"#"]
messy_bytes = st.one_of(st.binary(max_size=200),
                        st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join))


# ------------------------------------------------------------------ TSV and input lines


@FAST
@given(data=messy_bytes, multi=st.booleans(), auto=st.booleans())
def test_tsv_reader_gives_examples_or_a_seq2seq_error(tmp_path, data, multi, auto):
    path = tmp_path / "x.tsv"
    path.write_bytes(data)
    try:
        examples = read_tsv(path, multi_reference=multi, autoencoder=auto)
    except Seq2SeqError as e:
        assert str(e).startswith(str(path))
        return
    assert examples and all(e.source.strip() and all(r.strip() for r in e.references) for e in examples)
    assert [e.line for e in examples] == sorted({e.line for e in examples})


@FAST
@given(data=messy_bytes, multi=st.booleans(), auto=st.booleans())
def test_chunk_parser_follows_the_line_parser(data, multi, auto):
    """parse_lines (one decode per chunk, a fast path for plain pairs) gives, line by line,
    what parse_line gives: the same fields, the same blank lines, the same reasons."""
    expected = []
    for n, raw in enumerate(data.split(b"\n")[:count_lines(data)], start=1):
        try:
            ex = parse_line(raw, n, multi, auto)
        except BadLine as e:
            expected.append((n, None, str(e)))
            continue
        if ex is not None:
            expected.append((n, [ex.source, *ex.references], ""))
    assert list(parse_lines(data, multi, auto)) == expected


field_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\t\n\r"), min_size=1,
                     max_size=12).filter(lambda s: s.strip())


@FAST
@given(pairs=st.lists(st.tuples(field_text, field_text), min_size=1, max_size=8))
def test_tsv_reader_reads_back_what_was_written(tmp_path, pairs):
    path = tmp_path / "x.tsv"
    path.write_bytes("".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8"))
    examples = read_tsv(path)
    assert [(e.source, e.references) for e in examples] == [(s.strip(), [t.strip()]) for s, t in pairs]
    assert [e.line for e in examples] == list(range(1, len(pairs) + 1))


@FAST
@given(data=messy_bytes, policy=st.sampled_from(["error", "skip"]))
def test_input_lines_keep_their_numbers(data, policy):
    try:
        lines, skipped = decode_lines(data, on_bad_line=policy)
    except Seq2SeqError as e:
        assert policy == "error" and e.args[0].startswith("<stdin>:")
        return
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert len(lines) == len(expected)                 # output line n answers input line n
    assert all(lines[n - 1] == "" for n in skipped)


# ------------------------------------------------------------------ tokenizers

plain_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=SPACE), max_size=30)


@FAST
@given(text=plain_text)
def test_char_tokenizer_round_trips_stripped_text(text):
    tok = CharTokenizer()
    assert tok.decode(tok.encode(text)) == text.strip()
    assert all(len(t) == 1 for t in tok.encode(text))


@FAST
@given(text=st.text(max_size=40))
def test_word_tokenizer_round_trips_up_to_whitespace(text):
    tok = WordTokenizer()
    assert tok.decode(tok.encode(text)) == " ".join(text.split())
    assert tok.encode(tok.decode(tok.encode(text))) == tok.encode(text)


@pytest.fixture(scope="module")
def spm() -> SentencePieceTokenizer:
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "ran", "far", "away", "quick", "brown", "fox"]
    texts = [" ".join(words[(i * k) % len(words)] for k in range(1, 7)) for i in range(200)]
    return SentencePieceTokenizer.train(texts, "unigram", vocab_size=60)


@FAST
@given(words=st.lists(st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8), max_size=8))
def test_sentencepiece_round_trips_text_of_its_alphabet(spm, words):
    text = " ".join(words)
    assert spm.decode(spm.encode(text)) == text


@FAST
@given(data=st.binary(max_size=200))
def test_sentencepiece_model_bytes_load_or_give_a_seq2seq_error(data):
    try:
        SentencePieceTokenizer(data)
    except Seq2SeqError as e:
        assert "not a sentencepiece model" in str(e)


# ------------------------------------------------------------------ config and --set


def dotted_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key path of a config schema."""
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += dotted_keys(field.annotation, f"{prefix}{name}.")
    return out


KEYS = dotted_keys(Config)


def base_raw() -> dict:
    """The tests' tiny config as a raw mapping, valid as it is."""
    raw = copy.deepcopy(BASE)
    raw["data"]["train"] = "train.tsv"
    return raw
key_paths = st.one_of(st.sampled_from(KEYS), st.text(max_size=20),
                      st.lists(st.sampled_from(KEYS + ["", "x", "0", "-"]), min_size=1, max_size=4).map(".".join))
values = st.one_of(st.text(max_size=20), st.sampled_from(["", "null", "[]", "{}", "{a: 1}", "-1", "0", "1e309",
                                                          "true", "[[[", "!!python/object:os.system", "&a [*a]",
                                                          "{1: 2}", "0x10", ".inf", "2.5", "[1, 2]"]))


@FAST
@given(items=st.lists(st.tuples(key_paths, values).map("=".join) | st.text(max_size=20), max_size=4))
def test_any_set_items_give_a_config_or_a_seq2seq_error(items):
    try:
        cfg = config_from_dict(base_raw(), overrides=items)
    except Seq2SeqError:
        return
    assert isinstance(cfg, Config)


@FAST
@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(
    ["data:\n", "  train: x\n", "model:\n", "  encoder: {hidden_size: 8}\n", "training:\n", "  max_steps: 5\n",
     "- a\n", "a: [\n", "\t", ": :\n", "task: forecast\n", "task: [1]\n", "&x a: *x\n", "? a\n", "%YAML 1.1\n"]),
    max_size=10).map("".join)))
def test_any_config_file_gives_a_config_or_a_seq2seq_error(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except Seq2SeqError as e:
        assert str(path) in str(e)


INT_KEYS = ["training.max_steps", "training.log_every", "training.validate_every", "training.batch_size",
            "model.encoder.hidden_size", "model.decoder.layers", "decoding.beam_size"]


@FAST
@given(items=st.lists(st.tuples(st.sampled_from(INT_KEYS), st.integers(1, 999)), min_size=1, max_size=6),
       split=st.booleans())
def test_repeated_set_keeps_every_item_and_the_last_value_wins(items, split):
    """``--set a=1 --set b=2`` and ``--set a=1 b=2`` pass both items, in order; the
    config then has, for each key, the value of its last item."""
    texts = [f"{k}={v}" for k, v in items]
    argv = ["train", "c.yaml"] + ([x for t in texts for x in ("--set", t)] if split else ["--set", *texts])
    args = _parser().parse_args(argv)
    assert args.overrides == texts
    cfg = config_from_dict(base_raw(), overrides=args.overrides)
    for key, value in dict(items).items():            # dict keeps the last value per key
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key


# ------------------------------------------------------------------ forecast CSV


@FAST
@given(data=st.one_of(messy_bytes, st.lists(st.sampled_from(
    [b"id,time,y\n", b"time,y\n", b"a,", b"b,", b"1,", b"2,", b"2020-01-0", b"3", b"x", b",", b"\n", b"nan", b"",
     b"1e400", b"-", b'"', b"\xff"]), max_size=40).map(b"".join)),
       id_column=st.sampled_from([None, "id"]), missing=st.sampled_from(["error", "interpolate", "ffill"]))
def test_forecast_csv_gives_series_or_a_seq2seq_error(tmp_path, data, id_column, missing):
    path = tmp_path / "s.csv"
    path.write_bytes(data)
    try:
        series = read_series_csv(path, "time", ["y"], id_column, missing)
    except Seq2SeqError as e:
        assert str(path) in str(e)
        return
    for s in series:
        assert s.values.shape == (len(s.times), 1) and not torch.from_numpy(s.values).isnan().any()


# ------------------------------------------------------------------ search with random fake decoders

V, EOS, BOS = 6, 3, 2


class RandomDecoder:
    """log p(y_t | y_{t-1}, sentence) from a random table (sentences, steps, V, V)."""

    def __init__(self, seed: int, sentences: int, steps: int, sharp: float):
        g = torch.Generator().manual_seed(seed)
        self.table = (sharp * torch.randn(sentences, steps, V, V, generator=g, dtype=torch.float64)).log_softmax(-1)
        self.decoder = self

    def encode(self, src, src_lengths, src_mask):
        return None, FakeState(0, src[:, 0].clone())

    def step(self, prev, state):
        t = min(state.t, self.table.size(1) - 1)
        return self.table[state.rows, t, prev].float(), FakeState(state.t + 1, state.rows), None


def sentences_batch(ids: list[int], src_len: int = 3):
    src = torch.tensor(ids).unsqueeze(1).expand(-1, src_len).contiguous()
    return SimpleNamespace(src=src, src_lengths=torch.full((len(ids),), src_len),
                           src_mask=torch.ones(len(ids), src_len, dtype=torch.bool))


decoders = st.builds(lambda seed, steps, sharp: (seed, steps, sharp), st.integers(0, 10 ** 6), st.integers(1, 5),
                     st.sampled_from([0.5, 2.0, 6.0]))


def options(**kw) -> DecodeOptions:
    return DecodeOptions(**{"strategy": "beam", "max_len_a": 0.0, "max_len_b": 6, **kw})


@SLOW
@given(dec=decoders, n=st.integers(1, 4), min_len=st.integers(0, 2))
def test_beam_of_one_is_greedy(dec, n, min_len):
    model = RandomDecoder(*dec[:1], n, *dec[1:])
    batch = sentences_batch(list(range(n)))
    beam = beam_search(model, batch, BOS, EOS, options(beam_size=1, min_len=min_len))
    greedy = greedy_search(model, batch, BOS, EOS, options(strategy="greedy", min_len=min_len))
    for b, g in zip(beam, greedy):
        assert b[0].tokens == g[0].tokens
        assert b[0].score == pytest.approx(g[0].score, abs=1e-4)


@SLOW
@given(dec=decoders, ids=st.lists(st.integers(0, 5), min_size=1, max_size=5), beam=st.integers(1, 5),
       nbest=st.integers(1, 5), alpha=st.sampled_from([0.0, 0.6, 1.0]))
def test_beam_is_batch_invariant_sorted_and_distinct(dec, ids, beam, nbest, alpha):
    assume(nbest <= beam)
    model = RandomDecoder(dec[0], 6, dec[1], dec[2])
    opts = options(beam_size=beam, nbest=nbest, length_penalty=alpha)
    together = beam_search(model, sentences_batch(ids), BOS, EOS, opts)
    for i, sid in enumerate(ids):
        alone = beam_search(model, sentences_batch([sid]), BOS, EOS, opts)[0]
        assert [h.tokens for h in together[i]] == [h.tokens for h in alone]
        assert [h.score for h in together[i]] == pytest.approx([h.score for h in alone], abs=1e-4)
    for hyps in together:
        assert len(hyps) == nbest
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True) and all(math.isfinite(s) for s in scores)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)          # n-best lists are distinct


# ------------------------------------------------------------------ checkpoint reader


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    tensors = {"model.w": torch.randn(4, 3), "model.b": torch.arange(5), "optimizer.0.exp_avg": torch.randn(7),
               "rng.torch": torch.randint(0, 255, (16,), dtype=torch.uint8)}
    checkpoint.save_checkpoint(folder / "x", tensors, {"step": 12, "best_score": 0.5})
    return folder, tensors, (folder / "x.safetensors").read_bytes(), (folder / "x.json").read_bytes()


@FAST
@given(which=st.sampled_from(["safetensors", "json"]), cut=st.floats(0, 1, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3),
       truncate=st.booleans())
def test_damaged_checkpoint_is_an_error_never_a_different_model(saved, tmp_path, which, cut, flips, truncate):
    folder, tensors, st_bytes, js_bytes = saved
    stem = tmp_path / "x"
    data = bytearray(st_bytes if which == "safetensors" else js_bytes)
    if truncate:
        data = data[:int(cut * len(data))]
    for pos, bits in flips:
        if data:
            data[int(pos * len(data))] ^= bits
    (stem.with_suffix(".safetensors")).write_bytes(bytes(data) if which == "safetensors" else st_bytes)
    (stem.with_suffix(".json")).write_bytes(bytes(data) if which == "json" else js_bytes)
    retry, checkpoint.TORN_RETRY_S = checkpoint.TORN_RETRY_S, 0.0
    try:
        loaded, meta = checkpoint.load_checkpoint(stem)
    except Seq2SeqError:
        return
    finally:
        checkpoint.TORN_RETRY_S = retry
    assert loaded.keys() == tensors.keys() and meta["step"] == 12 and meta["best_score"] == 0.5
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
