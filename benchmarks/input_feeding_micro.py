"""Microbenchmark of the input-feeding loop (seq2seq/modules/input_feeding.py) alone.

Times, in one process with the variants taking turns (best of ``--rounds``):

1. forward and forward + backward at the identical G2P model's sizes (batch 64, 9
   target and 10 source positions, H = A = 256, embeddings 128, additive attention,
   dropout);
2. the same at tiny sizes (batch 2, H 4): what is left is the per-step Python and
   dispatch work;
3. the attention-gradient product of the backward in its two layouts.

    python benchmarks/input_feeding_micro.py [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from seq2seq.modules.input_feeding import LoopWeights, input_feeding_loop


def loop_args(B=64, T=9, S=10, H=256, A=256, L=128, seed=1):
    """The arguments of :func:`input_feeding_loop` at these sizes (one layer, additive attention, dropout)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: (torch.randn(*shape, generator=g) * 0.1).requires_grad_()  # noqa: E731
    keep = (torch.rand(B, T, H, generator=g) > 0.1).float() / 0.9
    weights = LoopWeights(r(4 * H, L), r(4 * H), r(4 * H, H), r(1, 4 * H, H), None, None, r(H, H), r(H), r(A, H),
                          r(A), r(A))
    return (r(B, T, L), r(1, B, H), r(1, B, H), r(B, S, A), r(B, S, H), torch.zeros(B, S), keep, None, weights)


def best_of(fns: dict, rounds: int, reps: int) -> dict:
    """Per name, the best over ``rounds`` of the mean time of ``reps`` calls (seconds); names take turns."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / reps)
    return best


def loop_timings(sizes: dict, rounds: int, reps: int) -> dict:
    args = loop_args(**sizes)

    def forward():
        with torch.no_grad():
            input_feeding_loop(*args)

    def both():
        out, weights = input_feeding_loop(*args)
        (out.sum() + weights.sum()).backward()

    return best_of({"forward": forward, "forward + backward": both}, rounds, reps)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for label, sizes, reps in (("G2P sizes (B 64, T 9, S 10, H 256)", {}, 10),
                               ("tiny sizes (B 2, T 9, S 3, H 4)", dict(B=2, S=3, H=4, A=4, L=4), 50)):
        print(label)
        for name, sec in loop_timings(sizes, args.rounds, reps).items():
            print(f"  {name:30s} {sec * 1e3:8.2f} ms  ({sec / 9 * 1e6:6.0f} us a step)")
    mp, dp = torch.randn(64, 10, 256), torch.randn(64, 256)
    mp_t = mp.transpose(1, 2)
    layouts = best_of({"(S x H)(H x 1) per row": lambda: torch.bmm(mp, dp.unsqueeze(2)),
                       "(1 x H)(H x S) per row": lambda: torch.bmm(dp.unsqueeze(1), mp_t)}, args.rounds, 200)
    print("attention-gradient product, B 64, S 10, H 256")
    for name, sec in layouts.items():
        print(f"  {name:30s} {sec * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
