"""Data-parallel training over the processes torchrun starts: who this process is
(:class:`Ranks`), the collectives the trainer needs, and ``seq2seq train --nproc N``.

The trainer (:mod:`seq2seq.training`) runs the same loop in every rank; this module
holds everything that differs between one process and several:

- :func:`init` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)
  and joins the process group (``training.distributed.backend``: NCCL on CUDA, gloo
  on the CPU).  Without torchrun nothing is initialised and every collective is the
  identity, so one process runs exactly as before.
- Each update takes one *global* batch of ``batch_size x world_size`` (the task's
  length-bucketed order for that size) and every rank trains on its own contiguous
  share (:func:`shard`), so N ranks with batch B see the same data as one process
  with batch N*B.  Gradients are averaged by PyTorch DistributedDataParallel (Li et
  al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
  Training"); the trainer scales each rank's objective by ``world_size / global
  count``, so the averaged gradient is the one process's gradient of the whole
  global batch.  The learning rate is never rescaled.
- Rank 0 alone writes (logs, checkpoints, plots) and holds the run lock; the others
  wait for it through :meth:`Ranks.main_first` and :meth:`Ranks.broadcast`.

``seq2seq train CFG --nproc N`` (:func:`launch`) runs ``torchrun --standalone
--nproc-per-node N -m seq2seq train ...`` through torchrun's own launcher
(:mod:`torch.distributed.run`): when a rank dies or the user presses Ctrl-C the
launcher stops every rank, and each rank also dies with its launcher
(``PR_SET_PDEATHSIG``), so no process is left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Optional, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from seq2seq.errors import Seq2SeqError

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel job (one process: rank 0 of 1).

    Attributes:
        rank: global rank, 0 .. world_size - 1.
        world_size: number of processes training together.
        local_rank: rank on this machine (selects the GPU).
        backend: ``gloo`` or ``nccl``; empty when no process group was joined.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def joined(self) -> bool:
        """Whether this process belongs to a torch.distributed process group."""
        return bool(self.backend)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only writer of the run directory."""
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sum over ranks of each of ``values`` (float64; the values themselves in one process)."""
        if not self.joined:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (any picklable value)."""
        if not self.joined:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if not self.joined:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def main_first(self, fn: Callable[[], T]) -> Optional[T]:
        """Run ``fn`` on rank 0 while the other ranks wait; then every rank goes on.

        Returns:
            ``fn()`` on rank 0, None on the others.

        Raises:
            Whatever ``fn`` raised, on rank 0; on the other ranks a
            :class:`~seq2seq.errors.Seq2SeqError` saying that rank 0 failed, so a user
            error on rank 0 (say, an existing run directory) ends every rank at once.
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except BaseException as e:           # noqa: BLE001 (re-raised below, after the others are told)
                error = e
        message = self.broadcast(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        if message is not None:
            raise Seq2SeqError(f"rank {self.rank}: stopping, rank 0 failed ({message})")
        return result


def resolve_backend(name: str, device: torch.device) -> str:
    """``auto`` -> ``nccl`` on CUDA, ``gloo`` on the CPU.

    Raises:
        Seq2SeqError: ``nccl`` on a CPU device.
    """
    if name == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if name == "nccl" and device.type != "cuda":
        raise Seq2SeqError("training.distributed.backend is 'nccl', which needs CUDA devices; "
                           "use 'gloo' (or 'auto') on the CPU")
    return name


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher setting ``RANK`` and ``WORLD_SIZE``) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _die_with_parent() -> None:
    """Linux: receive SIGTERM when the launcher dies, even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``),
    so a killed launcher leaves no rank behind."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))                # PR_SET_PDEATHSIG = 1
    except OSError:
        return
    if os.getppid() == 1:                                 # the launcher died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def init(backend: str, timeout_minutes: float, device: torch.device) -> tuple[Ranks, torch.device]:
    """Join torchrun's process group, or run as one process when not launched by torchrun.

    Args:
        backend: ``training.distributed.backend`` (``auto``, ``gloo``, ``nccl``).
        timeout_minutes: the longest a rank waits in one collective.
        device: the resolved ``training.device``; on CUDA each rank takes GPU ``LOCAL_RANK``.

    Returns:
        The ranks and this rank's device.

    Raises:
        Seq2SeqError: ``nccl`` without CUDA, or more local ranks than GPUs.
    """
    if not launched_by_torchrun():
        return Ranks(), device
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    name = resolve_backend(backend, device)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise Seq2SeqError(f"local rank {local} has no GPU ({torch.cuda.device_count()} visible); "
                               "start at most one process per GPU (--nproc-per-node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    _die_with_parent()
    if not dist.is_initialized():
        dist.init_process_group(name, timeout=timedelta(minutes=timeout_minutes))
    return Ranks(rank, world, local, name), device


def shutdown(ranks: Ranks) -> None:
    """Leave the process group (after the last collective)."""
    if ranks.joined and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's contiguous share of one global batch.

    Args:
        indices: (global_batch,) example indices, at least ``world_size`` of them.
    Returns:
        (global_batch / world_size,) rounded up for the first ranks, down for the last.
    """
    if ranks.world_size == 1:
        return indices
    return torch.tensor_split(indices, ranks.world_size)[ranks.rank]


def data_parallel(module: nn.Module, ranks: Ranks, device: torch.device,
                  find_unused_parameters: bool = False) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel (rank 0's weights broadcast to
    all ranks, gradients averaged in backward), or ``module`` itself in one process."""
    if not ranks.joined:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                               find_unused_parameters=find_unused_parameters)


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank went away."""
    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and any(
        s in str(error) for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe")))


# ---------------------------------------------------------------------- seq2seq train --nproc N


def launch(nproc: int, argv: list[str]) -> None:
    """Run ``seq2seq ARGV`` in ``nproc`` processes on this machine through torchrun's
    launcher (``torch.distributed.run --standalone --nproc-per-node N --max-restarts 0
    -m seq2seq ARGV``), and wait for them.

    Raises:
        Seq2SeqError: a rank failed or was killed (naming it and how it ended); the
            launcher has stopped every other rank.
        KeyboardInterrupt: the launcher got SIGINT / SIGTERM (Ctrl-C); every rank was stopped.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if launched_by_torchrun():
        raise Seq2SeqError("--nproc inside a torchrun job: give the process count to torchrun only")
    if nproc < 1:
        raise Seq2SeqError(f"--nproc must be >= 1 (got {nproc})")
    if nproc > 1:
        os.environ.setdefault("OMP_NUM_THREADS", "1")      # torchrun's own default, without its warning
    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "--monitor-interval=0.2",
                       "-m", "seq2seq", *argv])
    try:
        run(args)
    except ChildFailedError as e:
        raise Seq2SeqError(f"{describe_failures(e.failures)}; every rank of the job was stopped") from None
    except SignalException as e:
        raise KeyboardInterrupt(f"{signal.Signals(e.sigval).name}; all {nproc} ranks were stopped") from None


def describe_failures(failures: dict) -> str:
    """``rank 1 (pid 4711) was killed by SIGKILL`` / ``rank 0 (pid 4710) exited with status 2``, one
    clause per failed rank, the first failure first."""
    parts = []
    for rank, f in sorted(failures.items(), key=lambda kv: getattr(kv[1], "timestamp", 0)):
        how = f"was killed by {f.signal_name()}" if f.exitcode < 0 else f"exited with status {f.exitcode}"
        parts.append(f"rank {rank} (pid {f.pid}) {how}")
    return "; ".join(parts) or "a rank failed"


__all__ = ["Ranks", "data_parallel", "describe_failures", "init", "launch", "launched_by_torchrun", "lost_peer",
           "resolve_backend", "shard", "shutdown"]
