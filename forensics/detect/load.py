"""Finding and loading detectors: every `.sql` + `.yml` pair in `queries/` and the user's
`--rules` folders, with every problem reported as `path:line: message` before anything runs.

Discovery and the detector's own fields are here; the `params:` section and the YAML checker are
in `forensics.detect.yamlcheck`, the `tests:` section in `forensics.detect.cases`, and binding
the SQL against an empty case (`forensics detectors check`) in `forensics.detect.check`.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import duckdb
import yaml

from forensics.case.severity import NAMES as SEVERITY_NAMES
from forensics.detect.cases import parse_tests
from forensics.detect.guard import statement as parse
from forensics.detect.model import (
    PRINCIPAL_TYPES,
    STANDARD_PARAMS,
    Detector,
    Param,
    Problem,
    Severity,
)
from forensics.detect.yamlcheck import Checker, YamlRefused, load_bounded, node_line, parse_params
from forensics.errors import duckdb_error
from forensics.resources import shipped_dir

STATUSES = ("stable", "experimental")
REQUIRED_FIELDS = ("id", "title", "description", "severity", "principal_type", "tests")
OPTIONAL_FIELDS = (
    "severity_bounds",
    "tables",
    "attack",
    "params",
    "references",
    "status",
    "runbook",
    "explains",
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ID_GLOB = re.compile(r"^[a-z0-9_*?]+\.[a-z0-9_*?]+$")
_ATTACK = re.compile(r"^TA\d{4}(:T\d{4}(\.\d{3})?)?$")


def default_dirs(rules: list[Path]) -> list[Path]:
    """The shipped `queries/` folder, then the user's `--rules` folders, in that order."""
    return [shipped_dir("queries"), *rules]


def load_detectors(dirs: list[Path]) -> tuple[list[Detector], list[Problem]]:
    """Every `<dir>/<family>/<name>.sql` + `.yml` pair, and every problem found on the way.

    A pair becomes a `Detector` only if it has no problem. Problems are sorted by path and line;
    nothing is raised, so one run lists them all.
    """
    problems: list[Problem] = []
    pairs: list[tuple[Path, Path]] = []
    for root in dirs:
        pairs.extend(_discover(root, problems))
    detectors: list[Detector] = []
    parser = duckdb.connect()  # one in-memory database parses every file
    try:
        _load_all(pairs, parser, detectors, problems)
    finally:
        parser.close()
    problems.sort(key=lambda p: (str(p.path), p.line))
    detectors.sort(key=lambda d: d.id)
    return detectors, problems


def _load_all(
    pairs: list[tuple[Path, Path]],
    parser: duckdb.DuckDBPyConnection,
    detectors: list[Detector],
    problems: list[Problem],
) -> None:
    seen: dict[str, Path] = {}
    for sql_path, yml_path in pairs:
        checker = Checker(yml_path)
        detector_id = f"{yml_path.parent.name}.{yml_path.stem}"
        detector = _load_pair(sql_path, yml_path, checker, parser)
        if detector_id in seen:
            checker.add(
                checker.id_line,
                f"duplicate id {detector_id!r}: already defined in {seen[detector_id]}",
            )
        else:
            seen[detector_id] = yml_path
        problems.extend(checker.problems)
        if detector is not None and not checker.problems:
            detectors.append(detector)


def _discover(root: Path, problems: list[Problem]) -> list[tuple[Path, Path]]:
    """The (.sql, .yml) pairs under one folder; lone halves and misplaced files are problems."""
    if not root.is_dir():
        problems.append(Problem(root, 0, "not a folder of detectors"))
        return []
    halves: dict[Path, set[str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix == ".yaml":
            problems.append(
                Problem(path, 1, f"detector metadata ends in .yml: rename to {path.stem}.yml")
            )
            continue
        if path.suffix not in (".sql", ".yml"):
            continue
        if len(rel.parts) != 2:
            problems.append(
                Problem(
                    path,
                    1,
                    f"not in a family folder: put it at {root}/<family>/<name>{path.suffix}",
                )
            )
            continue
        family, name = rel.parts[0], path.stem
        if not _NAME.match(family) or not _NAME.match(name):
            problems.append(
                Problem(
                    path,
                    1,
                    f"{family}/{path.name}: family and name are lower-case letters, digits and _",
                )
            )
            continue
        halves.setdefault(path.with_suffix(""), set()).add(path.suffix)
    pairs: list[tuple[Path, Path]] = []
    for stem, suffixes in halves.items():
        sql_path, yml_path = stem.with_suffix(".sql"), stem.with_suffix(".yml")
        if suffixes == {".sql", ".yml"}:
            pairs.append((sql_path, yml_path))
        elif ".sql" in suffixes:
            problems.append(
                Problem(
                    sql_path, 1, f"no {yml_path.name} next to it: a detector is a .sql and a .yml"
                )
            )
        else:
            problems.append(
                Problem(
                    yml_path, 1, f"no {sql_path.name} next to it: a detector is a .sql and a .yml"
                )
            )
    return pairs


def _load_pair(
    sql_path: Path, yml_path: Path, c: Checker, parser: duckdb.DuckDBPyConnection
) -> Detector | None:
    sql = _read(sql_path, c)
    statement = _check_statement(sql_path, sql, c, parser) if sql is not None else None
    named = set(statement.named_parameters) if statement is not None else None
    text = _read(yml_path, c)
    if text is None:
        return None
    parsed = _parse_yaml(text, c)
    if parsed is None:
        return None
    node, data = parsed
    fields = c.mapping(node, "the detector")
    if fields is None:
        return None
    c.unknown(fields, REQUIRED_FIELDS + OPTIONAL_FIELDS, "the detector")
    for name in REQUIRED_FIELDS:
        if name not in fields:
            c.add(node, f"missing required field {name!r}")

    def value(name: str) -> tuple[Any, yaml.Node | None]:
        return (data[name], fields[name][1]) if name in fields and name in data else (None, None)

    expected = f"{yml_path.parent.name}.{yml_path.stem}"
    det_id, id_node = value("id")
    if id_node is not None:
        c.id_line = node_line(id_node)
        if det_id != expected:
            c.add(id_node, f"id {det_id!r} does not match the file: expected {expected!r}")
    for name in ("title", "description"):
        text_value, text_node = value(name)
        if text_node is not None and not (isinstance(text_value, str) and text_value.strip()):
            c.add(text_node, f"{name} must be a non-empty string")
    severity = _severity(value("severity"), "severity", c)
    bounds = _bounds(value("severity_bounds"), severity, c)
    principal, principal_node = value("principal_type")
    if principal_node is not None and principal not in PRINCIPAL_TYPES:
        c.add(
            principal_node,
            f"principal_type {principal!r} is not one of {', '.join(PRINCIPAL_TYPES)}",
        )
    tables = _strings(value("tables"), "tables", c)
    attack = _strings(value("attack"), "attack", c)
    attack_node = value("attack")[1]
    for i, item in enumerate(attack):
        if not _ATTACK.match(item):
            c.add(
                attack_node.value[i] if isinstance(attack_node, yaml.SequenceNode) else attack_node,
                f"attack {item!r} is not TAnnnn:Tnnnn (MITRE ATT&CK tactic:technique)",
            )
    references = _strings(value("references"), "references", c)
    explains = _strings(value("explains"), "explains", c)
    explains_node = value("explains")[1]
    for i, item in enumerate(explains):
        where = (
            explains_node.value[i]
            if isinstance(explains_node, yaml.SequenceNode)
            else explains_node
        )
        if not _ID_GLOB.match(item):
            c.add(where, f"explains {item!r} is not a detector id or glob (family.name)")
        elif fnmatch.fnmatchcase(expected, item):
            c.add(where, f"explains {item!r} names the detector itself")
    status, status_node = value("status")
    if status_node is not None and status not in STATUSES:
        c.add(status_node, f"status {status!r} is not one of {', '.join(STATUSES)}")
    runbook, runbook_node = value("runbook")
    if runbook_node is not None and not isinstance(runbook, str):
        c.add(runbook_node, "runbook must be a string")
    params = parse_params(value("params"), c)
    tests = parse_tests(value("tests"), fields.get("tests", (None, None))[0], params, c)
    if named is not None:
        _check_param_use(sql_path, sql or "", named, params, value("params")[1], c)
    if c.problems or sql is None or statement is None:
        return None
    parse(sql)  # what runs reuse: the statement and its calls
    return Detector(
        id=expected,
        title=str(data["title"]).strip(),
        description=str(data["description"]).strip(),
        severity=severity or Severity.info,
        principal_type=str(principal),
        sql=sql,
        sql_path=sql_path,
        yml_path=yml_path,
        severity_bounds=bounds,
        tables=tuple(tables),
        attack=tuple(attack),
        params=tuple(params.values()),
        references=tuple(references),
        explains=tuple(explains),
        status=str(status or "stable"),
        runbook=str(runbook or ""),
        tests=tuple(tests),
    )


def _read(path: Path, c: Checker) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        c.add(1, f"cannot read: {e}", path)
        return None


def _parse_yaml(text: str, c: Checker) -> tuple[yaml.Node, Any] | None:
    try:
        loaded = load_bounded(text)
        if loaded is None:
            c.add(1, "empty file: expected the detector's fields")
        return loaded
    except YamlRefused as e:
        c.add(e.line, f"YAML refused: {e}")
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        c.add(line, f"invalid YAML: {e.problem or e.context}")
    except yaml.YAMLError as e:
        c.add(1, f"invalid YAML: {e}")
    return None


def _check_statement(
    sql_path: Path, sql: str, c: Checker, parser: duckdb.DuckDBPyConnection
) -> duckdb.Statement | None:
    """One read-only statement: DuckDB's parse of it (None, and a problem, otherwise)."""
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as e:
        error = duckdb_error(e)
        c.add(error.line or 1, error.one_line, sql_path)
        return None
    if not statements:
        c.add(1, "no SQL statement in the file", sql_path)
        return None
    offset = 0
    starts: list[int] = []
    for statement in statements:
        starts.append(_statement_line(sql, offset))
        offset += len(statement.query)
    if len(statements) > 1:
        c.add(starts[1], f"a detector is one SELECT; found {len(statements)} statements", sql_path)
        return None
    kind = statements[0].type.name
    if kind != "SELECT":
        c.add(starts[0], f"a detector only reads: expected a SELECT, found {kind}", sql_path)
        return None
    return statements[0]


def _statement_line(sql: str, offset: int) -> int:
    """Line of the first token at or after `offset`, past blanks and `--` comments."""
    rest = sql[offset:]
    while True:
        stripped = rest.lstrip()
        if not stripped.startswith("--"):
            break
        newline = stripped.find("\n")
        rest = stripped[newline:] if newline >= 0 else ""
    return sql.count("\n", 0, len(sql) - len(stripped)) + 1


def _severity(item: tuple[Any, yaml.Node | None], what: str, c: Checker) -> Severity | None:
    value, node = item
    if node is None:
        return None
    if isinstance(value, str) and value in SEVERITY_NAMES:
        return Severity[value]
    c.add(node, f"{what} {value!r} is not one of {', '.join(SEVERITY_NAMES)}")
    return None


def _bounds(
    item: tuple[Any, yaml.Node | None], severity: Severity | None, c: Checker
) -> tuple[Severity, Severity] | None:
    value, node = item
    if node is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(node, yaml.SequenceNode)):
        c.add(node, "severity_bounds must be two severities, e.g. [medium, critical]")
        return None
    low = _severity((value[0], node.value[0]), "severity_bounds", c)
    high = _severity((value[1], node.value[1]), "severity_bounds", c)
    if low is None or high is None:
        return None
    if low > high:
        c.add(node, f"severity_bounds [{low.name}, {high.name}] are not in order (lowest first)")
        return None
    if severity is not None and not low <= severity <= high:
        c.add(
            node, f"severity {severity.name!r} is outside severity_bounds [{low.name}, {high.name}]"
        )
    return low, high


def _strings(item: tuple[Any, yaml.Node | None], what: str, c: Checker) -> list[str]:
    value, node = item
    if node is None:
        return []
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        c.add(node, f"{what} must be a list of strings")
        return []
    return value


def _check_param_use(
    sql_path: Path,
    sql: str,
    named: set[str],
    params: dict[str, Param],
    params_node: yaml.Node | None,
    c: Checker,
) -> None:
    """Every `$name` in the SQL is declared or standard; every declared one is used."""
    for name in sorted(named - set(params) - set(STANDARD_PARAMS)):
        found = re.search(rf"\${re.escape(name)}\b", sql)
        line = sql.count("\n", 0, found.start()) + 1 if found else 1
        c.add(line, f"${name} is not declared under params: in the .yml", sql_path)
    entries = params_node.value if isinstance(params_node, yaml.MappingNode) else []
    for key, _ in entries:
        if key.value in params and key.value not in named:
            c.add(key, f"params.{key.value}: declared but the SQL never uses ${key.value}")
