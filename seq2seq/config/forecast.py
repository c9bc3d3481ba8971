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

    path: str
    time_column: str = "time"
    value_columns: list[str] = Field(..., min_length=1)
    id_column: Optional[str] = None
    input_len: int = Field(..., ge=1)
    horizon: int = Field(..., ge=1)
    stride: int = Field(1, ge=1)
    valid_size: int = Field(..., ge=0)
    test_size: int = Field(..., ge=1)
    missing: Literal["error", "interpolate", "ffill"] = "error"
    scaling: Literal["standard", "none"] = "standard"
    calendar: list[Literal["month", "week", "dayofweek", "dayofyear", "hour"]] = []
    season: int = Field(1, ge=1)

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

    cell: Cell = "gru"
    input_size: int = Field(32, ge=1)
    hidden_size: int = Field(64, ge=1)
    layers: int = Field(2, ge=1)
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class ForecastDecoderConfig(Section):
    """RNN decoder that generates the horizon one step at a time.

    Its input at step t is a projection of the previous value y_{t-1} (when
    ``feed_previous_output``) and the calendar features of step t. ``attention``
    (Luong et al. 2015: scored with the new state, ``o_t = tanh(W[h_t; c_t])``; all
    score functions of the text decoder) lets it read every encoder state.
    Without ``feed_previous_output`` the decoder reads calendar features only (or a
    constant) and the whole horizon is computed in one pass, also at inference.
    """

    cell: Cell = "gru"
    input_size: int = Field(32, ge=1)
    hidden_size: int = Field(64, ge=1)
    layers: int = Field(2, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    attention: AttentionType = "none"
    attention_size: Optional[int] = Field(None, ge=1)
    feed_previous_output: bool = True


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

    encoder: ForecastEncoderConfig = ForecastEncoderConfig()
    decoder: ForecastDecoderConfig = ForecastDecoderConfig()
    bridge: Literal["none", "last", "projection"] = "last"
    window_normalization: bool = True
    quantiles: list[float] = []

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

    loss: Literal["mse", "mae", "huber"] = "mse"
    huber_delta: float = Field(1.0, gt=0)
    early_stopping_metric: Literal["loss", "mae", "rmse", "smape", "mase"] = "mae"
    validate_every: int = Field(200, ge=1)
    log_every: int = Field(50, ge=1)


class ForecastEvaluationConfig(Section):
    """Rolling-origin evaluation on the test part of each series.

    Forecast origins start at the first test step and move by ``origin_stride``
    steps while a whole horizon fits; every origin forecasts ``data.horizon`` steps
    from all values before it.  ``baselines`` are scored on the same origins.
    """

    origin_stride: int = Field(1, ge=1)
    baselines: list[Literal["naive", "seasonal_naive", "ets", "theta"]] = ["naive", "seasonal_naive", "ets", "theta"]


class ForecastConfig(Section):
    """A whole forecasting run."""

    task: Literal["forecast"]
    name: str = "forecast"
    seed: int = 1
    data: ForecastDataConfig
    model: ForecastModelConfig = ForecastModelConfig()
    training: ForecastTrainingConfig = ForecastTrainingConfig(max_steps=2000)
    evaluation: ForecastEvaluationConfig = ForecastEvaluationConfig()
