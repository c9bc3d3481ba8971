"""What every config schema shares: strict sections, YAML loading with line numbers,
``--set`` overrides and error messages that name the file, line and key.

A misspelled key fails loudly with its dotted path, its line and the nearest valid key::

    configs/x.yaml:14: unknown key 'model.decoder.atention' (did you mean 'attention'?)

Overrides use dotted paths and YAML values: ``--set training.max_steps=2000 model.decoder.attention=luong_dot``
(or one ``--set`` per item).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from seq2seq.errors import Seq2SeqError

Cell = Literal["rnn", "gru", "lstm"]
AttentionType = Literal["none", "bahdanau", "luong_dot", "luong_general", "luong_concat"]


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _key_lines(text: str) -> dict[tuple, int]:
    """Map each dotted key path of a YAML mapping to its 1-based line number."""
    lines: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value,)
                lines[p] = k.start_mark.line + 1
                walk(v, p)

    try:
        walk(yaml.compose(text), ())
    except yaml.YAMLError:
        pass
    return lines


def _section_model(loc: tuple, root: type[BaseModel]) -> Optional[type[BaseModel]]:
    model: Any = root
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def format_errors(err: ValidationError, source: str, lines: dict[tuple, int], root: type[BaseModel]) -> str:
    """One message for all of a validation's errors: ``source:line: 'dotted.key': problem (got value)``,
    with the nearest valid key for an unknown one."""
    msgs = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if isinstance(p, str))
        dotted = ".".join(loc)
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        where = f"{source}:{line}" if line else source
        if e["type"] == "extra_forbidden":
            section = _section_model(loc[:-1], root)
            hint = ""
            if section is not None:
                close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1, cutoff=0.5)
                hint = (f" (did you mean '{close[0]}'?)" if close
                        else f" (valid keys: {', '.join(section.model_fields)})")
            msgs.append(f"{where}: unknown key '{dotted}'{hint}")
        elif e["type"] == "missing":
            msgs.append(f"{where}: missing required key '{dotted}'")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            msgs.append(f"{where}: '{dotted}': {msg} (got {e.get('input')!r})" if dotted else f"{where}: {msg}")
    return "; ".join(msgs)


def parse_overrides(items: list[str]) -> list[tuple[list[str], Any]]:
    """Parse ``--set`` items ``a.b.c=value`` (value read as YAML) into (path, value).

    Raises:
        Seq2SeqError: an item without ``=`` or with an empty key.
    """
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Seq2SeqError(f"--set {item!r}: expected KEY=VALUE, e.g. training.max_steps=1000")
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        out.append((key.strip().split("."), parsed))
    return out


def apply_overrides(raw: dict, overrides: list[tuple[list[str], Any]]) -> dict:
    """Set each dotted path in the raw (unvalidated) config dict, in order; returns ``raw``."""
    for path, value in overrides:
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return raw


def validate_config(raw: Any, schema: type[BaseModel], source: str = "config", text: str = "",
                    overrides: Optional[list[str]] = None) -> Any:
    """Validate a raw config mapping against ``schema`` after applying ``--set`` items.

    Raises:
        Seq2SeqError: naming the file, line and dotted key of each problem.
    """
    if not isinstance(raw, dict):
        raise Seq2SeqError(f"{source}: a config must be a YAML mapping of sections (data, model, training, ...)")
    parsed = parse_overrides(overrides or [])
    apply_overrides(raw, parsed)
    try:
        return schema.model_validate(raw)
    except ValidationError as err:
        msg = format_errors(err, source, _key_lines(text), schema)
        overridden = {tuple(p) for p, _ in parsed}
        if any(tuple(e["loc"][:len(p)]) in overridden for e in err.errors() for p in overridden):
            msg += " (check the --set overrides)"
        raise Seq2SeqError(msg) from None


BUILTIN_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def builtin_config_names() -> list[str]:
    """The configs shipped inside the package (``seq2seq/configs/``; ``configs/`` in a checkout),
    by name: ``g2p_cmudict``, ``presets/cho2014``, ..."""
    return sorted(str(p.relative_to(BUILTIN_CONFIGS).with_suffix("")) for p in BUILTIN_CONFIGS.rglob("*.yaml"))


def builtin_config(path: str | Path) -> Optional[Path]:
    """The shipped config that ``path`` names, or None.

    ``g2p_cmudict``, ``g2p_cmudict.yaml``, ``configs/g2p_cmudict.yaml`` and ``presets/cho2014``
    all resolve, so the documented commands work after ``pip install seq2seq`` from any folder
    (a file that exists at ``path`` always wins: :func:`read_yaml` looks here only when it does not).
    """
    parts = Path(path).parts
    if parts[:1] == ("configs",):
        parts = parts[1:]
    if not parts or ".." in parts or Path(path).is_absolute():
        return None
    candidate = BUILTIN_CONFIGS.joinpath(*parts)
    if candidate.suffix != ".yaml":
        candidate = candidate.with_name(candidate.name + ".yaml")
    return candidate if candidate.is_file() else None


def read_yaml(path: str | Path) -> tuple[Any, str]:
    """The parsed YAML of a config file and its text (for line numbers).

    A ``path`` that does not exist but names a shipped config (:func:`builtin_config`) reads that one.

    Raises:
        Seq2SeqError: missing or unreadable file, YAML syntax error (with its line).
    """
    path = Path(path)
    if not path.exists():
        path = builtin_config(path) or path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        names = ", ".join(builtin_config_names())
        raise Seq2SeqError(f"{path}: config file not found (built-in configs, usable by name from any "
                           f"folder: {names})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Seq2SeqError(f"{path}: cannot read config: {e}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise Seq2SeqError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    return (raw if raw is not None else {}), text


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write the resolved config as YAML (every key, defaults included), atomically."""
    from seq2seq.checkpoint import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(), sort_keys=False))
