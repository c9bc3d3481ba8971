"""Prometheus metrics of the server (through ``prometheus-client``), and the ASGI
middleware that records every request and enforces the body-size limit.

    seq2seq_requests_total{endpoint, status}      requests answered
    seq2seq_request_seconds{endpoint}             latency histogram, seconds
    seq2seq_batch_size{model}                     inputs per decoded batch (histogram)
    seq2seq_queue_depth{model}                    inputs waiting (gauge)
"""

from __future__ import annotations

import json
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """The collectors, in a registry of their own (so several apps can live in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("seq2seq_requests", "requests answered", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("seq2seq_request_seconds", "request latency, seconds", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("seq2seq_batch_size", "inputs per decoded batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("seq2seq_queue_depth", "inputs waiting to be decoded", ["model"],
                                 registry=self.registry)

    def watch_queue(self, model: str, batcher) -> None:
        """Report ``batcher.depth`` as ``seq2seq_queue_depth{model}`` at each scrape."""
        self.queue_depth.labels(model).set_function(lambda: batcher.depth)

    def batch_observer(self, model: str):
        """A callback for :class:`~seq2seq.serve.batching.DynamicBatcher`'s ``on_batch``."""
        return self.batch_size.labels(model).observe

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _TooLarge(Exception):
    pass


class RequestGuard:
    """ASGI middleware: refuses bodies over ``max_body_bytes`` with 413 (by
    ``Content-Length`` before reading, or while reading a chunked body), and records
    each request's status and latency under its route template (``/v1/models/{name}/predict``).

    Args:
        app: the ASGI application.
        metrics: where to record.
        max_body_bytes: the body-size limit, bytes.
    """

    def __init__(self, app, metrics: ServerMetrics, max_body_bytes: int):
        self.app, self.metrics, self.limit = app, metrics, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, received = time.perf_counter(), 500, 0

        async def send_recording(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receive_limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                raise _TooLarge
            await self.app(scope, receive_limited, send_recording)
        except _TooLarge:
            status = 413
            body = json.dumps({"error": {"status": 413, "message": f"request body over the limit of "
                                                                   f"{self.limit} bytes (--max-body-bytes)"}}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "other")
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
