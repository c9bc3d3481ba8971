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
   (``--onmt-env`` or ``$ONMT_ENV``; recipe in the peers README).

Data: the peers README's common G2P data (20,000 cmudict words, stress kept).
Speed = target tokens including ``<eos>`` (no padding, no ``<bos>``) per second of
the training loop (batch fetch, forward, backward, clipping, optimizer step),
over ``--steps`` updates after ``--warmup`` untimed ones.  The machine's speed
drifts by 10-30% over minutes, so the models take turns: ``--rounds`` rounds in
which each model runs its share of the updates (OpenNMT-py one process per
round); ratios are reported overall and per round.  Finally the matrix-product
FLOPs of one update of the identical model are counted, which with the measured
product rate bound the speed any implementation can reach here (``flop_bound``).

    python benchmarks/train_speed.py [--steps 300] [--rounds 3] [--threads 2] [--skip-onmt]
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
from seq2seq.criteria import sequence_cross_entropy  # noqa: E402
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


class Timer:
    """Times updates of ``step_fn(batch) -> n_tokens`` in chunks, so that several
    models can take turns on a machine whose speed drifts (rounds interleave them)."""

    def __init__(self, step_fn, dataset, batch_size: int, seed: int = 1):
        self.step_fn, self.dataset, self.next = step_fn, dataset, 0
        self.batches = BucketSampler(dataset.lengths(), batch_size, shuffle=True, seed=seed,
                                     sort_key=dataset.sort_key()).batches(0)
        self.rounds: list[tuple[int, float]] = []            # (tokens, seconds) per timed chunk

    def run(self, steps: int, timed: bool = True) -> None:
        """``steps`` updates on the next batches; recorded as one round when ``timed``."""
        tokens, start = 0, time.perf_counter()
        for _ in range(steps):
            tokens += self.step_fn(self.dataset.batch(self.batches[self.next % len(self.batches)]))
            self.next += 1
        if timed:
            self.rounds.append((tokens, time.perf_counter() - start))

    def result(self) -> dict:
        tokens = sum(t for t, _ in self.rounds)
        seconds = sum(s for _, s in self.rounds)
        return {"tok_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens,
                "rounds_tok_per_s": [t / s for t, s in self.rounds]}


def build_ours(model_cfg: ModelConfig, sv, tv, precision: str = "fp32"):
    """Our model (seed 1) and its update step ``step(batch) -> n_tokens``: Adam 1e-3,
    clip 1.0, ``precision`` as ``training.precision``."""
    torch.manual_seed(1)
    model = EncoderDecoder.from_config(model_cfg, len(sv), len(tv))
    model.train()
    opt = build_optimizer(TrainingConfig(optimizer="adam", learning_rate=1e-3, max_steps=1), model.parameters())

    def step(batch):
        with autocast(precision, torch.device("cpu")):
            logits = model(batch).logits
        loss_sum, n = sequence_cross_entropy(logits.float(), batch.tgt_out, tv.pad_id)
        opt.zero_grad(set_to_none=True)
        (loss_sum / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return n

    return model, step


def build_tutorial(sv, tv):
    """The tutorial-style loop on the identical model (seed 1) and its update step."""
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

    return model, step


def flop_bound(dataset, sv, tv, batch_size: int, batches: int = 100) -> dict:
    """Matrix-product work of one update of the identical model, and the speed it allows.

    Counts the FLOPs of the tutorial loop's forward and backward (torch's
    FlopCounterMode: matrix products; the same products as our model's) over
    ``batches`` batches, adds the bidirectional encoder LSTM's (2 directions x
    4H x (E + H) multiply-adds per source token, forward and twice for the backward,
    which the counter does not see inside oneDNN's RNN kernel), and times large
    fp32 and bf16 products (2048^3) on this machine.  ``max_tok_per_s_*`` is the
    target tokens/s a run would reach if it did nothing but these products at
    that rate: an upper bound for any implementation of the model.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = build_tutorial(sv, tv)
    order = BucketSampler(dataset.lengths(), batch_size, shuffle=True, seed=1, sort_key=dataset.sort_key()).batches(0)
    flops = tokens = src_tokens = 0
    for idx in order[:batches]:
        batch = dataset.batch(idx)
        with FlopCounterMode(display=False) as counter:
            loss, n = model.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out, tv.pad_id)
            loss.backward()
        flops += counter.get_total_flops()
        tokens += n
        src_tokens += int(batch.src_lengths.sum())
    enc = model.encoder
    flops += 2 * 2 * 4 * enc.hidden_size * (enc.input_size + enc.hidden_size) * 3 * src_tokens
    per_token = flops / tokens
    out = {"mflop_per_token": per_token / 1e6}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(3):
            a @ b
        rate = 3 * 2 * 2048 ** 3 / (time.perf_counter() - start)
        out[f"gemm_gflops_{name}"] = rate / 1e9
        out[f"max_tok_per_s_{name}"] = rate / per_token
    return out


VARIANTS = ["identical", "identical_bf16", "tutorial", "default", "default_bf16", "onmt"]
# On request only (--only): the input-feeding loop under autograd instead of InputFeedingLoop,
# and configs/presets/luong2015.yaml (two layers) both ways.
ABLATIONS = ["identical_autograd", "identical_bf16_autograd", "luong2015", "luong2015_autograd"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300, help="timed updates per model (split over the rounds)")
    p.add_argument("--rounds", type=int, default=3,
                   help="the models take turns: each runs steps/rounds timed updates per round")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--onmt-env", default=os.environ.get("ONMT_ENV", ""),
                   help="OpenNMT-py 3.5.1's virtual environment (default $ONMT_ENV); make it with the "
                        "recipe in ../shared/peers/README.md (pip install --no-deps OpenNMT-py==3.5.1, then "
                        "its dependencies with torch==2.13.0)")
    p.add_argument("--skip-onmt", action="store_true")
    p.add_argument("--only", nargs="+", choices=VARIANTS + ABLATIONS)
    p.add_argument("--no-bound", action="store_true", help="skip the FLOP count and matrix-product timing")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset, sv, tv = common_data()
    todo = args.only or VARIANTS
    if "onmt" in todo and (args.skip_onmt or not Path(args.onmt_env, "bin", "python").exists()):
        if not args.skip_onmt:
            print(f"[onmt] no environment at {args.onmt_env!r} (set --onmt-env or ONMT_ENV); skipped",
                  file=sys.stderr)
        todo = [n for n in todo if n != "onmt"]
    timers, params = {}, {}
    for name in todo:
        precision = "bf16" if "bf16" in name else "fp32"
        if name.startswith("identical") or name.startswith("luong2015"):
            model_cfg = IDENTICAL if name.startswith("identical") else \
                load_config(HERE.parent / "configs" / "presets" / "luong2015.yaml").model
            model, step = build_ours(model_cfg, sv, tv, precision)
            model.decoder.fused_loop = not name.endswith("_autograd")
            timers[name] = Timer(step, dataset, args.batch_size)
        elif name.startswith("default"):
            cfg = load_config(HERE.parent / "configs" / "g2p_cmudict.yaml")
            model, step = build_ours(cfg.model, sv, tv, precision)
            timers[name] = Timer(step, dataset, cfg.training.batch_size)
        elif name == "tutorial":
            model, step = build_tutorial(sv, tv)
            timers[name] = Timer(step, dataset, args.batch_size)
        else:
            continue
        params[name] = sum(p.numel() for p in model.parameters())
    per_round = max(1, args.steps // args.rounds)
    onmt_rounds = []
    for timer in timers.values():
        timer.run(args.warmup, timed=False)
    for r in range(args.rounds):
        for name, timer in timers.items():
            timer.run(per_round)
            print(f"round {r + 1}: {name:15s} {timer.rounds[-1][0] / timer.rounds[-1][1]:>9,.0f} tok/s",
                  file=sys.stderr)
        if "onmt" in todo:
            from onmt_speed import measure_onmt_training

            res = measure_onmt_training(args.onmt_env, "/tmp/seq2seq_onmt_bench", steps=per_round,
                                        batch_size=args.batch_size, threads=args.threads)
            onmt_rounds.append(res)
            print(f"round {r + 1}: {'onmt':15s} {res['tok_per_s']:>9,.0f} tok/s", file=sys.stderr)
    results = {name: dict(timer.result(), params=params[name]) for name, timer in timers.items()}
    if onmt_rounds:
        tokens = sum(r["tokens"] for r in onmt_rounds)
        seconds = sum(r["seconds"] for r in onmt_rounds)
        results["onmt"] = {"tok_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens,
                           "rounds_tok_per_s": [r["tok_per_s"] for r in onmt_rounds],
                           "params": onmt_rounds[0]["params"], "toolkit": onmt_rounds[0]["toolkit"]}
    print(f"\nTraining speed, target tokens/s (incl. <eos>), batch {args.batch_size}, {args.threads} threads, "
          f"{per_round * args.rounds} updates per model in {args.rounds} interleaved rounds")
    print(f"{'model':15s} {'params':>10s} {'tok/s':>10s}   per round")
    for name, r in results.items():
        rounds = " ".join(f"{x:,.0f}" for x in r["rounds_tok_per_s"])
        print(f"{name:15s} {r.get('params') or 0:>10,} {r['tok_per_s']:>10,.0f}   {rounds}")
    ratios = {}
    pairs = [(name, ref) for name in ("identical", "identical_bf16", "default", "default_bf16")
             for ref in ("onmt", "tutorial")]
    pairs += [(name, f"{name}_autograd") for name in ("identical", "identical_bf16", "luong2015")]
    for name, ref in pairs:
        if name in results and ref in results:
            per = sorted(a / b for a, b in zip(results[name]["rounds_tok_per_s"], results[ref]["rounds_tok_per_s"]))
            ratios[f"{name}/{ref}"] = {"overall": results[name]["tok_per_s"] / results[ref]["tok_per_s"],
                                       "rounds": per}
            print(f"{name} / {ref}: {ratios[f'{name}/{ref}']['overall']:.2f}x "
                  f"(rounds {' '.join(f'{x:.2f}' for x in per)})")
    results["ratios"] = ratios
    if not args.no_bound:
        bound = flop_bound(dataset, sv, tv, args.batch_size)
        results["bound"] = bound
        print(f"identical model: {bound['mflop_per_token']:.2f} MFLOP of matrix products per target token "
              f"(forward + backward); 2048^3 products here run at {bound['gemm_gflops_fp32']:.0f} GFLOP/s fp32, "
              f"{bound['gemm_gflops_bf16']:.0f} bf16 -> at most {bound['max_tok_per_s_fp32']:,.0f} tok/s fp32, "
              f"{bound['max_tok_per_s_bf16']:,.0f} bf16 for any implementation")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
