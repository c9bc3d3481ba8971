"""``seq2seq serve``: the API against ``seq2seq predict``, dynamic batching under
concurrent mixed requests, every bad-input answer (and the server still serving
after it), the API key, forecasts, SIGTERM, and schemathesis over the OpenAPI schema."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from seq2seq.config import ForecastConfig, config_from_dict
from seq2seq.serve import Limits
from seq2seq.serve.app import create_app
from seq2seq.serve.models import load_model
from seq2seq.training import train
from tests.conftest import make_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def text_run(tiny_data, tmp_path_factory) -> Path:
    """A copy-task run trained for 60 steps (enough for varied, non-trivial outputs)."""
    return train(make_config(tiny_data, **{"training.max_steps": 60}), tmp_path_factory.mktemp("serve") / "copy")


def monthly_frame(n: int = 90) -> pd.DataFrame:
    times = pd.date_range("2000-01-01", periods=n, freq="MS")
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "y": np.sin(np.arange(n) * 2 * np.pi / 12) + 10})


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory) -> Path:
    """A monthly forecaster with an 80% interval (quantiles 0.1, 0.5, 0.9), 5 steps."""
    d = tmp_path_factory.mktemp("serve_forecast")
    monthly_frame().to_csv(d / "m.csv", index=False)
    raw = {"task": "forecast", "name": "monthly",
           "data": {"path": str(d / "m.csv"), "value_columns": ["y"], "input_len": 12, "horizon": 6,
                    "valid_size": 12, "test_size": 12, "calendar": ["month"], "season": 12},
           "model": {"quantiles": [0.1, 0.5, 0.9]},
           "training": {"max_steps": 5, "validate_every": 5, "progress_bar": False}}
    return train(config_from_dict(raw, schema=ForecastConfig), d / "run")


def make_client(runs, limits=None, api_key=None, **batching) -> TestClient:
    models = [load_model(str(r), device="cpu") for r in runs]
    return TestClient(create_app(models, limits, api_key, **batching))


@pytest.fixture(scope="module")
def client(text_run, forecast_run):
    with make_client([f"copy={text_run}", f"monthly={forecast_run}"], Limits(max_inputs=8, max_input_chars=40,
                     max_body_bytes=4000, max_beam=8, max_output_len=50)) as c:
        yield c


def predict(client, inputs, **options):
    return client.post("/v1/models/copy/predict", json={"inputs": inputs, **options})


def cli(*args, stdin=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "seq2seq", *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})


# ------------------------------------------------------------------ endpoints


def test_probes_and_the_models_list(client, text_run):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "models": ["copy", "monthly"]}
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    copy = models["copy"]
    assert copy["task"] == "text" and copy["checkpoint"] == "best" and copy["run"] == str(text_run)
    assert copy["architecture"] == "encoder bi-GRU 1x64, decoder GRU 1x64, attention luong_general"
    assert copy["parameters"] > 10_000 and copy["vocabulary"]["source"] == copy["vocabulary"]["target"] > 4
    assert copy["decoding"]["max_len_b"] == 3
    assert models["monthly"]["task"] == "forecast" and models["monthly"]["quantiles"] == [0.1, 0.5, 0.9]
    assert client.get("/v1/models/monthly").json()["horizon"] == 6
    page = client.get("/")
    assert page.status_code == 200 and "<title>seq2seq</title>" in page.text
    assert client.get("/static/page.js").status_code == 200
    schema = client.get("/openapi.json").json()
    options = schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert {"inputs", "beam", "nbest", "length_penalty", "top_p", "replace_unk", "return_attention"} <= set(options)


@pytest.mark.parametrize("options, flags", [({}, []),
                                            ({"beam": 3, "nbest": 2, "length_penalty": 0.6},
                                             ["--beam", 3, "--nbest", 2, "--length-penalty", 0.6]),
                                            ({"strategy": "sample", "seed": 7, "num_samples": 2, "nbest": 2},
                                             ["--sample", "--seed", 7, "--num-samples", 2, "--nbest", 2])])
def test_predict_gives_what_the_cli_gives(client, text_run, options, flags):
    sources = ["a b c", "d e f g h", "b", "c c a"]
    body = predict(client, sources, **options).json()
    assert [r["input"] for r in body["results"]] == sources
    out = cli("predict", text_run, "--scores", *flags, stdin="\n".join(sources) + "\n")
    assert out.returncode == 0, out.stderr
    expected = [line.split("\t") for line in out.stdout.splitlines()]
    got = [([str(i)] if len(r["hypotheses"]) > 1 or options.get("nbest", 1) > 1 else []) + [h["text"], f"{h['score']:.4f}"]
           for i, r in enumerate(body["results"]) for h in r["hypotheses"]]
    assert got == expected


def test_attention_and_scores_are_returned_on_request(client):
    h = predict(client, ["a b c"], return_attention=True).json()["results"][0]["hypotheses"][0]
    assert h["source_tokens"] == ["a", "b", "c"]
    attention = np.array(h["attention"])
    assert attention.shape == (len(h["tokens"]) + 1, 3)                       # the <eos> step last
    assert np.allclose(attention.sum(1), 1, atol=1e-5)
    bare = predict(client, ["a b c"], return_scores=False).json()["results"][0]["hypotheses"][0]
    assert set(bare) == {"text", "tokens"}


# ------------------------------------------------------------------ dynamic batching


@contextlib.contextmanager
def live_server(app):
    """The app on a real socket (127.0.0.1, a free port) in a thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_concurrent_mixed_requests_are_batched_and_each_gets_its_own_answer(text_run):
    """32 requests from 16 threads, three decoding settings, 1-3 inputs each: every answer
    equals the same request decoded alone, and batches of several requests happened."""
    from seq2seq.api import Seq2Seq

    rng = np.random.default_rng(0)
    settings = [{}, {"beam": 3, "nbest": 2}, {"beam": 2, "length_penalty": 1.0}]
    requests = [{"inputs": [" ".join(rng.choice(list("abcdefgh"), rng.integers(1, 7))) for _ in range(rng.integers(1, 4))],
                 **settings[i % 3]} for i in range(32)]
    alone = Seq2Seq.load(text_run, device="cpu")
    expected = [[[(p.text, p.score) for p in preds]
                 for preds in alone.predict(r["inputs"], with_scores=True, **{k: v for k, v in r.items() if k != "inputs"})]
                for r in requests]
    models = [load_model(str(text_run), device="cpu")]
    app = create_app(models, Limits(), max_batch_size=16, max_wait_ms=50)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        def ask(r):
            return http.post(f"/v1/models/{models[0].name}/predict", json=r).json()

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, requests))
        metrics = http.get("/metrics").text
    got = [[[(h["text"], h["score"]) for h in res["hypotheses"]] for res in a["results"]] for a in answers]
    texts = lambda nested: [[[t for t, _ in hyps] for hyps in r] for r in nested]   # noqa: E731
    scores = lambda nested: [s for r in nested for hyps in r for _, s in hyps]      # noqa: E731
    assert texts(got) == texts(expected)                # float sums differ in the last bits across batch shapes
    assert scores(got) == pytest.approx(scores(expected), abs=1e-4)
    count = float(re.search(r'seq2seq_batch_size_count\{model="copy"\} (\S+)', metrics).group(1))
    total = float(re.search(r'seq2seq_batch_size_sum\{model="copy"\} (\S+)', metrics).group(1))
    inputs = sum(len(r["inputs"]) for r in requests)
    assert total == inputs and count < 32                # fewer batches than requests: requests were merged
    assert 'seq2seq_requests_total{endpoint="/v1/models/{name}/predict",status="200"} 32.0' in metrics


def test_a_bad_input_in_a_merged_batch_fails_only_its_own_request():
    """The batcher retries a failed batch job by job: the good job still gets its answer."""
    from seq2seq.errors import Seq2SeqError
    from seq2seq.serve.batching import DynamicBatcher, Job

    def run(key, items):
        if "bad" in items:
            raise Seq2SeqError("bad input")
        return [x.upper() for x in items]

    batcher = DynamicBatcher(run, max_batch_size=8, max_wait_s=0.2)
    good, bad = Job("k", ["a", "b"]), Job("k", ["bad"])
    batcher.submit(good), batcher.submit(bad)
    assert good.future.result(5) == ["A", "B"]
    with pytest.raises(Seq2SeqError, match="bad input"):
        bad.future.result(5)
    batcher.close()


# ------------------------------------------------------------------ bad input


BAD = [
    ("malformed JSON", dict(content=b'{"inputs": ["a"', headers={"content-type": "application/json"}),
     422, r"body: invalid JSON"),
    ("inputs not strings", dict(json={"inputs": ["a", 3]}), 422, r"inputs\.1: Input should be a valid string"),
    ("inputs missing", dict(json={"beam": 2}), 422, r"inputs: Field required"),
    ("wrong type", dict(json={"inputs": ["a"], "beam": "five"}), 422, r"beam: Input should be a valid integer"),
    ("out of range", dict(json={"inputs": ["a"], "top_p": 1.5}), 422, r"top_p: Input should be less than or equal to 1"),
    ("unknown option", dict(json={"inputs": ["a"], "beam_width": 4}), 422, r"beam_width: unknown option"),
    ("bad combination", dict(json={"inputs": ["a"], "beam": 2, "nbest": 3}), 422,
     r"nbest \(3\) must not exceed the beam size \(2\)"),
    ("too many inputs", dict(json={"inputs": ["a"] * 9}), 422, r"inputs: 9 inputs; the limit is --max-inputs 8"),
    ("too long an input", dict(json={"inputs": ["a", "b " * 30]}), 422,
     r"inputs\.1: 60 characters; the limit is --max-input-chars 40"),
    ("beam over the limit", dict(json={"inputs": ["a"], "beam": 9}), 422, r"beam: 9; the limit is --max-beam 8"),
    ("max_len over the limit", dict(json={"inputs": ["a"], "max_len": 51}), 422, r"--max-output-len 50"),
    ("body too large", dict(json={"inputs": ["a" * 5000]}), 413, r"over the limit of 4000 bytes"),
    ("unknown model", dict(json={"inputs": ["a"]}, path="/v1/models/nope/predict"), 404,
     r"no model named 'nope'; served: copy, monthly"),
    ("predict on a forecast model", dict(json={"inputs": ["a"]}, path="/v1/models/monthly/predict"), 404,
     r"'monthly' is a forecast model: use /v1/models/monthly/forecast"),
    ("forecast bad CSV value", dict(content=b"time,y\n2000-01-01,1\n2000-02-01,x\n",
                                    headers={"content-type": "text/csv"}, path="/v1/models/monthly/forecast"), 422,
     r"body:3: column 'y': 'x' is not a number"),
    ("forecast short history", dict(content=b"time,y\n2000-01-01,1\n2000-02-01,2\n", headers={"content-type": "text/csv"},
                                    path="/v1/models/monthly/forecast"), 422,
     r"history has 2 steps; the model reads input_len = 12"),
    ("forecast missing column", dict(json={"history": {"time": [1, 2]}}, path="/v1/models/monthly/forecast"), 422,
     r"history: no column 'y'"),
    ("forecast horizon over the limit", dict(content=monthly_frame().to_csv(index=False).encode(),
                                             headers={"content-type": "text/csv"},
                                             path="/v1/models/monthly/forecast?horizon=5000"), 422,
     r"horizon: 5000; must be from 1 to --max-horizon 1000"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_a_named_error_and_the_server_keeps_serving(client, case):
    _, request, status, message = case
    request = dict(request)
    r = client.post(request.pop("path", "/v1/models/copy/predict"), **request)
    assert r.status_code == status, r.text
    assert r.json()["error"]["status"] == status
    assert re.search(message, r.json()["error"]["message"]), r.json()
    assert predict(client, ["a b"]).status_code == 200


def test_queue_full_is_503_with_retry_after_and_timeout_is_504(text_run):
    with make_client([text_run], Limits(max_queue=3)) as c:
        r = c.post("/v1/models/copy/predict", json={"inputs": ["a", "b", "c", "d"]})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "queue full" in r.json()["error"]["message"] and "--max-queue 3" in r.json()["error"]["message"]
        assert c.post("/v1/models/copy/predict", json={"inputs": ["a"]}).status_code == 200
    with make_client([text_run], Limits(timeout_s=0.5)) as c:
        slow = {"inputs": ["a b c d"] * 64, "beam": 16, "min_len": 300, "max_len_a": 100.0}   # seconds of work
        r = c.post("/v1/models/copy/predict", json=slow)
        assert r.status_code == 504 and r.json()["error"]["message"] == "not answered within --timeout-s 0.5 s"
        statuses = []
        for _ in range(60):                   # the worker finishes the slow batch, then answers again
            statuses.append(c.post("/v1/models/copy/predict", json={"inputs": ["a"]}).status_code)
            if statuses[-1] == 200:
                break
        assert statuses[-1] == 200 and set(statuses) <= {504, 200}


def test_api_key_is_required_when_configured(text_run):
    with make_client([text_run], api_key="s3cret") as c:
        assert c.get("/v1/models").status_code == 401
        r = c.post("/v1/models/copy/predict", json={"inputs": ["a"]}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200                    # probes stay open


# ------------------------------------------------------------------ forecasts


def test_forecast_from_json_or_csv(client):
    frame = monthly_frame()
    by_csv = client.post("/v1/models/monthly/forecast?horizon=8", content=frame.to_csv(index=False).encode(),
                         headers={"content-type": "text/csv"}).json()
    by_json = client.post("/v1/models/monthly/forecast",
                          json={"history": frame.to_dict(orient="list"), "horizon": 8}).json()
    assert by_csv == by_json
    s = by_csv["series"][0]
    assert by_csv["horizon"] == 8 and by_csv["quantiles"] == [0.1, 0.5, 0.9]
    assert s["time"][:2] == ["2007-07-01", "2007-08-01"] and len(s["values"]["y"]) == 8
    lo, mid, hi = (np.array(s["quantiles"]["y"][q]) for q in ("0.1", "0.5", "0.9"))
    assert np.all(lo <= mid) and np.all(mid <= hi) and np.allclose(mid, s["values"]["y"])
    assert s["history"]["time"][-1] == "2007-06-01" and s["history"]["values"]["y"][-1] == pytest.approx(
        frame.y.iloc[-1])


# ------------------------------------------------------------------ the process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_the_request_in_flight_and_exits_0(text_run):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq", "serve", str(text_run), "--port", str(port),
                             "--threads", "1"], stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/ready").status_code == 200:
                    break
            time.sleep(0.1)
        big = {"inputs": [" ".join("abcdefgh"[(i + j) % 8] for j in range(8)) for i in range(200)], "beam": 8}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{url}/v1/models/copy/predict", json=big, timeout=60)
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            answer = pending.result()
        assert answer.status_code == 200 and len(answer.json()["results"]) == 200
        assert proc.wait(30) == 0
        assert "http://127.0.0.1:" in proc.stderr.read()                 # localhost unless told otherwise
    finally:
        proc.kill()


def test_serve_refuses_bad_arguments_with_one_line(text_run, capsys):
    from seq2seq.cli import main

    for argv, message in ((["/nonexistent/run"], "/nonexistent/run: not a run directory (no config.yaml)"),
                          (["x", "--max-batch-size", "0"], "--max-batch-size must be positive (got 0)"),
                          (["x", "--timeout-s", "-1"], "--timeout-s must be positive (got -1.0)"),
                          ([str(text_run), "--api-key-env", "SEQ2SEQ_NO_SUCH_VAR"],
                           "--api-key-env SEQ2SEQ_NO_SUCH_VAR: the environment variable is unset or empty")):
        assert main(["serve", *argv]) == 2
        assert capsys.readouterr().err == f"seq2seq: error: {message}\n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("serve", text_run, "--port", port)
    assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr


# ------------------------------------------------------------------ generated requests


def test_schemathesis_finds_no_server_error(client):
    """Requests generated from the OpenAPI schema: no 5xx, and the server still answers after."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    seen = []

    def fuzz(op):
        @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            if "name" in (case.path_parameters or {}):
                case.path_parameters["name"] = "monthly" if "forecast" in op.path else "copy"
            response = case.call()
            seen.append((op.path, response.status_code))
            case.validate_response(response, checks=[not_a_server_error])

        check()

    for operation in schema.get_all_operations():
        fuzz(operation.ok())
    print(sorted(collections.Counter(seen).items()))
    assert seen and max(s for _, s in seen) < 500
    assert predict(client, ["a b"]).status_code == 200


# ------------------------------------------------------------------ the page, in a real browser


def chromium_driver(tmp_path):
    """Debian's headless Chromium through Selenium and Debian's chromedriver."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        if shutil.which("apt-get") is None:
            pytest.skip("no chromium / chromedriver and no apt-get to install them (Debian packages "
                        "chromium, chromium-driver)")
        pytest.fail("chromium and chromium-driver are missing: bash scripts/test.sh installs them "
                    "(scripts/system_packages.sh: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1400", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_decodes_shows_attention_and_draws_a_forecast(text_run, forecast_run, tmp_path):
    """Type two inputs, choose beam search, decode, read the outputs; click a hypothesis
    and see its heatmap; switch to the forecast model, paste a CSV, see the plot; and an
    API error shows on the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

    models = [load_model(f"copy={text_run}", device="cpu"), load_model(f"monthly={forecast_run}", device="cpu")]
    alone = models[0].model.predict(["a b c", "d e"], beam=3, nbest=2, with_scores=True)
    with live_server(create_app(models)) as url:
        browser = chromium_driver(tmp_path)
        try:
            wait = WebDriverWait(browser, 20)
            browser.get(url + "/")
            wait.until(lambda b: len(Select(b.find_element(By.ID, "model")).options) == 2)
            browser.find_element(By.ID, "inputs").send_keys("a b c\nd e")
            browser.find_element(By.CSS_SELECTOR, 'input[name="strategy"][value="beam"]').click()
            for field, value in (("beam-size", "3"), ("nbest", "2")):
                box = browser.find_element(By.ID, field)
                box.clear()
                box.send_keys(value)
            browser.find_element(By.ID, "decode").click()
            wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".hyp")) == 4)
            texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".hyp .text")]
            assert texts == [p.text for preds in alone for p in preds]
            scores = [float(e.text) for e in browser.find_elements(By.CSS_SELECTOR, ".hyp .score")]
            assert scores == pytest.approx([p.score for preds in alone for p in preds], abs=1e-3)

            browser.find_elements(By.CSS_SELECTOR, ".hyp")[0].click()
            wait.until(seen.visibility_of_element_located((By.CSS_SELECTOR, "table.heatmap")))
            rows = browser.find_elements(By.CSS_SELECTOR, "table.heatmap tbody tr")
            columns = browser.find_elements(By.CSS_SELECTOR, "table.heatmap thead th")
            assert len(rows) == len(alone[0][0].tokens) + 1 and len(columns) == 1 + 3    # <eos> row; a b c
            browser.save_screenshot(str(tmp_path / "page.png"))
            if os.environ.get("SEQ2SEQ_SCREENSHOT"):
                browser.save_screenshot(os.environ["SEQ2SEQ_SCREENSHOT"])

            browser.find_element(By.ID, "nbest").send_keys("0")                         # nbest 20 > beam 3
            browser.find_element(By.ID, "decode").click()
            error = wait.until(seen.visibility_of_element_located((By.ID, "error")))
            assert error.text.startswith("422: ") and "must not exceed the beam size" in error.text

            Select(browser.find_element(By.ID, "model")).select_by_value("monthly")
            wait.until(seen.visibility_of_element_located((By.ID, "forecast-panel")))
            browser.execute_script("document.getElementById('csv').value = arguments[0];",
                                   monthly_frame().to_csv(index=False))
            browser.find_element(By.ID, "forecast").click()
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#forecast-plot svg polyline.prediction"))
            assert len(browser.find_elements(By.CSS_SELECTOR, "#forecast-plot svg polygon.interval")) == 1
            points = browser.find_element(By.CSS_SELECTOR, "polyline.prediction").get_attribute("points").split()
            assert len(points) == 6                                                   # the run's horizon
            assert not browser.find_element(By.ID, "error").is_displayed()
            if os.environ.get("SEQ2SEQ_SCREENSHOT"):
                browser.save_screenshot(os.environ["SEQ2SEQ_SCREENSHOT"].replace(".png", "_forecast.png"))
        finally:
            browser.quit()


def test_a_lone_client_does_not_wait_and_concurrent_clients_are_merged():
    """With max_wait 0.5 s: a job arriving at an idle batcher starts at once; jobs that
    queue behind a running batch are merged into the next one."""
    from seq2seq.serve.batching import DynamicBatcher, Job

    sizes = []

    def run(key, items):
        sizes.append(len(items))
        time.sleep(0.2)
        return list(items)

    batcher = DynamicBatcher(run, max_batch_size=8, max_wait_s=0.5)
    start = time.monotonic()
    assert batcher.submit(Job("k", ["a"])).result(5) == ["a"]
    assert time.monotonic() - start < 0.45                     # 0.2 s of work, no 0.5 s wait
    first, *queued = [Job("k", [str(i)]) for i in range(4)]
    batcher.submit(first)
    time.sleep(0.05)                                            # the first is running; three queue behind it
    for job in queued:
        batcher.submit(job)
    assert [j.future.result(5) for j in queued] == [["1"], ["2"], ["3"]]
    assert sizes == [1, 1, 3]
    batcher.close()
