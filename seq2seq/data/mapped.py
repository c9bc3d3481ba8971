"""A training corpus on disk, read through memory maps: what ``seq2seq preprocess``
writes (:mod:`seq2seq.data.preprocess`) and ``data.train: DIR`` trains from.

A corpus directory holds, per side (``src``, ``tgt``), three ``numpy.memmap`` arrays
in ``.npy`` files (fairseq's ``MMapIndexedDataset`` layout):

    DIR/src.ids.npy        (total_tokens,) int32 token ids of every sentence, end to end
    DIR/src.offsets.npy    (N + 1,) int64 where sentence i starts in ids (offsets[N] = total)
    DIR/src.lengths.npy    (N,) int32 its length in tokens (no specials)
    DIR/tgt.*.npy          the same for targets
    DIR/src_vocab.txt      vocabularies (and sentencepiece models) as in a run directory
    DIR/manifest.json      counts, the data settings it was built with, the source file
    DIR/bad_lines.txt      the malformed lines skipped under data.max_bad_lines, if any

Only the lengths are read into memory (int32, for length bucketing); a batch maps the
files, reads its own sentences' ids and unmaps them, so memory does not grow with the
corpus nor with the number of batches read.
"""

from __future__ import annotations

import contextlib
import json
import mmap
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import Tensor

from seq2seq.data.batching import Batch, footprint, length_sort_key
from seq2seq.data.vocab import Vocabulary
from seq2seq.errors import Seq2SeqError

MANIFEST = "manifest.json"
FORMAT = "seq2seq-mapped-corpus"
VERSION = 1
SIDES = ("src", "tgt")
ARRAYS = ("ids", "offsets", "lengths")
# The data settings a corpus is built with; training refuses a config that says otherwise.
DATA_KEYS = ("src_tokenizer", "tgt_tokenizer", "lowercase", "src_min_freq", "tgt_min_freq", "src_max_size",
             "tgt_max_size", "max_src_len", "long_source", "max_tgt_len", "autoencoder", "sentencepiece")


def array_path(folder: Path, side: str, name: str) -> Path:
    """``folder/<side>.<name>.npy``."""
    return Path(folder) / f"{side}.{name}.npy"


def is_mapped_corpus(path: str | Path) -> bool:
    """Whether ``path`` is a directory written by ``seq2seq preprocess``."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(folder: Path, data_cfg=None) -> dict:
    """The corpus manifest, checked against the config's data section when given.

    Raises:
        Seq2SeqError: a missing or unreadable manifest, another format version, or a
            data setting (tokenizer, lower-casing, length limits, ...) other than the
            one the corpus was built with.
    """
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Seq2SeqError(f"{path}: cannot read the corpus manifest ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise Seq2SeqError(f"{path}: not a {FORMAT} version {VERSION}; run `seq2seq preprocess` again")
    if data_cfg is not None:
        wanted = data_cfg.model_dump(include=set(DATA_KEYS))
        for key in DATA_KEYS:
            if manifest["data"].get(key) != wanted[key]:
                raise Seq2SeqError(f"{path}: built with data.{key}={manifest['data'].get(key)!r}, the config says "
                                   f"{wanted[key]!r}; run `seq2seq preprocess` with this config again")
    return manifest


class MappedDataset:
    """The training split of a preprocessed corpus, with :class:`~seq2seq.data.batching.ParallelDataset`'s
    interface (``len``, ``batch``, ``lengths``, ``sort_key``): the same batches, read from memory maps.

    Only the lengths live in memory, as int32 (8 bytes a pair for both sides). Each
    :meth:`batch` maps the ids and offsets files, gathers its rows and unmaps them, so
    the pages it touched leave the process (they stay in the kernel's page cache): the
    resident size stays flat however many batches are read, where one long-lived map
    would grow to the corpus's size as training touches every page of it.

    Args:
        folder: the corpus directory.
        src_vocab, tgt_vocab: its vocabularies (for the pad, bos and eos ids).

    Raises:
        Seq2SeqError: a missing or inconsistent array file.
    """

    def __init__(self, folder: str | Path, src_vocab: Vocabulary, tgt_vocab: Vocabulary):
        self.folder = Path(folder)
        self.layout: dict[str, dict[str, tuple[np.dtype, int, int]]] = {}   # side -> name -> (dtype, count, offset)
        lengths = {}
        for side in SIDES:
            self.layout[side] = {}
            for name in ARRAYS:
                path = array_path(self.folder, side, name)
                try:
                    array = np.load(path, mmap_mode="r")
                    if array.ndim != 1:
                        raise ValueError(f"{array.ndim} dimensions, not 1")
                except (OSError, ValueError) as e:
                    raise Seq2SeqError(f"{path}: cannot map the {side} {name} ({e}); "
                                       "run `seq2seq preprocess` again") from None
                self.layout[side][name] = (array.dtype, len(array), array.offset)
                if name == "lengths":
                    lengths[side] = torch.from_numpy(np.array(array, dtype=np.int32))
                del array                                   # unmapped: only the int32 copy stays
        n = {len(lengths[s]) for s in SIDES} | {self.layout[s]["offsets"][1] - 1 for s in SIDES}
        if len(n) != 1:
            raise Seq2SeqError(f"{self.folder}: source and target arrays disagree on the number of pairs")
        self.src_lengths = lengths["src"]                   # (N,) int32
        self.tgt_lengths = lengths["tgt"] + 1               # (N,) int32, with <eos>
        self.pad_id, self.tgt_pad = src_vocab.pad_id, tgt_vocab.pad_id
        self.bos_id, self.eos_id = tgt_vocab.bos_id, tgt_vocab.eos_id

    def __len__(self) -> int:
        return len(self.src_lengths)

    @contextlib.contextmanager
    def _mapped(self, side: str) -> Iterator[dict[str, np.ndarray]]:
        """``side``'s ids and offsets as read-only arrays over maps that close on exit
        (the arrays must not outlive the block: gather copies out of them)."""
        views: dict[str, np.ndarray] = {}
        with contextlib.ExitStack() as stack:
            for name in ("ids", "offsets"):
                dtype, count, offset = self.layout[side][name]
                f = stack.enter_context(open(array_path(self.folder, side, name), "rb"))
                m = stack.enter_context(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
                views[name] = np.frombuffer(m, dtype=dtype, count=count, offset=offset)
            try:
                yield views
            finally:
                views.clear()                               # no array may hold the maps open

    def _rows(self, side: str, index: np.ndarray, lengths: np.ndarray, width: int, pad: int,
              shift: int = 0) -> np.ndarray:
        """(batch, width) the sentences ``index`` of ``side`` (``lengths`` tokens each) starting
        at column ``shift``, padded."""
        cols = np.arange(width - shift, dtype=np.int64)
        inside = cols[None, :] < lengths[:, None]
        out = np.full((len(index), width), pad, dtype=np.int64)
        with self._mapped(side) as m:
            pos = np.where(inside, m["offsets"][index][:, None] + cols[None, :], 0)
            out[:, shift:] = np.where(inside, m["ids"][pos], pad)
        return out

    def batch(self, indices: Tensor | list[int]) -> Batch:
        """Sentences ``indices`` as one padded batch (exactly what the in-memory split gives).

        Returns:
            A :class:`Batch`: src (B, S), tgt_in ``<bos> y`` and tgt_out ``y <eos>`` (B, T).
        """
        idx = torch.as_tensor(indices, dtype=torch.long)
        index = idx.numpy()
        src_len = self.src_lengths[idx].long()
        s = max(int(src_len.max()), 1)
        src = torch.from_numpy(self._rows("src", index, src_len.numpy(), s, self.pad_id))
        src_mask = torch.arange(s).unsqueeze(0) < src_len.unsqueeze(1)
        tgt_len = self.tgt_lengths[idx].long()
        t = int(tgt_len.max())
        tgt_in = self._rows("tgt", index, tgt_len.numpy() - 1, t, self.tgt_pad, shift=1)
        tgt_in[:, 0] = self.bos_id
        tgt_out = self._rows("tgt", index, tgt_len.numpy() - 1, t, self.tgt_pad)
        tgt_out[np.arange(len(index)), tgt_len.numpy() - 1] = self.eos_id
        tgt_mask = torch.arange(t).unsqueeze(0) < tgt_len.unsqueeze(1)
        return Batch(src, src_len, src_mask, torch.from_numpy(tgt_in), torch.from_numpy(tgt_out), tgt_mask, idx)

    def sort_key(self) -> Tensor:
        """(N,) :func:`~seq2seq.data.batching.length_sort_key` over the mapped lengths."""
        return length_sort_key(self.src_lengths, self.tgt_lengths)

    def lengths(self) -> Tensor:
        """(N,) :func:`~seq2seq.data.batching.footprint` over the mapped lengths."""
        return footprint(self.src_lengths, self.tgt_lengths)


def open_mapped_corpus(folder: str | Path, data_cfg, vocab_dir: Optional[Path] = None, copy: bool = False):
    """The corpus (tokenizers, vocabularies) and training dataset of a preprocessed directory.

    Args:
        folder: the corpus directory (``data.train``).
        data_cfg: the run's data section, checked against the manifest.
        vocab_dir: where to read vocabularies from (a run directory on resume), default ``folder``.
        copy: copy attention, which a mapped corpus does not support.

    Returns:
        (corpus, dataset, manifest).

    Raises:
        Seq2SeqError: copy attention, a manifest that does not match the config, missing files.
    """
    from seq2seq.data.corpus import Corpus

    if copy:
        raise Seq2SeqError(f"{folder}: copy attention (model.decoder.copy_attention) needs a TSV data.train; "
                           "a preprocessed corpus holds no per-sentence unknown words")
    manifest = read_manifest(Path(folder), data_cfg)
    corpus = Corpus.load(data_cfg, Path(vocab_dir or folder))
    return corpus, MappedDataset(folder, corpus.src_vocab, corpus.tgt_vocab), manifest


__all__ = ["MANIFEST", "MappedDataset", "array_path", "is_mapped_corpus", "open_mapped_corpus", "read_manifest"]
