"""Typed configuration: one YAML file describes a run, validated against the schema
of its ``task`` (``text``, the default, or ``forecast``).

- :mod:`~seq2seq.config.base`: strict sections, YAML loading, ``--set``, file:line errors;
- :mod:`~seq2seq.config.training`: the ``training`` keys every task shares;
- :mod:`~seq2seq.config.decoding`: the decoding options, defined once;
- :mod:`~seq2seq.config.text`, :mod:`~seq2seq.config.forecast`: one schema per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from seq2seq.config.base import dump_config, read_yaml, validate_config
from seq2seq.config.decoding import DecodeOptions, DecodingConfig
from seq2seq.config.forecast import ForecastConfig, ForecastModelConfig
from seq2seq.config.text import (Config, DataConfig, DecoderConfig, DistillationConfig, EncoderConfig,
                                 EvaluationConfig, ModelConfig, TextTrainingConfig)
from seq2seq.config.training import DistributedConfig, TeacherForcingConfig, TrainingConfig
from seq2seq.errors import Seq2SeqError

SCHEMAS: dict[str, type[BaseModel]] = {"text": Config, "forecast": ForecastConfig}


def config_from_dict(raw: Any, source: str = "config", text: str = "", overrides: Optional[list[str]] = None,
                     schema: Optional[type[BaseModel]] = None) -> Any:
    """Validate a raw config mapping against ``schema`` (default: by its ``task`` key).

    Args:
        raw: the parsed YAML mapping.
        source: a file name for messages; text: the YAML text, for line numbers.
        overrides: ``--set`` items such as ``"training.max_steps=500"``, applied in order.

    Raises:
        Seq2SeqError: naming the file, line and dotted key of each problem, or a
            config of another task than ``schema``'s.
    """
    task = raw.get("task", "text") if isinstance(raw, dict) else "text"
    if not isinstance(task, str):
        raise Seq2SeqError(f"{source}: 'task' must be one of {', '.join(SCHEMAS)} (got {task!r})")
    if schema is None:
        if task not in SCHEMAS:
            raise Seq2SeqError(f"{source}: unknown task {task!r}; valid: {', '.join(SCHEMAS)}")
        schema = SCHEMAS[task]
    elif SCHEMAS.get(task, schema) is not schema:
        raise Seq2SeqError(f"{source}: a {task} config (task: {task}); this command needs a "
                           f"{next(k for k, v in SCHEMAS.items() if v is schema)} run")
    return validate_config(raw, schema, source, text, overrides)


def load_config(path: str | Path, overrides: Optional[list[str]] = None,
                schema: Optional[type[BaseModel]] = None) -> Any:
    """Read, override and validate a YAML config file.

    Returns:
        The validated :class:`Config` or :class:`ForecastConfig`, by the file's ``task``.

    Raises:
        Seq2SeqError: missing file, YAML syntax error (with line), or schema errors.
    """
    raw, text = read_yaml(path)
    return config_from_dict(raw, str(path), text, overrides, schema)


__all__ = ["Config", "DataConfig", "DecodeOptions", "DistillationConfig", "DistributedConfig", "DecoderConfig",
           "DecodingConfig", "EncoderConfig",
           "EvaluationConfig", "ForecastConfig", "ForecastModelConfig", "ModelConfig", "SCHEMAS",
           "TeacherForcingConfig", "TextTrainingConfig", "TrainingConfig", "config_from_dict", "dump_config",
           "load_config"]
