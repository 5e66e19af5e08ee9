"""Checking a detector's YAML in place: each problem at the line of the node it is about.

`Checker` collects the problems of one file; `parse_params` reads its `params:` section and
`param_error` checks a value against a parameter's declared type, for the defaults here and
for the overrides of the inline tests (`forensics.detect.cases`). `load_bounded` is the one way
a detector's YAML (and `forensics detect --config`) is read: at most MAX_YAML_BYTES of text and
MAX_YAML_VALUES values once anchors and aliases are expanded, so an alias bomb ("billion laughs")
is one problem found in milliseconds, not gigabytes of memory.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from forensics.detect.model import PARAM_TYPES, STANDARD_PARAMS, Param, Problem
from forensics.times import is_time

PARAM_FIELDS = ("default", "type", "description")
MAX_YAML_BYTES = 1_000_000  # the largest shipped detector YAML is about 16 KB
MAX_YAML_VALUES = 100_000  # scalars, lists and mappings, each alias counted as what it repeats
# libyaml's parser where PyYAML has it (10x the pure-Python one; the same nodes, marks included)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTERVAL = re.compile(
    r"^\s*(\d+(\.\d+)?\s*(microsecond|millisecond|second|minute|hour|day|week|month|year)s?\s*)+$",
    re.IGNORECASE,
)


def node_line(node: yaml.Node | None) -> int:
    """1-based line where a YAML node starts."""
    if node is None or node.start_mark is None:
        return 1
    return int(node.start_mark.line) + 1


class YamlRefused(ValueError):
    """YAML too big to read: `line` is where the problem is (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load_bounded(text: str) -> tuple[yaml.Node, Any] | None:
    """The node and the data of a one-document YAML text (None when it is empty), read with
    yaml's safe loader within the size limits; YamlRefused past them, yaml.YAMLError if invalid."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise YamlRefused(1, f"{size:,} bytes; the limit is {MAX_YAML_BYTES:,}")
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return node, loader.construct_document(node)
    except RecursionError:
        raise YamlRefused(1, "nested too deeply") from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """YamlRefused if the document, aliases expanded, holds more than MAX_YAML_VALUES values or
    an alias inside the value it names (a cycle). Counted without expanding anything."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root: seeing one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_VALUES:
                raise YamlRefused(
                    node_line(node),
                    f"expands to more than {MAX_YAML_VALUES:,} values through anchors and"
                    " aliases (an alias bomb?)",
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlRefused(node_line(node), "an alias refers to the value that contains it")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


class Checker:
    """Problems of one YAML file, each placed at the node it is about."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.id_line = 1

    def add(self, where: yaml.Node | int | None, message: str, path: Path | None = None) -> None:
        line = where if isinstance(where, int) else node_line(where)
        self.problems.append(Problem(path or self.path, line, message))

    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """A mapping's (key node, value node) by key; a repeated key is a problem."""
        if not isinstance(node, yaml.MappingNode):
            self.add(node, f"{what} must be a mapping")
            return None
        fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.add(key, f"{what}: field names must be plain text")
                continue
            if key.value in fields:
                self.add(key, f"{what}: field {key.value!r} appears twice")
            fields[str(key.value)] = (key, value)
        return fields

    def unknown(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], known: tuple[str, ...], what: str
    ) -> None:
        for name, (key, _) in fields.items():
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(key, f"{what}: unknown field {name!r}{hint}")


def param_error(kind: str, value: Any) -> str | None:
    """Why `value` is not of parameter type `kind`, or None when it is."""
    ok: bool
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "timestamp":
        ok = isinstance(value, dt.datetime | dt.date | str) and is_time(value)
    else:  # interval
        ok = isinstance(value, str) and bool(_INTERVAL.match(value))
    if ok:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    example = {"timestamp": " (ISO 8601)", "interval": " (e.g. '6 hours')"}.get(kind, "")
    return f"{value!r} is not {article} {kind}{example}"


def parse_params(item: tuple[Any, yaml.Node | None], c: Checker) -> dict[str, Param]:
    """The `params:` section: name -> Param, for the entries without a problem."""
    value, node = item
    if node is None:
        return {}
    entries = c.mapping(node, "params")
    if entries is None:
        return {}
    params: dict[str, Param] = {}
    for name, (key, entry) in entries.items():
        what = f"params.{name}"
        if not _IDENTIFIER.match(name):
            c.add(
                key, f"{what}: a parameter name is letters, digits and _ (it is ${name} in the SQL)"
            )
            continue
        if name in STANDARD_PARAMS:
            c.add(key, f"{what}: {name!r} is a standard parameter, bound by the engine")
            continue
        fields = c.mapping(entry, what)
        if fields is None:
            continue
        c.unknown(fields, PARAM_FIELDS, what)
        missing = [f for f in PARAM_FIELDS if f not in fields]
        if missing:
            c.add(entry, f"{what}: missing {', '.join(repr(m) for m in missing)}")
            continue
        spec = value[name]
        kind = spec["type"]
        if kind not in PARAM_TYPES:
            c.add(
                fields["type"][1], f"{what}: type {kind!r} is not one of {', '.join(PARAM_TYPES)}"
            )
            continue
        error = param_error(kind, spec["default"])
        if error is not None:
            c.add(fields["default"][1], f"{what}: default {error}")
            continue
        if not isinstance(spec["description"], str):
            c.add(fields["description"][1], f"{what}: description must be a string")
            continue
        params[name] = Param(name, spec["default"], kind, spec["description"])
    return params
