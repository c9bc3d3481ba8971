"""Forecasting: CSV reading and its errors, splits without leakage, scaling, metrics,
baselines, the model's paths, learning a sine, and the command line end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from seq2seq.config import config_from_dict, load_config
from seq2seq.errors import Seq2SeqError
from seq2seq.config.forecast import ForecastConfig, ForecastModelConfig
from seq2seq.forecast.baselines import naive, seasonal_naive
from seq2seq.forecast.builtin_series import sine_csv
from seq2seq.forecast.series import (Scaler, calendar_features, future_times, read_series_csv, series_from_frame,
                                   window_origins)
from seq2seq.forecast.metrics import coverage, mae, mase, pinball, rmse, seasonal_scale, smape
from seq2seq.forecast.model import ForecastModel
from seq2seq.forecast.windows import ForecastData
from seq2seq.criteria import regression_loss
from seq2seq.training import resume, train

from conftest import run_cli as cli

ROOT = Path(__file__).resolve().parent.parent


def data_cfg(**over):
    base = {"path": "x.csv", "time_column": "time", "value_columns": ["y"], "input_len": 6, "horizon": 3,
            "valid_size": 5, "test_size": 7}
    return ForecastConfig.model_validate({"task": "forecast", "data": {**base, **over}}).data


def ramp(n=60, ids=("a",)):
    """Series whose value is its position: a window's values name the steps it read."""
    return pd.DataFrame([{"id": i, "time": t, "y": float(t)} for i in ids for t in range(n)])


# ------------------------------------------------------------------------ reading


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_sorts_splits_ids_and_parses_dates(tmp_path):
    p = write(tmp_path, "id,time,y\nb,2020-01-08,3\na,2020-01-01,1\nb,2020-01-01,2\na,2020-01-08,4\n")
    series = read_series_csv(p, "time", ["y"], "id")
    assert [s.id for s in series] == ["b", "a"]
    assert series[0].values[:, 0].tolist() == [2.0, 3.0]             # sorted by time
    assert series[0].is_datetime and series[1].values[:, 0].tolist() == [1.0, 4.0]


@pytest.mark.parametrize("text, message", [
    ("time,y\n1,2\n2,abc\n", r"s.csv:3: column 'y': 'abc' is not a number"),
    ("time,y\n1,2\n2,\n3,4\n", r"s.csv:3: missing value in column 'y'"),
    ("time,y\n1,2\n1,3\n", r"s.csv:3: time '1' appears twice"),
    ("time,y\n2020-01-01,2\nsoon,3\n", r"s.csv:3: column 'time': 'soon' is neither a date nor a number"),
    ("date,y\n1,2\n", r"no column 'time' \(columns: date, y\)"),
])
def test_bad_csv_is_a_clear_error(tmp_path, text, message):
    with pytest.raises(Seq2SeqError, match=message):
        read_series_csv(write(tmp_path, text), "time", ["y"])


def test_missing_file_and_fill_policies(tmp_path):
    with pytest.raises(Seq2SeqError, match="no such file"):
        read_series_csv(tmp_path / "nope.csv", "time", ["y"])
    p = write(tmp_path, "time,y\n1,\n2,2\n3,\n4,\n5,8\n")
    inter = read_series_csv(p, "time", ["y"], missing="interpolate")[0].values[:, 0]
    assert inter.tolist() == [2.0, 2.0, 4.0, 6.0, 8.0]
    ffill = read_series_csv(p, "time", ["y"], missing="ffill")[0].values[:, 0]
    assert ffill.tolist() == [2.0, 2.0, 2.0, 2.0, 8.0]


# ------------------------------------------------------------------------ splits and windows


def steps(data, scaled, series):
    """The step positions a window of :func:`ramp` values holds (float32 scaling undone)."""
    x = data.unscale(scaled.double().numpy(), series)[..., 0]
    assert np.allclose(x, np.rint(x), atol=1e-3)
    return np.rint(x).astype(int)


def test_windows_never_read_the_future():
    cfg = data_cfg(stride=1)
    data = ForecastData(series_from_frame(ramp(60, ("a", "b")), "time", ["y"], "id"), cfg)
    p = data.items[0].points
    assert (p.valid, p.test, p.length) == (48, 53, 60)
    for part, lo, hi in [("train", 0, p.valid), ("valid", p.valid, p.test), ("test", p.test, p.length)]:
        w = data.windows(part)
        steps_in, steps_out = (steps(data, x, w.series) for x in (w.past, w.future))
        assert len(w) > 0
        assert np.array_equal(steps_out[:, 0], w.origins)              # targets start at the origin
        assert steps_out.min() >= lo and steps_out.max() <= hi - 1
        assert np.all(steps_in.max(1) < w.origins)                     # inputs strictly before it
        assert np.array_equal(steps_in[:, -1] + 1, w.origins)          # ... and right up to it
    train = data.windows("train")
    assert steps(data, train.past, train.series).max() < p.valid
    assert len(train) == 2 * (p.valid - cfg.horizon - cfg.input_len + 1)


def test_window_origins_bounds_and_stride():
    assert window_origins(0, 20, 6, 3, 1).tolist() == list(range(6, 18))
    assert window_origins(10, 20, 6, 3, 4).tolist() == [10, 14]
    assert window_origins(15, 20, 6, 6, 1).tolist() == []


def test_too_short_series_names_it():
    with pytest.raises(Seq2SeqError, match="series 'a'.*fewer than one window"):
        ForecastData(series_from_frame(ramp(15), "time", ["y"], "id"), data_cfg())


def test_scaling_uses_the_training_part_only_and_inverts_exactly():
    cfg = data_cfg()
    frame = ramp(60)
    before = ForecastData(series_from_frame(frame, "time", ["y"], "id"), cfg).items[0].scaler
    frame.loc[frame.time >= 48, "y"] = 1e6                              # change validation and test values
    after = ForecastData(series_from_frame(frame, "time", ["y"], "id"), cfg).items[0].scaler
    assert np.array_equal(before.mean, after.mean) and np.array_equal(before.std, after.std)
    assert before.mean[0] == pytest.approx(23.5)                        # mean of 0..47
    x = np.random.default_rng(0).normal(300, 50, (40, 3))
    s = Scaler.fit(x)
    assert np.allclose(s.inverse(s.transform(x)), x, rtol=0, atol=1e-12)
    assert np.allclose(s.transform(x).mean(0), 0) and np.allclose(s.transform(x).std(0), 1)


def test_calendar_and_future_times():
    weeks = np.array(["2001-12-15", "2001-12-22", "2001-12-29"], dtype="datetime64[ns]")
    assert future_times(weeks, 2).astype("datetime64[D]").astype(str).tolist() == ["2002-01-05", "2002-01-12"]
    months = np.array(["2010-10-01", "2010-11-01", "2010-12-01"], dtype="datetime64[ns]")
    assert future_times(months, 2).astype("datetime64[D]").astype(str).tolist() == ["2011-01-01", "2011-02-01"]
    assert future_times(np.array([2006.0, 2007.0, 2008.0]), 2).tolist() == [2009.0, 2010.0]
    feats = calendar_features(np.array(["2020-01-15", "2020-07-15"], dtype="datetime64[ns]"), ["month"])
    assert feats.shape == (2, 2)
    assert feats[0].tolist() == pytest.approx([0.0, 1.0]) and feats[1].tolist() == pytest.approx([0.0, -1.0], abs=1e-6)
    with pytest.raises(Seq2SeqError, match="needs dates"):
        calendar_features(np.array([1.0, 2.0]), ["month"])


# ------------------------------------------------------------------------ metrics and baselines


def test_metrics_match_hand_computed_values():
    y = np.array([[[1.0], [2.0], [4.0]]])
    f = np.array([[[2.0], [2.0], [1.0]]])
    assert mae(y, f) == pytest.approx(4 / 3)
    assert rmse(y, f) == pytest.approx(np.sqrt(10 / 3))
    assert smape(y, f) == pytest.approx(100 / 3 * (2 / 3 + 0 + 6 / 5))
    train = np.array([[1.0], [3.0], [2.0], [6.0]])                     # |3-1|, |2-3|, |6-2| -> 7/3 (m=1)
    assert seasonal_scale(train, 1)[0] == pytest.approx(7 / 3)
    assert seasonal_scale(train, 2)[0] == pytest.approx((1 + 3) / 2)
    assert mase(y, f, np.array([[7 / 3]])) == pytest.approx((4 / 3) / (7 / 3))
    assert smape(np.zeros((1, 2, 1)), np.zeros((1, 2, 1))) == 0.0
    assert coverage(y, y - 1, y + 0.5) == 100.0 and coverage(y, f, f) == pytest.approx(100 / 3)
    q = np.stack([f - 1, f, f + 1], -1)                                 # levels 0.1, 0.5, 0.9
    expected = np.mean([max(t * (a - b), (t - 1) * (a - b)) for a, fb in zip([1, 2, 4], [2, 2, 1])
                        for t, b in zip([0.1, 0.5, 0.9], [fb - 1, fb, fb + 1])])
    assert pinball(y, q, [0.1, 0.5, 0.9]) == pytest.approx(expected)
    loss = regression_loss(torch.tensor(q), torch.tensor(y), "mse", [0.1, 0.5, 0.9])
    assert float(loss) == pytest.approx(expected)


def test_naive_and_seasonal_naive():
    h = np.arange(10.0)[:, None]
    assert naive(h, 3, 1)[:, 0].tolist() == [9, 9, 9]
    assert seasonal_naive(h, 6, 4)[:, 0].tolist() == [6, 7, 8, 9, 6, 7]


# ------------------------------------------------------------------------ model


def model_cfg(**over):
    base = {"encoder": {"cell": "gru", "input_size": 8, "hidden_size": 16, "layers": 2},
            "decoder": {"cell": "gru", "input_size": 8, "hidden_size": 16, "layers": 2}}
    for key, value in over.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return ForecastModelConfig.model_validate(base)


@pytest.mark.parametrize("over", [{}, {"decoder": {"cell": "lstm", "attention": "bahdanau"},
                                        "encoder": {"cell": "lstm", "bidirectional": True}, "bridge": "projection"},
                                   {"decoder": {"attention": "luong_general", "hidden_size": 16}, "quantiles": [0.1, 0.9]},
                                   {"decoder": {"feed_previous_output": False}}])
def test_teacher_forced_pass_equals_the_step_loop(over):
    torch.manual_seed(0)
    model = ForecastModel(2, 2, model_cfg(**over)).eval()
    past, pcal = torch.randn(5, 12, 2), torch.randn(5, 12, 2)
    fcal, future = torch.randn(5, 4, 2), torch.randn(5, 4, 2)
    one_pass = model(past, pcal, fcal, future, teacher_forcing=1.0)
    loop = model(past, pcal, fcal, future, teacher_forcing=1.0 - 1e-12)   # per-step path, gold every step
    assert one_pass.shape == (5, 4, 2, len(model.quantiles))
    assert torch.allclose(one_pass, loop, atol=1e-5)
    free = model(past, pcal, fcal)
    assert free.shape == one_pass.shape and torch.isfinite(free).all()


def test_window_normalization_makes_forecasts_affine_equivariant():
    torch.manual_seed(0)
    model = ForecastModel(1, 0, model_cfg()).eval()
    past = torch.randn(3, 10, 1)
    none = torch.zeros(3, 10, 0)
    fcal = torch.zeros(3, 5, 0)
    base = model(past, none, fcal)
    moved = model(3.0 * past + 7.0, none, fcal)
    assert torch.allclose(moved, 3.0 * base + 7.0, atol=1e-4)


def test_forecast_config_errors(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("task: forecast\ndata:\n  path: x.csv\n  value_columns: [y]\n  input_len: 4\n  horizon: 2\n"
                 "  valid_size: 2\n  test_size: 2\n  horizn: 3\n")
    with pytest.raises(Seq2SeqError, match=r"f.yaml:9: unknown key 'data.horizn' \(did you mean 'horizon'\?\)"):
        load_config(p)
    raw = {"task": "forecast", "data": {"path": "x", "value_columns": ["y"], "input_len": 4, "horizon": 2,
                                        "valid_size": 2, "test_size": 2}, "training": {"max_steps": 1}}
    assert isinstance(config_from_dict(raw, schema=ForecastConfig), ForecastConfig)
    with pytest.raises(Seq2SeqError, match="unknown key 'training.label_smoothing'"):
        config_from_dict(raw, overrides=["training.label_smoothing=0.1"], schema=ForecastConfig)
    with pytest.raises(Seq2SeqError, match="test_size .* at least the horizon"):
        config_from_dict(raw, overrides=["data.test_size=1"], schema=ForecastConfig)


# ------------------------------------------------------------------------ learning and the CLI


def sine_config(tmp_path, csv, **training):
    raw = yaml_config(csv)
    raw["training"].update(training)
    return config_from_dict(raw, schema=ForecastConfig)


def yaml_config(csv):
    return {"task": "forecast", "name": "sine", "seed": 1,
            "data": {"path": str(csv), "time_column": "time", "id_column": "id", "value_columns": ["sin", "cos"],
                     "input_len": 20, "horizon": 10, "stride": 2, "valid_size": 40, "test_size": 40, "season": 40},
            "model": {"encoder": {"cell": "gru", "input_size": 16, "hidden_size": 32, "layers": 2},
                      "decoder": {"cell": "gru", "input_size": 16, "hidden_size": 32, "layers": 2},
                      "window_normalization": False},
            "training": {"learning_rate": 0.01, "max_steps": 400, "validate_every": 200, "log_every": 100,
                         "progress_bar": False, "num_threads": 1},
            "evaluation": {"origin_stride": 5, "baselines": ["naive", "seasonal_naive"]}}


@pytest.mark.slow
@pytest.mark.parametrize("teacher_forcing", [{}, {"schedule": "linear", "start": 1.0, "end": 0.5, "steps": 300}])
def test_a_tiny_model_learns_a_noiseless_sine(tmp_path, teacher_forcing):
    """With teacher forcing, and with scheduled sampling down to eps = 0.5."""
    from seq2seq.forecast.api import Forecaster

    csv = tmp_path / "sine.csv"
    sine_csv(csv, series=10, length=300, seed=3)
    run = train(sine_config(tmp_path, csv, teacher_forcing=teacher_forcing), tmp_path / "run")
    report = Forecaster.load(run).evaluate()
    variance = 0.5                                                   # of sin / cos over whole periods
    assert report["model"]["rmse"] ** 2 < 0.02 * variance
    assert report["model"]["mae"] < 0.2 * report["naive"]["mae"]
    assert (run / "curves.png").exists() and (run / "checkpoints" / "best.safetensors").exists()


def test_forecast_run_interrupted_between_checkpoints_resumes_bit_identical(tmp_path, monkeypatch):
    """Ctrl-C at step 27 (last checkpoint at 20), then --resume to 40, equals 40 steps straight:
    weights, optimizer moments and the log; with scheduled sampling, dropout, accumulation."""
    from seq2seq.checkpoint import load_checkpoint
    from seq2seq.training import Trainer

    csv = tmp_path / "sine.csv"
    sine_csv(csv, series=4, length=120, seed=3)
    over = dict(max_steps=40, validate_every=10, log_every=5, batch_size=8, accumulate_batches=2,
                teacher_forcing={"schedule": "linear", "start": 1.0, "end": 0.3, "steps": 40})

    def config():
        cfg = sine_config(tmp_path, csv, **over)
        cfg.data.valid_size, cfg.data.test_size, cfg.data.horizon, cfg.data.input_len = 10, 10, 5, 10
        cfg.model.decoder.dropout = cfg.model.encoder.dropout = 0.2
        return cfg

    torch.manual_seed(0)
    train(config(), tmp_path / "straight")
    step = Trainer.train_step

    def interrupt_at_27(self, batches):
        if self.state.step == 27:
            raise KeyboardInterrupt
        return step(self, batches)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_27)
    with pytest.raises(KeyboardInterrupt):
        train(config(), tmp_path / "split")
    monkeypatch.setattr(Trainer, "train_step", step)
    assert json.loads((tmp_path / "split" / "checkpoints" / "last.json").read_text())["step"] == 20
    torch.manual_seed(99)                              # resume must not depend on the caller's RNG
    resume(tmp_path / "split")
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last")
    b, meta = load_checkpoint(tmp_path / "split" / "checkpoints" / "last")
    assert meta["step"] == 40 and any(k.startswith("optimizer.") for k in a)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [[{k: v for k, v in json.loads(r).items() if k not in ("values_per_s", "elapsed_s")}
             for r in (run / "metrics.jsonl").read_text().splitlines()] for run in (tmp_path / "straight",
                                                                                  tmp_path / "split")]
    assert rows[0] == rows[1] and any("teacher_forcing" in r for r in rows[0])


def test_cli_data_train_evaluate_predict(tmp_path):
    import yaml

    r = cli("data", "sine", "--out", tmp_path / "sine.csv", "--series", 4, "--length", 120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    raw = yaml_config(tmp_path / "sine.csv")
    raw["training"].update(max_steps=20, validate_every=10)
    raw["model"]["quantiles"] = [0.1, 0.9]
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(raw))
    r = cli("train", tmp_path / "f.yaml", "--run", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cli("evaluate", tmp_path / "run", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert set(report) >= {"model", "naive", "seasonal_naive", "origins"}
    assert report["origins"] == 4 * 7 and 0.0 <= report["model"]["coverage"] <= 100.0
    r = cli("predict", tmp_path / "run", "--data", tmp_path / "sine.csv", "--holdout", "--horizon", 15,
            "--out", tmp_path / "fc.csv", "--plot", tmp_path / "fc.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    fc = pd.read_csv(tmp_path / "fc.csv")
    assert list(fc.columns) == ["id", "time", "sin", "sin_q0.1", "sin_q0.5", "sin_q0.9", "cos", "cos_q0.1",
                                "cos_q0.5", "cos_q0.9"]
    assert len(fc) == 4 * 15 and fc.time.tolist()[:2] == [105, 106]   # 120 steps, last 15 held out
    assert (tmp_path / "fc.png").stat().st_size > 1000
    r = cli("predict", tmp_path / "run", cwd=tmp_path)
    assert r.returncode == 2 and "needs --data" in r.stderr
    r = cli("train", "--resume", tmp_path / "run", "--set", "training.max_steps=30", cwd=tmp_path)
    assert r.returncode == 0 and "from step 20" in r.stderr, r.stderr
    assert json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())["step"] == 30
    bad = tmp_path / "bad.csv"
    bad.write_text("id,time,sin,cos\na,1,0.5,x\n")
    r = cli("predict", tmp_path / "run", "--data", bad, cwd=tmp_path)
    assert r.returncode == 2 and "bad.csv:2: column 'cos': 'x' is not a number" in r.stderr


def test_statsmodels_datasets_have_a_time_axis(tmp_path):
    from seq2seq.forecast.builtin_series import statsmodels_frame

    co2 = statsmodels_frame("co2")
    assert list(co2.columns) == ["time", "co2"] and co2.time.iloc[0] == "1958-03-29"
    elnino = statsmodels_frame("elnino")
    assert len(elnino) == 61 * 12 and elnino.time.iloc[13] == "1951-02-01"
    assert statsmodels_frame("sunspots").time.iloc[-1] == 2008
    with pytest.raises(Seq2SeqError, match="no dataset 'nope'"):
        statsmodels_frame("nope")


def test_predict_from_a_frame_or_a_csv_continues_the_calendar(tmp_path):
    """Dates in a DataFrame (datetime64) and in a CSV (text) give the same forecast,
    and the forecast times continue the monthly axis."""
    from seq2seq.forecast.api import Forecaster

    times = pd.date_range("2000-01-01", periods=90, freq="MS")
    frame = pd.DataFrame({"time": times, "y": np.sin(np.arange(90) * 2 * np.pi / 12) + 10})
    csv = tmp_path / "m.csv"
    frame.to_csv(csv, index=False)
    raw = {"task": "forecast", "data": {"path": str(csv), "value_columns": ["y"], "input_len": 12, "horizon": 6,
                                        "valid_size": 12, "test_size": 12, "calendar": ["month"], "season": 12},
           "training": {"max_steps": 5, "validate_every": 5, "progress_bar": False}}
    run = train(config_from_dict(raw, schema=ForecastConfig), tmp_path / "run")
    f = Forecaster.load(run)
    a, b = f.predict(frame, horizon=8), f.predict(csv, horizon=8)
    assert a.time.dt.strftime("%Y-%m-%d").tolist()[:2] == ["2007-07-01", "2007-08-01"]
    assert np.allclose(a.y, b.y) and len(a) == 8
    with pytest.raises(Seq2SeqError, match="history has 5 steps; the model reads input_len = 12"):
        f.predict(frame.iloc[:5])
