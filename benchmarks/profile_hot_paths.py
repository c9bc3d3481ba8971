"""Where the time goes: torch.profiler tables of the three hot paths, on the model
identical to OpenNMT-py's (``train_speed.IDENTICAL``) and the peers' common G2P data.

1. ``train``: training updates of 64 words (forward, backward, clipping, Adam).
2. ``beam``: beam-5 decoding of batches of 64 test words.
3. ``serve``: greedy decoding of batches of 32 single words, the batch a server's
   worker decodes for 32 clients.

Each path runs ``--warmup`` untimed repetitions, then ``--steps`` under the profiler;
the table lists the operators by their own CPU time, and the summary gives the share
of the matrix products (``addmm``, ``mm``, ``bmm``, ``baddbmm`` and the fused attention
kernel), i.e. how far from the FLOP bound the step is.  The weights are random (speed does not depend on
them; decoding lengths are capped at 40 as in decode_speed).

    python benchmarks/profile_hot_paths.py --paths train beam serve --threads 1 [--precision bf16]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from seq2seq.data.batching import BucketSampler  # noqa: E402
from seq2seq.search import DecodeOptions, decode_batch  # noqa: E402
from train_speed import IDENTICAL, build_ours, common_data  # noqa: E402

PRODUCTS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm",
            "aten::_scaled_dot_product_flash_attention_for_cpu")


def workloads(dataset, sv, tv, precision: str = "fp32"):
    """``name -> callable`` running one repetition of each hot path; ``precision`` is the
    decoding paths' (``fp32`` or ``bf16``, :class:`DecodeOptions`)."""
    model, step = build_ours(IDENTICAL, sv, tv)
    batches = itertools.cycle(BucketSampler(dataset.lengths(), 64, shuffle=True, seed=1,
                                            sort_key=dataset.sort_key()).batches(0))

    def train():
        step(dataset.batch(next(batches)))

    beam5 = DecodeOptions(strategy="beam", beam_size=5, max_len=40, max_len_a=0.0, max_len_b=40, precision=precision)
    greedy = DecodeOptions(max_len=40, max_len_a=0.0, max_len_b=40, precision=precision)

    def decode(options, size):
        def run():
            model.eval()
            with torch.no_grad():
                decode_batch(model, dataset.batch(list(range(size))), tv.bos_id, tv.eos_id, options)
            model.train()
        return run

    return {"train": train, "beam": decode(beam5, 64), "serve": decode(greedy, 32)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--paths", nargs="+", default=["train", "beam", "serve"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="of the decoding paths")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset, sv, tv = common_data()
    runs = workloads(dataset, sv, tv, args.precision)
    for name in args.paths:
        for _ in range(args.warmup):
            runs[name]()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(args.steps):
                runs[name]()
            seconds = time.perf_counter() - start
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCTS)
        print(f"\n== {name}: {1000 * seconds / args.steps:.1f} ms a repetition under the profiler, "
              f"{args.threads} thread(s); matrix products {100 * products / total:.1f}% of operator time")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
