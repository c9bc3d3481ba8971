"""The schema of a forecasting run (``task: forecast``); ``configs/forecast_co2.yaml``
is its commented reference.  Same sections and loading rules as a text config
(:mod:`seq2seq.config.base`), the shared ``training`` keys
(:class:`~seq2seq.config.training.TrainingConfig`) plus the regression loss."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from seq2seq.config.base import AttentionType, Cell, Section
from seq2seq.config.training import TrainingConfig

CALENDAR_FEATURES = ("month", "week", "dayofweek", "dayofyear", "hour")


class ForecastDataConfig(Section):
    """A CSV of one or more time series and how it becomes training windows.

    The CSV has a time column (dates, or numbers such as years), one or more value
    columns, and, for several series, an id column.  Each series is split by time:
    its last ``test_size`` steps are the test part, the ``valid_size`` steps before
    them the validation part, the rest the training part.  A window is
    ``input_len`` past steps and the ``horizon`` steps that follow; training windows
    end inside the training part, so no validation or test value is ever a training
    target or input.  ``stride``: steps between training windows.

    ``missing``: what to do with empty or NaN values: ``error`` (name the row),
    ``interpolate`` (linear in position), ``ffill`` (carry the last value forward).
    ``scaling``: ``standard`` (per series and column, mean and standard deviation of
    the training part only) or ``none``; forecasts are scaled back.
    ``calendar``: known-future covariates computed from the time column (sin/cos of
    month, week of year, ...), fed to the encoder and the decoder.
    ``season``: the seasonal period m in steps (52 for weekly data with a yearly
    cycle, 12 for monthly), used by MASE, seasonal naive, ETS and Theta.
    """

    path: str = Field(..., description="the CSV: a time column, value columns, optionally an id column")
    time_column: str = Field("time", description="column of dates (any format pandas parses) or numbers")
    value_columns: list[str] = Field(..., min_length=1, description="numeric columns, forecast jointly")
    id_column: Optional[str] = Field(None, description="column naming the series of a multi-series CSV; "
                                                       "None = one series")
    input_len: int = Field(..., ge=1, description="past steps the encoder reads per window")
    horizon: int = Field(..., ge=1, description="steps forecast from each origin")
    stride: int = Field(1, ge=1, description="steps between consecutive training (and validation) windows")
    valid_size: int = Field(..., ge=0, description="steps before the test part used for validation; "
                                                   "0 = no validation")
    test_size: int = Field(..., ge=1, description="last steps of each series, held out for rolling-origin "
                                                  "evaluation")
    missing: Literal["error", "interpolate", "ffill"] = Field(
        "error", description="empty or NaN values: error (names the row), interpolate (linear) or ffill")
    scaling: Literal["standard", "none"] = Field(
        "standard", description="standard: per series and column, mean and std of the training part; none")
    calendar: list[Literal["month", "week", "dayofweek", "dayofyear", "hour"]] = Field(
        default_factory=list, description="known-future covariates (sin/cos) from the time column; [] = none")
    season: int = Field(1, ge=1, description="seasonal period m in steps (MASE, seasonal naive, ETS, Theta); "
                                             "1 = none")

    @model_validator(mode="after")
    def _check(self) -> "ForecastDataConfig":
        if self.test_size < self.horizon:
            raise ValueError(f"test_size ({self.test_size}) must be at least the horizon ({self.horizon})")
        if 0 < self.valid_size < self.horizon:
            raise ValueError(f"valid_size ({self.valid_size}) must be 0 or at least the horizon ({self.horizon})")
        if self.time_column in self.value_columns or self.id_column in self.value_columns:
            raise ValueError("value_columns must not include the time or id column")
        return self


class ForecastEncoderConfig(Section):
    """Linear input projection (in place of an embedding) + RNN over the past window.

    ``input_size`` is the projection's width E: each step's values and calendar
    features become an E-vector, read by the RNN as token embeddings are in text tasks.
    """

    cell: Cell = Field("gru", description="rnn, gru or lstm")
    input_size: int = Field(32, ge=1, description="width E of the linear input projection (the embedding of "
                                                  "text tasks)")
    hidden_size: int = Field(64, ge=1, description="units per layer (per direction)")
    layers: int = Field(2, ge=1, description="stacked RNN layers")
    bidirectional: bool = Field(False, description="read the past window both ways, concatenating the states")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability on inputs, between layers and "
                                                            "on outputs")


class ForecastDecoderConfig(Section):
    """RNN decoder that generates the horizon one step at a time.

    Its input at step t is a projection of the previous value y_{t-1} (when
    ``feed_previous_output``) and the calendar features of step t. ``attention``
    (Luong et al. 2015: scored with the new state, ``o_t = tanh(W[h_t; c_t])``; all
    score functions of the text decoder) lets it read every encoder state.
    Without ``feed_previous_output`` the decoder reads calendar features only (or a
    constant) and the whole horizon is computed in one pass, also at inference.
    """

    cell: Cell = Field("gru", description="rnn, gru or lstm")
    input_size: int = Field(32, ge=1, description="width of the linear projection of each step's input")
    hidden_size: int = Field(64, ge=1, description="units per layer")
    layers: int = Field(2, ge=1, description="stacked RNN layers")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability between layers and on outputs")
    attention: AttentionType = Field("none", description="score function of attention over the encoder states, "
                                                         "after the cell; none = off")
    attention_size: Optional[int] = Field(None, ge=1, description="hidden size of additive scorers (bahdanau, "
                                                                  "luong_concat); None = hidden_size")
    feed_previous_output: bool = Field(True, description="read y_{t-1} (autoregressive); false: calendar "
                                                         "features only, one pass")


class ForecastModelConfig(Section):
    """Encoder, bridge and decoder of a forecasting seq2seq (as in the seed notebook:
    a 2-layer GRU reading the past and generating the future).

    ``bridge``: how the encoder's final state starts the decoder (see
    :mod:`seq2seq.modules.bridge`). ``window_normalization``: each window is
    shifted by its own last observed value and divided by its own standard deviation
    before the network sees it, and the forecast is mapped back (a level-free model,
    so trending series such as co2 stay in the range seen in training).
    ``quantiles``: predict these quantiles (pinball loss) instead of one value; the
    point forecast is the median (0.5 is added when missing) and the outermost two
    give the prediction interval.
    """

    encoder: ForecastEncoderConfig = Field(default_factory=ForecastEncoderConfig,
                                           description="the RNN over the past window")
    decoder: ForecastDecoderConfig = Field(default_factory=ForecastDecoderConfig,
                                           description="the RNN that generates the horizon")
    bridge: Literal["none", "last", "projection"] = Field(
        "last", description="decoder start state: none (zeros), last (final encoder state) or projection")
    window_normalization: bool = Field(True, description="each window minus its last value, over its std "
                                                         "(forecasts mapped back)")
    quantiles: list[float] = Field(default_factory=list, description="quantile levels in (0, 1), pinball loss "
                                                                     "(0.5 added); [] = one point forecast")

    @field_validator("quantiles")
    @classmethod
    def _levels(cls, levels: list[float]) -> list[float]:
        if any(not 0.0 < q < 1.0 for q in levels):
            raise ValueError("quantiles must lie strictly between 0 and 1")
        return sorted(set(levels) | {0.5}) if levels else []


class ForecastTrainingConfig(TrainingConfig):
    """Optimisation as for text tasks (optimizer, L2 ``weight_decay`` = the seed's
    ``lambda_l2_reg``, clipping, schedules, limits, teacher forcing / scheduled
    sampling on the decoder inputs), with a regression loss.

    ``batch_size`` counts windows.
    ``loss``: ``mse`` (the seed's L2 loss), ``mae`` or ``huber`` (``huber_delta`` in
    scaled units); with ``model.quantiles`` the loss is the pinball loss
    (Koenker & Bassett 1978), averaged over quantiles.
    ``early_stopping_metric``: ``loss`` or a validation forecast error.
    Scheduled sampling feeds the model's own previous forecast (the median with
    quantiles) in place of the true value at rate 1 - eps_i.
    """

    loss: Literal["mse", "mae", "huber"] = Field("mse", description="mse, mae or huber; with model.quantiles "
                                                                    "the pinball loss")
    huber_delta: float = Field(1.0, gt=0, description="huber: the threshold, in scaled units")
    early_stopping_metric: Literal["loss", "mae", "rmse", "smape", "mase"] = Field(
        "mae", description="picks the best checkpoint, drives patience and plateau: loss or a forecast error")
    validate_every: int = Field(200, ge=1, description="updates between validations")
    log_every: int = Field(50, ge=1, description="updates between training log lines (metrics.jsonl rows)")


class ForecastEvaluationConfig(Section):
    """Rolling-origin evaluation on the test part of each series.

    Forecast origins start at the first test step and move by ``origin_stride``
    steps while a whole horizon fits; every origin forecasts ``data.horizon`` steps
    from all values before it.  ``baselines`` are scored on the same origins.
    """

    origin_stride: int = Field(1, ge=1, description="steps between rolling forecast origins in the test part")
    baselines: list[Literal["naive", "seasonal_naive", "ets", "theta"]] = Field(
        ["naive", "seasonal_naive", "ets", "theta"], description="baselines scored on the same origins")


class ForecastConfig(Section):
    """A whole forecasting run."""

    task: Literal["forecast"] = Field(..., description="the schema: forecast (required)")
    name: str = Field("forecast", description="run name; the default run directory is runs/<name>")
    seed: int = Field(1, description="seeds weights, dropout and the data order")
    data: ForecastDataConfig = Field(..., description="the CSV of series and how it becomes windows")
    model: ForecastModelConfig = Field(default_factory=ForecastModelConfig, description="encoder, bridge and decoder")
    training: ForecastTrainingConfig = Field(ForecastTrainingConfig(max_steps=2000),
                                             description="optimisation, limits, validation and checkpoints")
    evaluation: ForecastEvaluationConfig = Field(default_factory=ForecastEvaluationConfig,
                                                 description="rolling-origin evaluation on the test part")
