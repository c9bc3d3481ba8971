"""The REST API (FastAPI) and the web page of ``seq2seq serve``.

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

    GET  /                                 the web page (static, works offline)
    GET  /health                           liveness
    GET  /ready                            200 once every model is loaded and its worker runs
    GET  /metrics                          Prometheus text: requests, latency, batch sizes, queue depth
    GET  /v1/models                        the served models
    GET  /v1/models/{name}                 one of them
    POST /v1/models/{name}/predict         {"inputs": [...], "beam": 5, "nbest": 3, ...} (text runs)
    POST /v1/models/{name}/forecast        {"history": {column: [...]}, "horizon": H} or a CSV body

Every error is ``{"error": {"status": S, "message": "..."}}`` naming the field or
the limit: 401 without the API key (``--api-key-env``), 404 unknown model, 413 body
over ``max_body_bytes``, 422 bad JSON / types / options / limits, 503 queue full
(with ``Retry-After``), 504 past ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import typing
from pathlib import Path
from typing import Optional, Union

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.exceptions import HTTPException

from seq2seq.config import DecodeOptions
from seq2seq.errors import Seq2SeqError
from seq2seq.serve import Limits
from seq2seq.serve.batching import Job, QueueFull
from seq2seq.serve.metrics import RequestGuard, ServerMetrics
from seq2seq.serve.models import ForecastModel, ServedModel, TextModel, prediction_json

STATIC = Path(__file__).parent / "static"


class ApiError(Exception):
    """An error answered as ``{"error": {"status", "message"}}``."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _predict_request_model() -> type[BaseModel]:
    """The predict request body: ``inputs``, ``beam``, ``return_scores`` and every
    :class:`DecodeOptions` field with its range checks (optional: absent means the
    run's default), so the API's options are the one definition's."""
    fields = {}
    for name, f in DecodeOptions.model_fields.items():
        kind = typing.Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
        fields[name] = (Optional[kind], Field(None, description=f.description))
    return create_model(
        "PredictRequest", __config__=ConfigDict(extra="forbid", strict=True),
        inputs=(list[str], Field(..., min_length=1, description="source texts, one result each, in order")),
        beam=(Optional[int], Field(None, ge=1, description="beam size (shorthand for strategy beam; 1 = greedy)")),
        return_scores=(bool, Field(True, description="give each hypothesis its score and log-probability")),
        **fields)


PredictRequest = _predict_request_model()


class ForecastRequest(BaseModel):
    """A forecast request as JSON: the run's columns, each a list of values (one per row)."""

    model_config = ConfigDict(extra="forbid")
    history: dict[str, list[Union[str, float, int, None]]] = Field(
        ..., description="column -> values: the run's time column, value columns (and id column)")
    horizon: Optional[int] = Field(None, ge=1, description="steps to forecast (default: the run's horizon)")


def _validation_message(errors) -> str:
    """``inputs.2: Input should be a valid string; beam: ...`` from pydantic errors."""
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        if e.get("type") == "json_invalid":
            parts.append(f"body: invalid JSON ({e.get('ctx', {}).get('error', e.get('msg'))})")
        elif e.get("type") == "extra_forbidden":
            parts.append(f"{loc}: unknown option")
        else:
            parts.append(f"{loc}: {e.get('msg')}")
    return "; ".join(parts)


def create_app(models: list[ServedModel], limits: Optional[Limits] = None, api_key: Optional[str] = None,
               max_batch_size: int = 64, max_wait_ms: float = 5.0) -> FastAPI:
    """The FastAPI application serving ``models`` (loaded); starts each model's
    batching worker, and stops it (after the queued jobs) when the app shuts down.

    Args:
        models: the served models, names unique.
        limits: the request limits (defaults of :class:`Limits` if None).
        api_key: when set, ``/v1/*`` needs ``Authorization: Bearer <api_key>``.
        max_batch_size: the most inputs decoded together (1: no batching).
        max_wait_ms: how long a request waits for others to share its batch, ms.

    Raises:
        Seq2SeqError: two models share a name.
    """
    by_name: dict[str, ServedModel] = {}
    for m in models:
        if m.name in by_name:
            raise Seq2SeqError(f"two runs are both named {m.name!r}; serve one as NAME=DIR")
        by_name[m.name] = m
    limits = limits or Limits()
    metrics = ServerMetrics()
    for m in models:
        m.start(max_batch_size, max_wait_ms / 1000, limits.max_queue, metrics.batch_observer(m.name))
        metrics.watch_queue(m.name, m.batcher)

    async def require_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        for m in models:                                # uvicorn has finished the requests in flight
            await asyncio.to_thread(m.batcher.close)

    app = FastAPI(title="seq2seq", version="1", description=__doc__.split("\n\n")[0], lifespan=lifespan)
    app.add_middleware(RequestGuard, metrics=metrics, max_body_bytes=limits.max_body_bytes)

    # ------------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def _api_error(_, e: ApiError):
        return JSONResponse({"error": {"status": e.status, "message": e.message}}, e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        return JSONResponse({"error": {"status": 422, "message": _validation_message(e.errors())}}, 422)

    @app.exception_handler(HTTPException)
    async def _http(_, e: HTTPException):
        return JSONResponse({"error": {"status": e.status_code, "message": str(e.detail)}}, e.status_code,
                            headers=getattr(e, "headers", None))

    def model_named(name: str, task: Optional[str] = None) -> ServedModel:
        """The model served as ``name`` (of ``task`` when given), else a 404 naming what is served."""
        m = by_name.get(name)
        if m is None:
            raise ApiError(404, f"no model named {name!r}; served: {', '.join(sorted(by_name))}")
        if task is not None and m.task != task:
            other = "predict" if task == "forecast" else "forecast"
            raise ApiError(404, f"{name!r} is a {m.task} model: use /v1/models/{name}/{other}")
        return m

    async def answer(model: ServedModel, job: Job):
        try:
            future = model.submit(job)
        except QueueFull as e:
            raise ApiError(503, f"{model.name}: queue full: {e}; retry later", {"Retry-After": "1"}) from None
        except Seq2SeqError as e:
            raise ApiError(503, str(e), {"Retry-After": "1"}) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limits.timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            future.cancel()
            raise ApiError(504, f"not answered within --timeout-s {limits.timeout_s:g} s") from None
        except Seq2SeqError as e:
            raise ApiError(422, str(e)) from None

    # ------------------------------------------------------------------ page and probes
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/health", summary="liveness")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="readiness: every model loaded, its worker running")
    async def ready():
        alive = all(m.batcher is not None and m.batcher.running for m in models)
        return JSONResponse({"ready": alive, "models": sorted(by_name)}, 200 if alive else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # ------------------------------------------------------------------ v1
    @app.get("/v1/models", dependencies=[Depends(require_key)], summary="the served models")
    async def list_models() -> dict:
        return {"models": [m.info() for m in models]}

    @app.get("/v1/models/{name}", dependencies=[Depends(require_key)], summary="one served model")
    async def one_model(name: str) -> dict:
        return model_named(name).info()

    @app.post("/v1/models/{name}/predict", dependencies=[Depends(require_key)],
              summary="decode each input (text runs); every decoding option of `seq2seq predict`")
    async def predict(name: str, request: PredictRequest) -> JSONResponse:
        model = model_named(name, "text")
        assert isinstance(model, TextModel)
        if len(request.inputs) > limits.max_inputs:
            raise ApiError(422, f"inputs: {len(request.inputs)} inputs; the limit is --max-inputs {limits.max_inputs}")
        for i, text in enumerate(request.inputs):
            if len(text) > limits.max_input_chars:
                raise ApiError(422, f"inputs.{i}: {len(text)} characters; the limit is "
                                    f"--max-input-chars {limits.max_input_chars}")
        given = request.model_dump(exclude_none=True, exclude={"inputs", "return_scores"})
        options = _bounded(model, given, limits)
        results = await answer(model, Job(options, request.inputs, mergeable=options.strategy != "sample"))
        scores, attention = request.return_scores, bool(request.return_attention)
        return JSONResponse({"model": name,          # plain JSON already: no response-model encoding pass
                             "results": [{"input": text, "hypotheses": [prediction_json(p, scores, attention)
                                                                        for p in preds]}
                                         for text, preds in zip(request.inputs, results)]})

    @app.post("/v1/models/{name}/forecast", dependencies=[Depends(require_key)],
              summary="forecast after the end of each series (forecast runs): JSON columns or a CSV body",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": ForecastRequest.model_json_schema()},
                  "text/csv": {"schema": {"type": "string"}}}}})
    async def forecast(name: str, request: Request, horizon: Optional[int] = None) -> dict:
        model = model_named(name, "forecast")
        assert isinstance(model, ForecastModel)
        body = await request.body()
        series, horizon = _read_history(model, body, request.headers.get("content-type", ""), horizon)
        if horizon is not None and not 1 <= horizon <= limits.max_horizon:
            raise ApiError(422, f"horizon: {horizon}; must be from 1 to --max-horizon {limits.max_horizon}")
        (result,) = await answer(model, Job(None, [(series, horizon)], mergeable=False))
        return result

    return app


def _bounded(model: TextModel, given: dict, limits: Limits) -> DecodeOptions:
    """The request's decoding options within the server's limits.

    Raises:
        ApiError: 422 naming the option, its value and the limit.
    """
    for key in ("beam", "beam_size", "num_samples", "nbest"):
        if given.get(key, 0) > limits.max_beam:
            raise ApiError(422, f"{key}: {given[key]}; the limit is --max-beam {limits.max_beam}")
    if given.get("max_len", 0) > limits.max_output_len:
        raise ApiError(422, f"max_len: {given['max_len']}; the limit is --max-output-len {limits.max_output_len}")
    try:
        options = model.options(given)
    except Seq2SeqError as e:
        raise ApiError(422, str(e)) from None
    if options.max_len is None or options.max_len > limits.max_output_len:
        options = options.replace(max_len=limits.max_output_len)
    return options


def _read_history(model: ForecastModel, body: bytes, content_type: str, horizon: Optional[int]):
    """The series of a forecast request (JSON columns or CSV) and its horizon.

    Raises:
        ApiError: 422 for malformed JSON / CSV, a missing column, a bad value (naming its row).
    """
    from seq2seq.forecast.series import read_series_csv, series_from_frame

    d = model.model.config.data
    try:
        if content_type.startswith("text/csv"):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ApiError(422, f"body: invalid UTF-8 at byte {e.start}") from None
            return read_series_csv(io.StringIO(text), d.time_column, d.value_columns, d.id_column, d.missing,
                                   where="body"), horizon
        try:
            request = ForecastRequest.model_validate_json(body)
        except ValidationError as e:
            raise ApiError(422, _validation_message(e.errors())) from None
        import pandas as pd

        lengths = {len(v) for v in request.history.values()}
        if len(lengths) > 1:
            raise ApiError(422, "history: columns of different lengths "
                                f"({', '.join(f'{k}: {len(v)}' for k, v in request.history.items())})")
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in request.history.items()})
        series = series_from_frame(frame, d.time_column, d.value_columns, d.id_column, d.missing, "history")
        return series, request.horizon if request.horizon is not None else horizon
    except Seq2SeqError as e:
        raise ApiError(422, str(e)) from None

