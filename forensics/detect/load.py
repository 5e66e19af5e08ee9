"""Finding and validating detectors: every `.sql` + `.yml` pair in `queries/` and the user's
`--rules` folders, with every problem reported as `path:line: message` before anything runs."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from forensics.resources import shipped_dir

if TYPE_CHECKING:
    import duckdb


from forensics.detect.model import (
    PARAM_TYPES,
    PRINCIPAL_TYPES,
    STANDARD_PARAMS,
    Detector,
    DetectorTest,
    Param,
    Problem,
    Severity,
)

SEVERITIES = tuple(s.name for s in Severity)
STATUSES = ("stable", "experimental")
EXPECTS = ("fire", "quiet")
REQUIRED_FIELDS = ("id", "title", "description", "severity", "principal_type", "tests")
OPTIONAL_FIELDS = (
    "severity_bounds",
    "tables",
    "attack",
    "params",
    "references",
    "status",
    "runbook",
)
PARAM_FIELDS = ("default", "type", "description")
TEST_FIELDS = (
    "name",
    "expect",
    "rows",
    "format",
    "events",
    "usage_format",
    "usage",
    "revocations",
    "retired_keys",
    "allowlist",
    "known_keys",
    "params",
)
REFERENCE_FIELDS = ("revocations", "retired_keys", "allowlist", "known_keys")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ATTACK = re.compile(r"^TA\d{4}(:T\d{4}(\.\d{3})?)?$")
_INTERVAL = re.compile(
    r"^\s*(\d+(\.\d+)?\s*(microsecond|millisecond|second|minute|hour|day|week|month|year)s?\s*)+$",
    re.IGNORECASE,
)


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
    seen: dict[str, Path] = {}
    for sql_path, yml_path in pairs:
        checker = _Checker(yml_path)
        detector_id = f"{yml_path.parent.name}.{yml_path.stem}"
        detector = _load_pair(sql_path, yml_path, checker)
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
    problems.sort(key=lambda p: (str(p.path), p.line))
    detectors.sort(key=lambda d: d.id)
    return detectors, problems


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


def _line(node: yaml.Node | None) -> int:
    """1-based line where a YAML node starts."""
    if node is None or node.start_mark is None:
        return 1
    return int(node.start_mark.line) + 1


class _Checker:
    """Problems of one YAML file, each placed at the node it is about."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.id_line = 1

    def add(self, where: yaml.Node | int | None, message: str, path: Path | None = None) -> None:
        line = where if isinstance(where, int) else _line(where)
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


def _load_pair(sql_path: Path, yml_path: Path, c: _Checker) -> Detector | None:
    sql = _read(sql_path, c)
    named = _check_statement(sql_path, sql, c) if sql is not None else None
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
        c.id_line = _line(id_node)
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
    status, status_node = value("status")
    if status_node is not None and status not in STATUSES:
        c.add(status_node, f"status {status!r} is not one of {', '.join(STATUSES)}")
    runbook, runbook_node = value("runbook")
    if runbook_node is not None and not isinstance(runbook, str):
        c.add(runbook_node, "runbook must be a string")
    params = _params(value("params"), c)
    tests = _tests(value("tests"), fields.get("tests", (None, None))[0], params, c)
    if named is not None:
        _check_param_use(sql_path, sql or "", named, params, value("params")[1], c)
    if c.problems or sql is None:
        return None
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
        status=str(status or "stable"),
        runbook=str(runbook or ""),
        tests=tuple(tests),
    )


def _read(path: Path, c: _Checker) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        c.add(1, f"cannot read: {e}", path)
        return None


def _parse_yaml(text: str, c: _Checker) -> tuple[yaml.Node, Any] | None:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            c.add(1, "empty file: expected the detector's fields")
            return None
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        c.add(line, f"invalid YAML: {e.problem or e.context}")
    except yaml.YAMLError as e:
        c.add(1, f"invalid YAML: {e}")
    finally:
        loader.dispose()
    return None


def _check_statement(sql_path: Path, sql: str, c: _Checker) -> set[str] | None:
    """One read-only statement; returns the named parameters DuckDB sees in it."""
    import duckdb

    try:
        statements = duckdb.connect().extract_statements(sql)
    except duckdb.Error as e:
        c.add(_error_line(str(e)), str(e).splitlines()[0], sql_path)
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
    return set(statements[0].named_parameters)


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


def _error_line(message: str) -> int:
    """The `LINE n:` DuckDB names in an error, else 1."""
    found = re.search(r"^LINE (\d+):", message, re.MULTILINE)
    return int(found.group(1)) if found else 1


def _severity(item: tuple[Any, yaml.Node | None], what: str, c: _Checker) -> Severity | None:
    value, node = item
    if node is None:
        return None
    if isinstance(value, str) and value in SEVERITIES:
        return Severity[value]
    c.add(node, f"{what} {value!r} is not one of {', '.join(SEVERITIES)}")
    return None


def _bounds(
    item: tuple[Any, yaml.Node | None], severity: Severity | None, c: _Checker
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


def _strings(item: tuple[Any, yaml.Node | None], what: str, c: _Checker) -> list[str]:
    value, node = item
    if node is None:
        return []
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        c.add(node, f"{what} must be a list of strings")
        return []
    return value


def _param_error(kind: str, value: Any) -> str | None:
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
        ok = isinstance(value, dt.datetime | dt.date) or (
            isinstance(value, str) and _is_iso_time(value)
        )
    else:  # interval
        ok = isinstance(value, str) and bool(_INTERVAL.match(value))
    if ok:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    example = {"timestamp": " (ISO 8601)", "interval": " (e.g. '6 hours')"}.get(kind, "")
    return f"{value!r} is not {article} {kind}{example}"


def _is_iso_time(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _params(item: tuple[Any, yaml.Node | None], c: _Checker) -> dict[str, Param]:
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
        error = _param_error(kind, spec["default"])
        if error is not None:
            c.add(fields["default"][1], f"{what}: default {error}")
            continue
        if not isinstance(spec["description"], str):
            c.add(fields["description"][1], f"{what}: description must be a string")
            continue
        params[name] = Param(name, spec["default"], kind, spec["description"])
    return params


def _tests(
    item: tuple[Any, yaml.Node | None],
    key: yaml.Node | None,
    params: dict[str, Param],
    c: _Checker,
) -> list[DetectorTest]:
    from forensics.ingest.formats import FORMATS

    value, node = item
    if node is None:
        return []
    if not (isinstance(value, list) and isinstance(node, yaml.SequenceNode)):
        c.add(node, "tests must be a list of test cases")
        return []
    tests: list[DetectorTest] = []
    names: set[str] = set()
    fires = quiets = False
    for i, (case, case_node) in enumerate(zip(value, node.value, strict=True)):
        what = f"tests[{i}]"
        fields = c.mapping(case_node, what)
        if fields is None:
            continue
        name = case.get("name")
        if isinstance(name, str) and name.strip():
            what = f"test {name!r}"
            if name in names:
                c.add(fields["name"][1], f"{what}: another test has this name")
            names.add(name)
        else:
            c.add(fields["name"][1] if "name" in fields else case_node, f"{what}: needs a name")
        c.unknown(fields, TEST_FIELDS, what)
        count = len(c.problems)
        expect, rows = case.get("expect"), case.get("rows")
        if ("expect" in fields) == ("rows" in fields):
            c.add(case_node, f"{what}: give exactly one of expect (fire | quiet) or rows (N)")
        elif "expect" in fields and expect not in EXPECTS:
            c.add(fields["expect"][1], f"{what}: expect {expect!r} is not fire or quiet")
        elif "rows" in fields and not (
            isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0
        ):
            c.add(fields["rows"][1], f"{what}: rows {rows!r} is not a whole number >= 0")
        fmt = case.get("format", "kong")
        if fmt not in FORMATS:
            c.add(
                fields["format"][1],
                f"{what}: format {fmt!r} is not an ingest format ({', '.join(sorted(FORMATS))})",
            )
        if "events" not in fields:
            c.add(case_node, f"{what}: missing 'events' (the raw records, a list; may be empty)")
        elif not isinstance(case["events"], list):
            c.add(fields["events"][1], f"{what}: events must be a list")
        usage_format = case.get("usage_format", "openai-usage")
        if usage_format not in FORMATS or FORMATS[usage_format].kind != "usage":
            usage_formats = sorted(n for n, f in FORMATS.items() if f.kind == "usage")
            c.add(
                fields["usage_format"][1],
                f"{what}: usage_format {usage_format!r} is not a provider usage format"
                f" ({', '.join(usage_formats)})",
            )
        if "usage" in fields and not isinstance(case["usage"], list):
            c.add(fields["usage"][1], f"{what}: usage must be a list (the export's records)")
        for table in REFERENCE_FIELDS:
            rows_given = case.get(table, [])
            if not (isinstance(rows_given, list) and all(isinstance(r, dict) for r in rows_given)):
                c.add(fields[table][1], f"{what}: {table} must be a list of mappings")
        overrides = case.get("params", {})
        if not isinstance(overrides, dict):
            c.add(fields["params"][1], f"{what}: params must be a mapping")
            overrides = {}
        for pname, pvalue in overrides.items():
            where = fields["params"][1]
            if pname in STANDARD_PARAMS:
                continue
            if pname not in params:
                c.add(where, f"{what}: params.{pname} is not a parameter of this detector")
                continue
            error = _param_error(params[pname].type, pvalue)
            if error is not None:
                c.add(where, f"{what}: params.{pname} {error}")
        if len(c.problems) > count:
            continue
        fires = fires or expect == "fire" or (rows is not None and rows > 0)
        quiets = quiets or expect == "quiet" or rows == 0
        tests.append(
            DetectorTest(
                name=str(name),
                expect=expect,
                rows=rows,
                format=fmt,
                events=tuple(case["events"]),
                usage_format=usage_format,
                usage=tuple(case.get("usage", [])),
                revocations=tuple(case.get("revocations", [])),
                retired_keys=tuple(case.get("retired_keys", [])),
                allowlist=tuple(case.get("allowlist", [])),
                known_keys=tuple(case.get("known_keys", [])),
                params=dict(overrides),
                line=_line(case_node),
            )
        )
    if not fires:
        c.add(key, "tests need a firing case (expect: fire, or rows > 0)")
    if not quiets:
        c.add(key, "tests need a quiet case (expect: quiet, or rows: 0)")
    return tests


def _check_param_use(
    sql_path: Path,
    sql: str,
    named: set[str],
    params: dict[str, Param],
    params_node: yaml.Node | None,
    c: _Checker,
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


# --- Binding against a case -----------------------------------------------------------------


@contextmanager
def scratch_case() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh, empty case in a temporary folder: the schema detectors are bound against."""
    from forensics.case import db

    with tempfile.TemporaryDirectory(prefix="forensics-check-") as tmp:
        con = db.connect(Path(tmp) / "check.duckdb")
        try:
            yield con
        finally:
            con.close()


def check_sql(detectors: list[Detector], con: duckdb.DuckDBPyConnection) -> list[Problem]:
    """Bind each detector's SELECT against the case's schema (no data is read).

    A parser or binder error becomes a problem at the line DuckDB names; so do missing
    contract columns and `tables:` entries the case does not have.
    """
    import duckdb

    from forensics.detect.params import CONTRACT_COLUMNS, bind

    known = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
        ).fetchall()
    }
    problems: list[Problem] = []
    for d in detectors:
        for table in d.tables:
            if table not in known:
                problems.append(
                    Problem(
                        d.yml_path,
                        _field_line(d.yml_path, "tables"),
                        f"tables: no table {table!r} in a case",
                    )
                )
        try:
            described = con.execute("DESCRIBE " + d.sql, bind(d)).fetchall()
        except duckdb.Error as e:
            problems.append(Problem(d.sql_path, _error_line(str(e)), str(e).splitlines()[0]))
            continue
        names = {row[0] for row in described}
        missing = [col for col in CONTRACT_COLUMNS if col not in names]
        if missing:
            problems.append(
                Problem(d.sql_path, 1, f"the SELECT lacks contract columns: {', '.join(missing)}")
            )
    return problems


def _field_line(path: Path, name: str) -> int:
    found = re.search(rf"^{name}\s*:", path.read_text(encoding="utf-8"), re.MULTILINE)
    return path.read_text(encoding="utf-8").count("\n", 0, found.start()) + 1 if found else 1


def validate(dirs: list[Path]) -> tuple[list[Detector], list[Problem]]:
    """Load every detector and bind the valid ones against an empty case: `detectors check`."""
    detectors, problems = load_detectors(dirs)
    if detectors:
        with scratch_case() as con:
            problems.extend(check_sql(detectors, con))
    problems.sort(key=lambda p: (str(p.path), p.line))
    bad = {p.path.with_suffix("") for p in problems}
    return [d for d in detectors if d.sql_path.with_suffix("") not in bad], problems
