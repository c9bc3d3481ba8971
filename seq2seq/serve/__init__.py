"""``seq2seq serve``: trained runs behind a REST API with dynamic batching, and a web
page to try them (:mod:`seq2seq.serve.app`).

    seq2seq serve runs/g2p runs/co2 --port 8000
    curl -s localhost:8000/v1/models/g2p/predict -H 'content-type: application/json' \\
         -d '{"inputs": ["hello"], "beam": 5, "nbest": 2}'

Layout: :mod:`~seq2seq.serve.batching` (the queue and the worker that owns a model),
:mod:`~seq2seq.serve.models` (a text or forecast run as a served model),
:mod:`~seq2seq.serve.metrics` (Prometheus collectors, body limit),
:mod:`~seq2seq.serve.app` (the endpoints), ``static/`` (the page).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Optional

from seq2seq.errors import Seq2SeqError


def _limit(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    """What one request may ask; each is a ``seq2seq serve`` flag (``--max-inputs``, ...)
    and is named in the 413 / 422 / 503 / 504 answer it causes."""

    max_inputs: int = _limit(256, "inputs per predict request")
    max_input_chars: int = _limit(2000, "characters per input")
    max_body_bytes: int = _limit(1 << 20, "request body size, bytes (413 beyond)")
    max_queue: int = _limit(1024, "inputs waiting per model (503 with Retry-After beyond)")
    timeout_s: float = _limit(30.0, "seconds a request may wait for its result (504 beyond)")
    max_beam: int = _limit(64, "beam size, n-best and number of samples")
    max_output_len: int = _limit(512, "output tokens (the absolute max_len cap of every request)")
    max_horizon: int = _limit(1000, "forecast steps")



def default_threads() -> int:
    """torch threads for a server: torch's own choice minus one, at least 1.

    Measured on the 2-core CPU machine, 32 clients on the same machine, greedy G2P
    (``benchmarks/serve_load.py --clients 32 --beams 1``, 2026-12-03): 1,036 requests/s
    with one thread against 636 with two; a decoding worker that holds every core
    competes with the thread that answers the requests and with whatever else runs."""
    import torch

    return max(1, torch.get_num_threads() - 1)


def serve(runs: list[str], host: str = "127.0.0.1", port: int = 8000, checkpoint: str = "best",
          device: str = "auto", max_batch_size: int = 64, max_wait_ms: float = 5.0, threads: Optional[int] = None,
          api_key_env: Optional[str] = None, limits=None) -> None:
    """Load ``runs`` and serve them until SIGINT / SIGTERM (which stop accepting
    connections, finish the requests in flight and return).

    Args:
        runs: run directories, each optionally ``NAME=DIR``.
        host: the interface to bind (127.0.0.1: this machine only).
        port: TCP port.
        threads: torch's intra-op threads (default :func:`default_threads`: one core
            fewer than torch's choice, at least 1, so the event loop and the clients'
            connections keep a core).
        api_key_env: the environment variable holding the API key, if any.
        limits: :class:`~seq2seq.serve.app.Limits` (defaults if None).

    Raises:
        Seq2SeqError: a run that does not load, two runs with one name, an unset
            API-key variable, or an address that cannot be bound (naming it).
    """
    import torch
    import uvicorn

    from seq2seq.serve.app import create_app
    from seq2seq.serve.models import load_model

    limits = limits or Limits()
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise Seq2SeqError(f"--api-key-env {api_key_env}: the environment variable is unset or empty")
    torch.set_num_threads(threads or default_threads())
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise Seq2SeqError(f"cannot listen on {host}:{port}: {e.strerror} (choose another --port or --host)") from None
    models = [load_model(r, checkpoint, device) for r in runs]
    app = create_app(models, limits, api_key, max_batch_size, max_wait_ms)
    for m in models:
        print(f"[serve] {m.name}: {m.task} run {m.run_dir} ({m.checkpoint})", file=sys.stderr)
    print(f"[serve] http://{host}:{port}/  (API docs at /docs; Ctrl-C or SIGTERM to stop)", file=sys.stderr)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=limits.timeout_s))
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; for a server, a
    # requested stop is a normal end (status 0), so the re-raised signal finds a no-op.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
