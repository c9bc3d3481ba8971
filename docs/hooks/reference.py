"""MkDocs hook: the Reference pages are generated from the code when the site is built.

A page that holds the line ``<!-- reference:config -->`` gets every config key of every task
schema (:data:`seq2seq.config.SCHEMAS`: key, type, default, allowed range, the field's
``description``); one that holds ``<!-- reference:cli -->`` gets every ``seq2seq`` command and
its options from the argparse parser that the command itself uses. Nothing is copied by hand,
so the pages cannot drift from the code (``tests/test_docs.py`` changes a description and
checks the page).
"""

from __future__ import annotations

import argparse
import typing
from typing import Any, Iterator

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

CONFIG_MARK = "<!-- reference:config -->"
CLI_MARK = "<!-- reference:cli -->"


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The section class a field holds (directly or as ``Optional[...]``), else None."""
    for t in (annotation, *typing.get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: ``int``, ``int or null``, ``"a" | "b"``, ``list of float``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple, set):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {type_name(args[0])} to {type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type):
        return "section" if issubclass(annotation, BaseModel) else annotation.__name__
    return str(annotation).replace("typing.", "")


def value_range(field: Any) -> str:
    """The numeric bounds pydantic enforces on a field (``Field(ge=..., lt=...)``) as ``0 <= x < 1``."""
    low = high = ""
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"{m.ge} <= "
        elif isinstance(m, annotated_types.Gt):
            low = f"{m.gt} < "
        elif isinstance(m, annotated_types.Le):
            high = f" <= {m.le}"
        elif isinstance(m, annotated_types.Lt):
            high = f" < {m.lt}"
        elif isinstance(m, annotated_types.MinLen):
            low = f"at least {m.min_length} items"
    return f"{low}x{high}" if (low.endswith(" ") or high) else low


def default_text(field: Any) -> str:
    """The default as YAML would spell it; ``required`` when there is none."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default is PydanticUndefined else field.default
    if isinstance(value, BaseModel):
        return ""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value!r}`".replace("'", '"')


def _sections(schema: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted key, section class) for the schema and every section below it, depth first."""
    yield prefix, schema
    for name, field in schema.model_fields.items():
        sub = _section_type(field.annotation)
        if sub is not None:
            yield from _sections(sub, f"{prefix}{name}.")


def config_reference(schemas: dict[str, type[BaseModel]]) -> str:
    """Markdown: one table per section of each task schema (key, type, default, range, description)."""
    out = []
    for task, schema in schemas.items():
        out.append(f"## `task: {task}`\n\n{_cell((schema.__doc__ or '').strip().split(chr(10))[0])}\n")
        for prefix, section in _sections(schema):
            rows = [(name, f) for name, f in section.model_fields.items() if _section_type(f.annotation) is None]
            if not rows:
                continue
            title = prefix.rstrip(".") or "top level"
            summary = (section.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            out.append(f"### {task}: `{title}`\n\n{summary}\n")
            out.append("| key | type | default | range | description |\n|---|---|---|---|---|")
            for name, f in rows:
                out.append(f"| `{prefix}{name}` | {type_name(f.annotation)} | {default_text(f)} | "
                           f"{value_range(f)} | {_cell(f.description or '')} |")
            out.append("")
    return "\n".join(out)


def _commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(command line, help, parser) for the parser and every sub-command below it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, "", parser
    for action in subs:
        helps = {c.dest: c.help for c in action._choices_actions}
        for name, sub in action.choices.items():
            for line, h, p in _commands(sub, f"{path} {name}"):
                yield line, h or helps.get(name, ""), p


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """Markdown: every command with its usage line and a table of its arguments."""
    out = []
    for line, help_text, p in _commands(parser, parser.prog):
        out.append(f"## `{line}`\n\n{_cell(help_text)}\n")
        usage = p.format_usage().removeprefix("usage: ").strip()
        out.append(f"```text\n{usage}\n```\n")
        out.append("| argument | default | description |\n|---|---|---|")
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.metavar or a.dest}`"
            default = "" if a.default in (None, False, argparse.SUPPRESS) or not a.option_strings else f"`{a.default}`"
            if a.choices and not isinstance(a, argparse._SubParsersAction):
                flags += " (" + ", ".join(f"`{c}`" for c in a.choices) + ")"
            out.append(f"| {flags} | {_cell(default)} | {_cell(a.help or '')} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs' page hook: expand the reference marks (the code is imported at build time)."""
    if CONFIG_MARK in markdown:
        from seq2seq.config import SCHEMAS

        markdown = markdown.replace(CONFIG_MARK, config_reference(SCHEMAS))
    if CLI_MARK in markdown:
        from seq2seq.cli import _parser

        markdown = markdown.replace(CLI_MARK, cli_reference(_parser()))
    return markdown
