"""Serving load benchmark: ``seq2seq serve`` with dynamic batching on and off, and
OpenNMT-py's own REST server (``onmt_server``, Flask + waitress), on the identical
G2P model, under 1, 8, 32 and 128 concurrent clients.

Model: the peers README's OpenNMT-py row (bi-LSTM 128/dir, LSTM decoder 256 with input
feeding, additive attention, bridge), trained ``--train-steps`` updates of 64 words on
the common G2P data by each toolkit (ours through ``seq2seq.training.train``, OpenNMT-py
through ``benchmarks/peers/onmt_speed.py``), so both decode outputs of similar length.

Load: each client holds one keep-alive HTTP/1.1 connection and sends one-word requests
(a test word of ``g014b2b.ref``) back to back for ``--seconds`` after ``--warmup``
seconds; requests/s and words/s count the answers (status 200) that started inside the
measured window; latency p50 / p95 / p99 are over those answers, in ms.  The clients are
asyncio coroutines of this process on plain sockets (a light load generator, so the
2 cores go to the servers).  Servers: ``--threads`` torch threads each; ours with
``--max-batch-size 64 --max-wait-ms 5`` ("batching") and ``--max-batch-size 1``
("no batching"); OpenNMT-py's with ``batch_size 64`` and the same beam.

    python benchmarks/serve_load.py [--onmt-env DIR] [--train-steps 2000] [--seconds 10]
        [--clients 1 8 32 128] [--beams 1 5] [--exported fp32 int8] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

from decode_speed import test_words  # noqa: E402
from train_speed import IDENTICAL  # noqa: E402


# ------------------------------------------------------------------ load generator


async def _client(host: str, port: int, requests: list[bytes], start_at: float, stop_at: float, out: list) -> None:
    """Send ``requests`` in turn over one connection until ``stop_at``; append
    (latency s, status) of each answer that started at or after ``start_at``."""
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    while (begin := time.perf_counter()) < stop_at:
        writer.write(requests[i % len(requests)])
        i += 1
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length, chunked, close = 0, False, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            while (size := int((await reader.readline()).strip(), 16)) > 0:
                await reader.readexactly(size + 2)
            await reader.readline()
        else:
            await reader.readexactly(length)
        if begin >= start_at:
            out.append((time.perf_counter() - begin, status))
        if close:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
    writer.close()


def http_post(path: str, port: int, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def run_load(port: int, requests: list[bytes], clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` concurrent clients for ``warmup + seconds``; the measured window's numbers."""
    async def main():
        now = time.perf_counter()
        out: list = []
        step = max(1, len(requests) // clients)
        await asyncio.gather(*(_client("127.0.0.1", port, requests[k * step:] + requests[:k * step],
                                       now + warmup, now + warmup + seconds, out) for k in range(clients)))
        return out

    out = asyncio.run(main())
    ok = np.array([t for t, s in out if s == 200])
    errors = sum(1 for _, s in out if s != 200)
    if len(ok) == 0:
        return {"clients": clients, "requests_per_s": 0.0, "errors": errors}
    p50, p95, p99 = np.percentile(ok, [50, 95, 99]) * 1000
    return {"clients": clients, "requests_per_s": len(ok) / seconds, "words_per_s": len(ok) / seconds,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "answers": int(len(ok)), "errors": errors}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("server did not start")


# ------------------------------------------------------------------ the servers


def train_ours(workdir: Path, steps: int) -> Path:
    """Our identical model, trained ``steps`` updates on the common G2P data; returns the run."""
    from onmt_speed import g2p_splits

    from seq2seq.config import config_from_dict
    from seq2seq.training import train

    run = workdir / "ours"
    if (run / "checkpoints" / "last.safetensors").exists():
        return run
    splits = g2p_splits()
    for name, pairs in (("train", splits["train"]), ("valid", splits["dev"])):
        (workdir / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    raw = {"name": "g2p_identical", "seed": 1,
           "data": {"train": str(workdir / "train.tsv"), "valid": str(workdir / "valid.tsv"),
                    "src_tokenizer": "word", "tgt_tokenizer": "word"},
           "model": IDENTICAL.model_dump(),
           "training": {"batch_size": 64, "learning_rate": 1e-3, "max_steps": steps, "validate_every": steps,
                        "log_every": 500, "progress_bar": False, "early_stopping_metric": "loss"},
           "decoding": {"max_len": 40}}
    train(config_from_dict(raw), run, overwrite=True)
    return run


def export_ours(run: Path, out: Path, kind: str) -> Path:
    """``seq2seq export`` of ``run``'s last checkpoint to ``out`` (``kind``: fp32 or int8)."""
    subprocess.run([sys.executable, "-m", "seq2seq", "export", str(run), "--format", "onnx", "--out", str(out),
                    "--checkpoint", "last", "--overwrite", *(["--quantize", "int8"] if kind == "int8" else [])],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def start_ours(run: Path, port: int, threads: int, max_batch_size: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "seq2seq", "serve", f"g2p={run}", "--port", str(port), "--threads", str(threads),
           "--max-batch-size", str(max_batch_size), "--max-wait-ms", "5", "--checkpoint", "last"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_onmt(env_dir: str, workdir: Path, steps: int, port: int, threads: int, beam: int) -> subprocess.Popen:
    from onmt_speed import measure_onmt_training

    checkpoint = workdir / "onmt" / "run" / f"model_step_{steps + 1}.pt"
    if not checkpoint.exists():
        measure_onmt_training(env_dir, str(workdir / "onmt"), steps=steps, threads=threads)
    conf = workdir / f"onmt_conf_beam{beam}.json"
    conf.write_text(json.dumps({"models_root": str(checkpoint.parent), "models": [
        {"id": 100, "model": checkpoint.name, "timeout": -1, "on_timeout": "to_cpu", "load": True,
         "opt": {"gpu": -1, "beam_size": beam, "batch_size": 64, "max_length": 40}}]}))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="",
               PYTHONWARNINGS="ignore", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    env.pop("PYTHONPATH", None)
    cmd = [str(Path(env_dir, "bin", "onmt_server")), "--ip", "127.0.0.1", "--port", str(port),
           "--url_root", "/translator", "--model_config", str(conf)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--onmt-env", default=os.environ.get("ONMT_ENV", ""),
                   help="OpenNMT-py 3.5.1's virtual environment (default $ONMT_ENV; recipe in "
                        "../shared/peers/README.md); skipped when absent")
    p.add_argument("--train-steps", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each point")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "seq2seq_serve_load"))
    p.add_argument("--exported", nargs="*", choices=["fp32", "int8"], default=[],
                   help="also serve our run's ONNX export (seq2seq export, fp32 and/or int8), with batching")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    words = test_words()[:2000]
    run = train_ours(workdir, args.train_steps)
    onmt = Path(args.onmt_env, "bin", "onmt_server").exists()
    if not onmt:
        print(f"[onmt] no onmt_server in {args.onmt_env!r} (set --onmt-env or ONMT_ENV); skipped", file=sys.stderr)
    servers = [("seq2seq, batching", 64, run), ("seq2seq, no batching", 1, run)]
    for kind in args.exported:
        servers.append((f"seq2seq, batching, ONNX {kind}", 64, export_ours(run, workdir / f"onnx_{kind}", kind)))
    servers += [("OpenNMT-py onmt_server", None, None)] if onmt else []
    results = []
    for beam in args.beams:
        for name, max_batch, served in servers:
            port = free_port()
            if max_batch is None:
                proc = start_onmt(args.onmt_env, workdir, args.train_steps, port, args.threads, beam)
                requests = [http_post("/translator/translate", port,
                                      json.dumps([{"src": " ".join(w), "id": 100}]).encode()) for w in words]
            else:
                proc = start_ours(served, port, args.threads, max_batch)
                body = {} if beam == 1 else {"beam": beam}
                requests = [http_post("/v1/models/g2p/predict", port,
                                      json.dumps({"inputs": [" ".join(w)], **body}).encode()) for w in words]
            try:
                wait_until_up(port, proc)
                for clients in args.clients:
                    r = {"server": name, "beam": beam,
                         **run_load(port, requests, clients, args.seconds, args.warmup)}
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr)
            finally:
                proc.terminate()
                proc.wait(30)
    print(f"\nOne-word G2P requests, {args.seconds:g} s per point, {args.threads} threads per server")
    print(f"{'server':24s} {'beam':>4s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    for r in results:
        print(f"{r['server']:24s} {r['beam']:>4d} {r['clients']:>7d} {r['requests_per_s']:>8.1f} "
              f"{r.get('p50_ms', 0):>8.1f} {r.get('p95_ms', 0):>8.1f} {r.get('p99_ms', 0):>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
