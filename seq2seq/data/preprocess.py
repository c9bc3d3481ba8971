"""``seq2seq preprocess``: a training TSV of any size to a memory-mapped corpus
(:mod:`seq2seq.data.mapped`), in one streaming pass over the text by parallel workers.

1. Tokenizers: ``char`` / ``word`` need nothing; sentencepiece models are trained on
   the first ``SENTENCEPIECE_SAMPLE`` pairs (or reused, ``--vocab DIR``).
2. The file is cut at line ends into chunks of ``CHUNK_BYTES``; each worker reads one
   chunk, parses and tokenizes its lines, counts tokens, and writes the chunk's ids in
   a vocabulary of its own (ids in order of first appearance) to temporary files.
3. The counts are merged into the vocabularies (:meth:`Vocabulary.from_counts`, the
   in-memory path's rules, so both paths build the same vocabularies) unless reused;
   each chunk's ids are translated to them with one table lookup and appended to the
   final ``numpy.memmap`` arrays.  No step holds more than one chunk in memory.

A malformed line (:func:`~seq2seq.data.tsv.parse_lines`) stops the job naming its file
and line, unless ``data.max_bad_lines`` allows skipping it: the skipped lines are
then listed in ``OUT/bad_lines.txt``.  Long pairs follow ``data.max_src_len`` /
``long_source`` / ``max_tgt_len`` exactly as in memory.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from seq2seq.data.mapped import DATA_KEYS, FORMAT, MANIFEST, SIDES, VERSION, array_path
from seq2seq.data.tsv import BadLine, count_lines, parse_line, parse_lines
from seq2seq.errors import Seq2SeqError

CHUNK_BYTES = 8 << 20                   # text per worker task
SENTENCEPIECE_SAMPLE = 1_000_000        # pairs a sentencepiece model is trained on
COPY_TOKENS = 1 << 22                   # ids translated per slice in the merge


@dataclass
class _Job:
    """One chunk of the TSV: bytes [start, end), its index, where its temporary files go."""

    index: int
    path: str
    start: int
    end: int
    tmp: str
    data: dict                          # the data section, as a dict (pickled to the worker)
    tokenizer_dir: str


class _Ids(dict):
    """token -> chunk id, a new id for each new token (``map(ids.__getitem__, tokens)`` runs in C)."""

    def __missing__(self, token: str) -> int:
        self[token] = i = len(self)
        return i


def _chunk_bounds(path: Path, chunk_bytes: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of about ``chunk_bytes``, each starting at a line start."""
    size = path.stat().st_size
    bounds, start = [], 0
    with open(path, "rb") as f:
        while start < size:
            f.seek(min(start + chunk_bytes, size))
            if f.tell() < size:
                f.readline()                              # to the end of the line the cut falls in
            end = f.tell()
            bounds.append((start, end))
            start = end
    return bounds


def _encode_chunk(job: _Job) -> dict:
    """Parse, tokenize and id-encode one chunk (in a worker process).

    Returns:
        lines (count), pairs (kept), dropped, bad [(local line, reason)], reject
        (local line, source length) or None.  Per side, files in ``job.tmp``: the kept
        pairs' ids and lengths, the chunk's own vocabulary (``.tokens``, in id order) and
        its counts over every parsed pair, kept or not (``.counts``).
    """
    from seq2seq.config import DataConfig
    from seq2seq.data.corpus import load_tokenizers

    cfg = DataConfig.model_validate(job.data)
    toks = dict(zip(SIDES, load_tokenizers(cfg, Path(job.tokenizer_dir))))
    with open(job.path, "rb") as f:
        f.seek(job.start)
        text = f.read(job.end - job.start)
    lines = count_lines(text)
    tables = {s: _Ids() for s in SIDES}                   # token -> chunk id
    ids = {s: array("i") for s in SIDES}                  # kept pairs' ids, end to end
    lengths = {s: array("i") for s in SIDES}
    spill = {s: array("i") for s in SIDES}                # ids of dropped pairs and cut tails: counted only
    bad, reject, dropped = [], None, 0
    max_src, max_tgt, policy = cfg.max_src_len, cfg.max_tgt_len, cfg.long_source
    src_ids, tgt_ids = tables["src"].__getitem__, tables["tgt"].__getitem__
    src_tok, tgt_tok = toks["src"], toks["tgt"]
    for n, fields, error in parse_lines(text, autoencoder=cfg.autoencoder):
        if fields is None:
            bad.append((n, error))
            continue
        source, target = fields
        src_tokens, tgt_tokens = src_tok.encode(source), tgt_tok.encode(target)
        if (not max_src or len(src_tokens) <= max_src) and (not max_tgt or len(tgt_tokens) <= max_tgt):
            ids["src"].extend(map(src_ids, src_tokens))   # the common case: kept whole
            lengths["src"].append(len(src_tokens))
            ids["tgt"].extend(map(tgt_ids, tgt_tokens))
            lengths["tgt"].append(len(tgt_tokens))
            continue
        src = list(map(src_ids, src_tokens))
        tgt = list(map(tgt_ids, tgt_tokens))
        full_src = src
        if max_src and len(src) > max_src:
            if policy == "reject":
                reject = reject or (n, len(src))
                continue
            if policy == "truncate":
                spill["src"].extend(src[max_src:])
                src = src[:max_src]
            else:
                src = None
        if src is None or (max_tgt and len(tgt) > max_tgt):
            spill["src"].extend(full_src if src is None else src)        # a cut tail is spilled already
            spill["tgt"].extend(tgt)
            dropped += 1
            continue
        ids["src"].extend(src)
        lengths["src"].append(len(src))
        ids["tgt"].extend(tgt)
        lengths["tgt"].append(len(tgt))
    out = {"index": job.index, "lines": lines, "pairs": len(lengths["src"]), "dropped": dropped, "bad": bad,
           "reject": reject}
    for side in SIDES:
        np.frombuffer(ids[side], dtype=np.int32).tofile(f"{job.tmp}/{job.index}.{side}.ids")
        np.frombuffer(lengths[side], dtype=np.int32).tofile(f"{job.tmp}/{job.index}.{side}.lengths")
        size = len(tables[side])
        counts = np.bincount(np.frombuffer(ids[side], dtype=np.int32), minlength=size)
        counts += np.bincount(np.frombuffer(spill[side], dtype=np.int32), minlength=size)
        _tokens_path(job.tmp, job.index, side).write_bytes("\n".join(tables[side]).encode("utf-8"))
        counts.astype(np.int64).tofile(f"{job.tmp}/{job.index}.{side}.counts")
    return out


def _tokens_path(tmp: str | Path, index: int, side: str) -> Path:
    """A chunk's own vocabulary (one token a line, in chunk-id order; no token holds a newline)."""
    return Path(tmp) / f"{index}.{side}.tokens"


def _chunk_tokens(tmp: Path, index: int, side: str) -> list[str]:
    text = _tokens_path(tmp, index, side).read_bytes().decode("utf-8")      # bytes: a "\r" token stays
    return text.split("\n") if text else []


def _sample_examples(path: Path, cfg, limit: int) -> list:
    """The first ``limit`` well-formed pairs (to train sentencepiece on)."""
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                ex = parse_line(raw.rstrip(b"\n"), n, autoencoder=cfg.autoencoder)
            except BadLine:
                continue
            if ex is not None:
                out.append(ex)
                if len(out) >= limit:
                    break
    return out


def preprocess(config, out: str | Path, workers: int = 1, vocab_dir: Optional[str | Path] = None,
               overwrite: bool = False, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """Turn ``config.data.train`` (a TSV) into a memory-mapped corpus in ``out``.

    Args:
        config: a text config (its ``data`` section: tokenizers, limits, ``max_bad_lines``).
        out: the corpus directory to create.
        workers: processes that parse and tokenize in parallel.
        vocab_dir: reuse the tokenizers and vocabularies of this run or corpus directory
            instead of building them.
        overwrite: replace an existing ``out``.
        chunk_bytes: text per worker task.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        Seq2SeqError: a missing input, an existing ``out``, more malformed lines than
            ``data.max_bad_lines`` (naming the first: ``file:line: reason``), a source
            over ``max_src_len`` under ``long_source: reject``, no pairs at all.
    """
    d = config.data
    src_path, out = Path(d.train), Path(out)
    if not src_path.is_file():
        raise Seq2SeqError(f"{src_path}: data.train must be a TSV file to preprocess (file not found)")
    if workers < 1:
        raise Seq2SeqError(f"--workers must be >= 1 (got {workers})")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise Seq2SeqError(f"{out}: exists; pass --overwrite to replace it")
        if not (out / MANIFEST).exists():
            raise Seq2SeqError(f"{out}: not a preprocessed corpus (no {MANIFEST}); refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _build(config, src_path, out, workers, vocab_dir, chunk_bytes)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)                 # no half-written corpus is left behind
        raise


def _build(config, src_path: Path, out: Path, workers: int, vocab_dir, chunk_bytes: int) -> dict:
    """:func:`preprocess` after its checks, into the empty directory ``out``."""
    from seq2seq.checkpoint import atomic_write_text
    from seq2seq.data.corpus import Corpus, long_source_error, load_tokenizers, save_tokenizers, train_tokenizers
    from seq2seq.data.vocab import Vocabulary

    d = config.data
    tmp = out / ".chunks"
    tmp.mkdir()
    started = time.perf_counter()
    reused = None
    if vocab_dir is not None:
        reused = Corpus.load(d, Path(vocab_dir))
        save_tokenizers(reused.src_tokenizer, reused.tgt_tokenizer, out)
    elif "sentencepiece" in (d.src_tokenizer, d.tgt_tokenizer):
        save_tokenizers(*train_tokenizers(d, _sample_examples(src_path, d, SENTENCEPIECE_SAMPLE)), out)
    load_tokenizers(d, out)                                   # fail here, not in every worker
    jobs = [_Job(i, str(src_path), a, b, str(tmp), d.model_dump(), str(out))
            for i, (a, b) in enumerate(_chunk_bounds(src_path, chunk_bytes))]
    counts = {side: Counter() for side in SIDES}
    results, bad, first_line = [], [], 1
    with contextlib.ExitStack() as stack:
        if workers == 1 or len(jobs) == 1:
            stream = map(_encode_chunk, jobs)
        else:
            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            stream = stack.enter_context(context.Pool(workers)).imap(_encode_chunk, jobs)
        for r in stream:                        # in file order; a failure stops every worker at once
            bad += [(first_line + n - 1, why) for n, why in r["bad"]]
            if r["reject"]:
                raise long_source_error(str(src_path), first_line + r["reject"][0] - 1, r["reject"][1],
                                        d.max_src_len)
            if len(bad) > d.max_bad_lines:
                n, why = bad[0]
                raise Seq2SeqError(f"{src_path}:{n}: {why}" + (
                    f" ({len(bad)} malformed lines so far, more than data.max_bad_lines={d.max_bad_lines})"
                    if d.max_bad_lines else " (set data.max_bad_lines to skip such lines and list them)"))
            if reused is None:
                for side in SIDES:
                    found = np.fromfile(tmp / f"{r['index']}.{side}.counts", dtype=np.int64).tolist()
                    counts[side].update(dict(zip(_chunk_tokens(tmp, r["index"], side), found)))
            first_line += r["lines"]
            results.append(r)
    vocabs = {}
    for side in SIDES:
        if reused is not None:
            vocabs[side] = reused.src_vocab if side == "src" else reused.tgt_vocab
        else:
            vocabs[side] = Vocabulary.from_counts(counts[side], getattr(d, f"{side}_min_freq"),
                                                  getattr(d, f"{side}_max_size"))
    pairs = int(sum(r["pairs"] for r in results))
    if pairs == 0:
        raise Seq2SeqError(f"{src_path}: no examples (the file is empty)")
    totals = {}
    for side in SIDES:
        _write_side(out, side, results, vocabs[side], pairs, tmp)
        totals[side] = int(np.load(array_path(out, side, "offsets"), mmap_mode="r")[-1])
        vocabs[side].save(out / f"{side}_vocab.txt")
    shutil.rmtree(tmp)
    if bad:
        atomic_write_text(out / "bad_lines.txt", "".join(f"{src_path}:{n}: {why}\n" for n, why in bad))
    seconds = time.perf_counter() - started
    manifest = {"format": FORMAT, "version": VERSION, "source": str(src_path.resolve()),
                "source_bytes": src_path.stat().st_size, "lines": first_line - 1, "pairs": pairs,
                "dropped": int(sum(r["dropped"] for r in results)), "bad_lines": len(bad),
                "tokens": totals, "vocab": {s: len(vocabs[s]) for s in SIDES}, "workers": workers,
                "seconds": round(seconds, 2), "data": d.model_dump(include=set(DATA_KEYS))}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _write_side(out: Path, side: str, results: list[dict], vocab, pairs: int, tmp: Path) -> None:
    """Concatenate the chunks' ids of ``side``, translated to ``vocab``, into the final arrays."""
    sizes = [os.path.getsize(tmp / f"{r['index']}.{side}.ids") // 4 for r in results]
    total = int(sum(sizes))
    ids = np.lib.format.open_memmap(array_path(out, side, "ids"), mode="w+", dtype=np.int32, shape=(max(total, 1),))
    lengths = np.lib.format.open_memmap(array_path(out, side, "lengths"), mode="w+", dtype=np.int32, shape=(pairs,))
    pos = row = 0
    for r, size in zip(results, sizes):
        tokens = _chunk_tokens(tmp, r["index"], side)
        table = np.array([vocab.stoi.get(t, vocab.unk_id) for t in tokens] or [0], dtype=np.int32)
        if size:
            chunk = np.memmap(tmp / f"{r['index']}.{side}.ids", dtype=np.int32, mode="r")
            for a in range(0, size, COPY_TOKENS):
                piece = chunk[a:a + COPY_TOKENS]
                ids[pos + a:pos + a + len(piece)] = table[piece]
            del chunk
        n = np.fromfile(tmp / f"{r['index']}.{side}.lengths", dtype=np.int32)
        lengths[row:row + len(n)] = n
        pos, row = pos + size, row + len(n)
    offsets = np.lib.format.open_memmap(array_path(out, side, "offsets"), mode="w+", dtype=np.int64,
                                        shape=(pairs + 1,))
    offsets[0] = 0
    np.cumsum(lengths, dtype=np.int64, out=offsets[1:])
    for a in (ids, lengths, offsets):
        a.flush()
    del ids, lengths, offsets


__all__ = ["preprocess"]
