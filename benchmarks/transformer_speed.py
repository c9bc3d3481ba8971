"""Transformer speed: decoding sentences/s against the output length, and training
target tokens/s, for the model of ``configs/presets/transformer_translation.yaml``.

Decoding: ``--sentences`` random sources of ``--src-len`` tokens (vocabulary 8,000, as
the preset's subwords) decoded with every output forced to exactly L tokens (``min_len``
= ``max_len`` = L), for L in ``--lengths``, greedy and beam 5, batches of 64.  Training:
``--train-steps`` teacher-forced updates (Adam, dropout on) of 32 sentences with source
and target lengths drawn from 10-40, batched by length (as a trainer's buckets do).  The
weights are random: speed does not depend on what the model learnt, only on the
lengths, which are forced.

Run it against an older commit with the same script (it uses only APIs that commit has):

    python benchmarks/transformer_speed.py --json benchmarks/results/transformer_speed.json
    git worktree add /tmp/before COMMIT
    PYTHONPATH=/tmp/before python benchmarks/transformer_speed.py --json /tmp/before.json

One thread by default (``--threads``), timings the best of ``--repeats``.  ``--onnx`` also
exports the model (fp32 and int8, :func:`seq2seq.export.exporter.write_graphs`) and times
the same decoding through onnxruntime, with the share of fp32 outputs the int8 graphs
reproduce (greedy, unforced lengths: random weights make that share a lower bound).
``--onmt-env DIR`` also trains and decodes OpenNMT-py 3.5.1's Transformer of the same
size from its own venv (``../shared/peers/README.md``), same sentences, same forced
lengths, same thread count (:func:`onmt_speed`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

import seq2seq
from seq2seq.config import load_config
from seq2seq.data.batching import ParallelDataset
from seq2seq.data.vocab import Vocabulary
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.search import DecodeOptions, decode_batch

PRESET = Path(__file__).resolve().parent.parent / "configs" / "presets" / "transformer_translation.yaml"


def build(vocab_size: int) -> tuple[EncoderDecoder, Vocabulary]:
    """The preset's model with random weights over a vocabulary of ``vocab_size``."""
    vocab = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>"] + [f"w{i}" for i in range(vocab_size - 4)])
    cfg = load_config(PRESET).model
    torch.manual_seed(0)
    return EncoderDecoder.from_config(cfg, len(vocab), len(vocab)), vocab


def decode_sources(sentences: int, src_len: int, vocab_size: int) -> list[list[int]]:
    """The random sources every decoder here decodes (seed 1): ids 4 .. vocab_size-1."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(4, vocab_size, (sentences, src_len), generator=g).tolist()


def decode_speed(model, vocab, sentences: int, src_len: int, length: int, beam: int, repeats: int) -> float:
    """Sentences per second, outputs forced to ``length`` tokens."""
    ds = ParallelDataset(decode_sources(sentences, src_len, len(vocab)), None, vocab, vocab)
    options = DecodeOptions(strategy="beam" if beam > 1 else "greedy", beam_size=beam, min_len=length,
                            max_len=length, max_len_a=0.0, max_len_b=length)
    best = float("inf")
    model.eval()
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, sentences, 64):
                out = decode_batch(model, ds.batch(list(range(i, min(i + 64, sentences)))), vocab.bos_id,
                                   vocab.eos_id, options)
                assert all(len(h[0].tokens) == length for h in out)
            best = min(best, time.perf_counter() - start)
    return sentences / best


def free_outputs(model, vocab, sentences: int, src_len: int) -> list[list[int]]:
    """Greedy outputs of the decoding sources, lengths not forced (capped at 2 x src_len)."""
    ds = ParallelDataset(decode_sources(sentences, src_len, len(vocab)), None, vocab, vocab)
    options = DecodeOptions(max_len_a=2.0, max_len_b=1)
    with torch.no_grad():
        return [h[0].tokens for h in decode_batch(model, ds.batch(list(range(sentences))), vocab.bos_id,
                                                  vocab.eos_id, options)]


def train_speed(model, vocab, steps: int) -> float:
    """Target tokens (``<eos>`` counted) per second of teacher-forced updates."""
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(10, 41, (steps * 32, 2), generator=g)
    # batches of similar lengths, as a trainer's length buckets make them (OpenNMT-py sorts its bucket too)
    lengths = lengths[torch.argsort(lengths[:, 0] * 100 + lengths[:, 1])]
    src = [torch.randint(4, len(vocab), (int(a),), generator=g).tolist() for a, _ in lengths]
    tgt = [torch.randint(4, len(vocab), (int(b),), generator=g).tolist() for _, b in lengths]
    ds = ParallelDataset(src, tgt, vocab, vocab)
    order = torch.randperm(steps, generator=g).tolist()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    model.train()
    tokens, seconds = 0, 0.0
    for i, step in enumerate(order):
        batch = ds.batch(list(range(step * 32, (step + 1) * 32)))
        start = time.perf_counter()
        logits = model(batch).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(),
                                                 ignore_index=vocab.pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 3:                                               # the first updates warm the allocator
            seconds += time.perf_counter() - start
            tokens += int((batch.tgt_out != vocab.pad_id).sum())
    return tokens / seconds


def onmt_speed(env_dir: str, workdir: Path, args) -> dict:
    """OpenNMT-py 3.5.1's Transformer of the same size (its own venv, ``../shared/peers``):
    trained on random sentences drawn like ours (lengths 10-40, 32 per update, Adam 1e-4;
    its own length buckets), then decoding the same sources with every output forced to L
    tokens (``-min_length`` = ``-max_length`` = L, ``-max_length_ratio 0``: its default
    caps outputs at 1.25 x the source + 5), batches of 64.  Returns training tokens/s and
    sentences/s per beam and length, each timing onmt's own translation time (loading
    excluded)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from onmt_speed import measure_onmt_training, time_onmt_translate, transformer_model

    cfg = load_config(PRESET).model.encoder
    word = lambda ids: " ".join(f"w{i - 4}" for i in ids)  # noqa: E731  (the tokens of build())
    workdir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(2)
    # at least 2,000 sentences (onmt trains on the first train_steps + 1 batches), so that its
    # vocabulary, built from this file, holds nearly all 8,000 tokens, as ours does
    lengths = torch.randint(10, 41, (max((args.train_steps + 1) * 32, 2000), 2), generator=g)
    pairs = [(torch.randint(4, 8000, (int(a),), generator=g).tolist(),
              torch.randint(4, 8000, (int(b),), generator=g).tolist()) for a, b in lengths]
    paths = {"train_src": str(workdir / "train.src"), "train_tgt": str(workdir / "train.tgt")}
    Path(paths["train_src"]).write_text("".join(word(a) + "\n" for a, _ in pairs))
    Path(paths["train_tgt"]).write_text("".join(word(b) + "\n" for _, b in pairs))
    train = measure_onmt_training(env_dir, str(workdir), steps=args.train_steps, batch_size=32,
                                  threads=args.threads, paths=paths, learning_rate=1e-4,
                                  model=transformer_model(cfg.hidden_size, cfg.heads, cfg.ff_size, cfg.layers))
    src = workdir / "test.src"
    src.write_text("".join(word(s) + "\n" for s in decode_sources(args.sentences, args.src_len, 8000)))
    result = {"train_tokens_per_s": train["tok_per_s"], "params": train["params"], "decode_sentences_per_s": {}}
    checkpoint = str(workdir / "run" / f"model_step_{args.train_steps + 1}.pt")
    for beam in args.beams:
        for length in args.lengths:
            out = workdir / f"pred_beam{beam}_len{length}.txt"
            runs = time_onmt_translate(env_dir, checkpoint, str(src), str(out), args.threads,
                                       ["-beam_size", str(beam), "-min_length", str(length),
                                        "-max_length", str(length), "-max_length_ratio", "0"], args.repeats)
            got = {len(line.split()) for line in out.read_text().splitlines()}
            if got != {length}:
                raise RuntimeError(f"onmt output lengths {sorted(got)}, forced {length}")
            speed = args.sentences / min(runs)
            result["decode_sentences_per_s"][f"beam{beam}_len{length}"] = speed
            print(f"onmt beam {beam} length {length:4d}: {speed:9.1f} sentences/s", flush=True)
    print(f"onmt training: {train['tok_per_s']:,.0f} target tokens/s ({train['params']:,} parameters)")
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--src-len", type=int, default=30)
    p.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    p.add_argument("--train-steps", type=int, default=23)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--onnx", action="store_true", help="also time the exported graphs (fp32, int8)")
    p.add_argument("--onmt-env", default="", help="also time OpenNMT-py's Transformer from its venv (see onmt_speed)")
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, vocab = build(8000)
    commit = subprocess.run(["git", "-C", str(Path(seq2seq.__file__).parent), "log", "-1", "--format=%h %s"],
                            capture_output=True, text=True).stdout.strip()
    result = {"commit": commit, "threads": args.threads, "sentences": args.sentences, "src_len": args.src_len,
              "decode_sentences_per_s": {}, "train_tokens_per_s": None}
    result["params"] = sum(p.numel() for p in model.parameters())
    print(f"commit {commit}, {args.threads} thread(s), {result['params']:,} parameters")
    for beam in args.beams:
        for length in args.lengths:
            speed = decode_speed(model, vocab, args.sentences, args.src_len, length, beam, args.repeats)
            result["decode_sentences_per_s"][f"beam{beam}_len{length}"] = speed
            print(f"beam {beam} length {length:4d}: {speed:9.1f} sentences/s, {speed * length:9.0f} tokens/s",
                  flush=True)
    if args.onnx:
        import tempfile

        from seq2seq.export.exporter import write_graphs
        from seq2seq.export.runtime import OnnxEncoderDecoder

        model.eval()
        free = {}
        for quantize in (None, "int8"):
            name = quantize or "fp32"
            folder = Path(tempfile.mkdtemp(prefix=f"transformer_{name}_"))
            write_graphs(model, folder, quantize=quantize)
            graphs = OnnxEncoderDecoder(folder / "encoder.onnx", folder / "decoder_step.onnx",
                                        model.decoder.embed.d_model, args.threads)
            for beam in args.beams:
                for length in args.lengths:
                    speed = decode_speed(graphs, vocab, args.sentences, args.src_len, length, beam, args.repeats)
                    result["decode_sentences_per_s"][f"onnx_{name}_beam{beam}_len{length}"] = speed
                    print(f"onnx {name} beam {beam} length {length:4d}: {speed:9.1f} sentences/s", flush=True)
            free[name] = free_outputs(graphs, vocab, args.sentences, args.src_len)
        same = sum(a == b for a, b in zip(free["fp32"], free["int8"])) / len(free["fp32"])
        result["int8_same_greedy_output"] = same
        print(f"int8 greedy outputs equal to fp32's: {100 * same:.1f}%")
    if args.train_steps:
        result["train_tokens_per_s"] = train_speed(model, vocab, args.train_steps)
        print(f"training: {result['train_tokens_per_s']:,.0f} target tokens/s")
    if args.onmt_env:
        import tempfile

        result["onmt"] = onmt_speed(args.onmt_env, Path(tempfile.mkdtemp(prefix="onmt_transformer_")), args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
