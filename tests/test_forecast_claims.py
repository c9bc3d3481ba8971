"""The forecast README's promises against peers and hand computations: ETS and Theta
are statsmodels' models at the rolling origins the README describes, quantile forecasts
are ordered, the reported interval coverage is the share of truths inside them, and
``seq2seq data statsmodels`` writes statsmodels' data."""

import numpy as np
import pandas as pd
import pytest
import torch

from seq2seq.config import config_from_dict

M, H, TEST, N = 12, 6, 24, 120          # season, horizon, test part, series length


@pytest.fixture(scope="module")
def seasonal_run(tmp_path_factory):
    """A tiny quantile model (10 updates) on one trending monthly-like series."""
    from seq2seq.training import train

    d = tmp_path_factory.mktemp("seasonal")
    rng = np.random.default_rng(0)
    t = np.arange(N)
    y = 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / M) + rng.normal(0, 0.3, N)
    pd.DataFrame({"time": t, "y": y}).to_csv(d / "s.csv", index=False)
    config = config_from_dict({
        "task": "forecast", "name": "s", "seed": 1,
        "data": {"path": str(d / "s.csv"), "time_column": "time", "value_columns": ["y"], "input_len": 24,
                 "horizon": H, "stride": 1, "valid_size": 12, "test_size": TEST, "season": M},
        "model": {"encoder": {"cell": "gru", "input_size": 8, "hidden_size": 8},
                  "decoder": {"cell": "gru", "input_size": 8, "hidden_size": 8}, "quantiles": [0.1, 0.9]},
        "training": {"max_steps": 10, "validate_every": 10, "progress_bar": False},
        "evaluation": {"origin_stride": H, "baselines": ["ets", "theta"]}})
    return train(config, d / "run"), y


def test_ets_and_theta_are_statsmodels_at_every_rolling_origin(seasonal_run):
    """Origins at the first test step and every origin_stride after it; each baseline fits
    the whole history before the origin: Holt-Winters with an additive damped trend and an
    additive season of period m, and the Theta method deseasonalised with period m."""
    import warnings

    from statsmodels.tsa.forecasting.theta import ThetaModel
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from seq2seq.forecast.api import Forecaster

    run, y = seasonal_run
    report = Forecaster.load(run).evaluate()
    origins = list(range(N - TEST, N - H + 1, H))
    assert report["origins"] == len(origins) == 4
    peers = {"ets": lambda h: ExponentialSmoothing(h, trend="add", damped_trend=True, seasonal="add",
                                                   seasonal_periods=M, initialization_method="estimated"
                                                   ).fit().forecast(H),
             "theta": lambda h: ThetaModel(h, period=M, deseasonalize=True).fit().forecast(H)}
    for name, fit in peers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            errors = np.concatenate([np.abs(np.asarray(fit(y[:o])) - y[o:o + H]) for o in origins])
        assert report[name]["mae"] == pytest.approx(errors.mean(), rel=1e-6), name
        assert report[name]["rmse"] == pytest.approx(np.sqrt((errors ** 2).mean()), rel=1e-6), name


def test_quantile_forecasts_are_ordered_and_coverage_counts_truths_inside(seasonal_run):
    from seq2seq.forecast.api import Forecaster

    run, y = seasonal_run
    f = Forecaster.load(run)
    report = f.evaluate()
    inside, errors = [], []
    for o in range(N - TEST, N - H + 1, H):
        fc = f.predict(pd.DataFrame({"time": np.arange(o), "y": y[:o]}), horizon=H)
        assert fc.time.tolist() == list(range(o, o + H))
        lo, mid, hi = fc["y_q0.1"].to_numpy(), fc["y_q0.5"].to_numpy(), fc["y_q0.9"].to_numpy()
        assert (lo <= mid).all() and (mid <= hi).all()
        assert np.array_equal(fc["y"].to_numpy(), mid)                  # the point forecast is the median
        inside += list((lo <= y[o:o + H]) & (y[o:o + H] <= hi))
        errors += list(np.abs(mid - y[o:o + H]))
    assert report["model"]["coverage"] == pytest.approx(100 * np.mean(inside))
    assert report["model"]["mae"] == pytest.approx(np.mean(errors), rel=1e-5)


def test_untrained_quantile_heads_are_rearranged_into_order():
    """Free-running forecasts sort the quantiles (an untrained head crosses them at random);
    the teacher-forced training pass leaves them raw for the pinball loss."""
    from seq2seq.config.forecast import ForecastModelConfig
    from seq2seq.forecast.model import ForecastModel

    torch.manual_seed(0)
    cfg = ForecastModelConfig.model_validate({"quantiles": [0.1, 0.25, 0.75, 0.9], "window_normalization": False,
                                              "encoder": {"hidden_size": 8}, "decoder": {"hidden_size": 8}})
    model = ForecastModel(2, 0, cfg).eval()
    past, cal = torch.randn(16, 5, 2), torch.zeros(16, 5, 0)
    out = model(past, cal, torch.zeros(16, 7, 0))
    assert out.shape == (16, 7, 2, 5)
    assert (out.diff(dim=-1) >= 0).all()
    raw = model(past, cal, torch.zeros(16, 7, 0), future=torch.randn(16, 7, 2))
    assert (raw.diff(dim=-1) < 0).any()                             # what the sort repairs


def test_data_statsmodels_writes_the_dataset(tmp_path):
    import statsmodels.api as sm

    from seq2seq.cli import main

    assert main(["data", "statsmodels", "--name", "nile", "--out", str(tmp_path / "nile.csv")]) == 0
    ours = pd.read_csv(tmp_path / "nile.csv")
    theirs = sm.datasets.nile.load_pandas().data
    value = [c for c in ours.columns if c != "time"]
    assert value == ["volume"]
    assert ours.volume.tolist() == theirs.volume.tolist()
    assert ours.time.tolist() == theirs.year.astype(int).tolist()
