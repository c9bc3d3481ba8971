"""Training-speed benchmark: target tokens per second on G2P (CMUdict).

Measures, in one run on this machine:

1. ``identical``: our model identical to OpenNMT-py's row in
   ``../shared/peers/README.md``: bi-LSTM encoder 128 per direction, LSTM decoder
   256, embeddings 128, additive (``mlp``) attention Luong-style with input
   feeding, a bridge (projection) to the decoder state, dropout 0.1, batch 64
   sentences, Adam 1e-3, clip 1.0.
2. ``tutorial``: the same model written as the usual tutorial loop (one Python
   step per target position, loss accumulated per step): benchmarks/tutorial_loop.py.
3. ``default``: the default G2P model of ``configs/g2p_cmudict.yaml`` (no input
   feeding: the whole target runs through the decoder RNN in one call).
4. ``onmt``: OpenNMT-py 3.5.1 itself, where its environment exists
   (``--onmt-env``, default /work/peers/onmt; recipe in the peers README).

Data: the peers README's common G2P data (20,000 cmudict words, stress kept).
Speed = target tokens including ``<eos>`` (no padding, no ``<bos>``) per second of
the training loop (batch fetch, forward, backward, clipping, optimizer step),
over ``--steps`` updates after ``--warmup`` untimed ones.

    python benchmarks/train_speed.py [--steps 300] [--threads 2] [--skip-onmt]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

import torch  # noqa: E402

from seq2seq.config import ModelConfig, TrainingConfig, load_config  # noqa: E402
from seq2seq.data.batching import BucketSampler, ParallelDataset  # noqa: E402
from seq2seq.data.tokenizers import WordTokenizer  # noqa: E402
from seq2seq.data.vocab import Vocabulary  # noqa: E402
from seq2seq.loss import sequence_cross_entropy  # noqa: E402
from seq2seq.models.encoder_decoder import EncoderDecoder  # noqa: E402
from seq2seq.training import autocast, build_optimizer  # noqa: E402

IDENTICAL = ModelConfig.model_validate({
    "encoder": {"cell": "lstm", "embedding_size": 128, "hidden_size": 128, "layers": 1, "bidirectional": True,
                "dropout": 0.1},
    "decoder": {"cell": "lstm", "embedding_size": 128, "hidden_size": 256, "layers": 1, "dropout": 0.1,
                "attention": "luong_concat", "input_feeding": True},
    "bridge": "projection",
})


def common_data():
    """The peers README's G2P pairs as (dataset, src_vocab, tgt_vocab)."""
    from onmt_speed import g2p_splits

    pairs = g2p_splits()["train"]
    src_tok, tgt_tok = WordTokenizer(), WordTokenizer()   # letters are space-separated there
    src = [src_tok.encode(s) for s, _ in pairs]
    tgt = [tgt_tok.encode(t) for _, t in pairs]
    sv, tv = Vocabulary.build(src), Vocabulary.build(tgt)
    return ParallelDataset([sv.encode(s) for s in src], [tv.encode(t) for t in tgt], sv, tv), sv, tv


def time_training(step_fn, dataset, batch_size: int, steps: int, warmup: int, seed: int = 1) -> dict:
    """Run ``warmup + steps`` updates of ``step_fn(batch) -> n_tokens``; time the last ``steps``."""
    batches = BucketSampler(dataset.lengths(), batch_size, shuffle=True, seed=seed,
                            sort_key=dataset.sort_key()).batches(0)
    tokens, start = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        batch = dataset.batch(batches[i % len(batches)])
        n = step_fn(batch)
        if i >= warmup:
            tokens += n
    seconds = time.perf_counter() - start
    return {"tok_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens, "steps": steps}


def build_ours(model_cfg: ModelConfig, sv, tv, precision: str = "fp32"):
    """Our model (seed 1) and its update step ``step(batch) -> n_tokens``: Adam 1e-3,
    clip 1.0, ``precision`` as ``training.precision``."""
    torch.manual_seed(1)
    model = EncoderDecoder.from_config(model_cfg, len(sv), len(tv))
    model.train()
    opt = build_optimizer(TrainingConfig(optimizer="adam", learning_rate=1e-3, max_steps=1), model.parameters())

    def step(batch):
        with autocast(precision, torch.device("cpu")):
            logits, _ = model(batch)
        loss_sum, n = sequence_cross_entropy(logits.float(), batch.tgt_out, tv.pad_id)
        opt.zero_grad(set_to_none=True)
        (loss_sum / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return n

    return model, step


def ours(model_cfg: ModelConfig, dataset, sv, tv, batch_size: int, steps: int, warmup: int,
         precision: str = "fp32") -> dict:
    """Our trainer's update step on ``model_cfg`` (``precision`` as ``training.precision``)."""
    model, step = build_ours(model_cfg, sv, tv, precision)
    out = time_training(step, dataset, batch_size, steps, warmup)
    out["params"] = model.num_parameters()
    return out


def tutorial(dataset, sv, tv, batch_size: int, steps: int, warmup: int) -> dict:
    """The tutorial-style loop on the identical model."""
    from tutorial_loop import TutorialSeq2Seq

    torch.manual_seed(1)
    model = TutorialSeq2Seq(len(sv), len(tv))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch):
        loss, n = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, tv.pad_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return n

    out = time_training(step, dataset, batch_size, steps, warmup)
    out["params"] = sum(p.numel() for p in model.parameters())
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--onmt-env", default=os.environ.get("ONMT_ENV", "/work/peers/onmt"))
    p.add_argument("--skip-onmt", action="store_true")
    p.add_argument("--only", nargs="+", choices=["identical", "identical_bf16", "tutorial", "default", "default_bf16", "onmt"])
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset, sv, tv = common_data()
    todo = args.only or ["identical", "identical_bf16", "tutorial", "default", "default_bf16", "onmt"]
    results = {}
    for name in todo:
        if name == "identical":
            results[name] = ours(IDENTICAL, dataset, sv, tv, args.batch_size, args.steps, args.warmup)
        elif name == "identical_bf16":
            results[name] = ours(IDENTICAL, dataset, sv, tv, args.batch_size, args.steps, args.warmup, "bf16")
        elif name.startswith("default"):
            cfg = load_config(HERE.parent / "configs" / "g2p_cmudict.yaml")
            results[name] = ours(cfg.model, dataset, sv, tv, cfg.training.batch_size, args.steps, args.warmup,
                                 "bf16" if name.endswith("bf16") else "fp32")
        elif name == "tutorial":
            results[name] = tutorial(dataset, sv, tv, args.batch_size, args.steps, args.warmup)
        elif name == "onmt" and not args.skip_onmt:
            if not Path(args.onmt_env, "bin", "python").exists():
                print(f"[onmt] no environment at {args.onmt_env}; skipped", file=sys.stderr)
                continue
            from onmt_speed import measure_onmt_training

            results[name] = measure_onmt_training(args.onmt_env, "/tmp/seq2seq_onmt_bench", steps=args.steps,
                                                  batch_size=args.batch_size, threads=args.threads)
        if name in results:
            r = results[name]
            print(f"{name:10s} {r['tok_per_s']:>10,.0f} tok/s  params {r.get('params', 0):>10,}", file=sys.stderr)
    print(f"\nTraining speed, target tokens/s (incl. <eos>), batch {args.batch_size}, {args.threads} threads, "
          f"{args.steps} updates")
    print(f"{'model':12s} {'params':>10s} {'tok/s':>10s}")
    for name, r in results.items():
        print(f"{name:12s} {r.get('params', 0):>10,} {r['tok_per_s']:>10,.0f}")
    for name in ("identical", "identical_bf16", "default", "default_bf16"):
        for ref in ("onmt", "tutorial"):
            if name in results and ref in results:
                print(f"{name} / {ref}: {results[name]['tok_per_s'] / results[ref]['tok_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
