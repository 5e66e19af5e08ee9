"""The `tests:` section of a detector's YAML: each inline test case checked in place and read
into a `DetectorTest` (they are run by `forensics.detect.inline_tests`).

A detector needs at least one case that fires and one that stays quiet; a case gives exactly
one of `expect: fire | quiet | suppressed` or `rows: N`, its `events` in an ingest format,
optionally provider usage records, reference rows and parameter overrides.
"""

from __future__ import annotations

from typing import Any

import yaml

from forensics.detect.model import STANDARD_PARAMS, DetectorTest, Param
from forensics.detect.yamlcheck import Checker, node_line, param_error

EXPECTS = ("fire", "quiet", "suppressed")
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
    "key_inventory",
    "params",
)
REFERENCE_FIELDS = ("revocations", "retired_keys", "allowlist", "known_keys", "key_inventory")


def parse_tests(
    item: tuple[Any, yaml.Node | None],
    key: yaml.Node | None,
    params: dict[str, Param],
    c: Checker,
) -> list[DetectorTest]:
    """The cases without a problem; `key` is the `tests:` key, where a missing kind is told."""
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
            c.add(
                case_node,
                f"{what}: give exactly one of expect (fire | quiet | suppressed) or rows (N)",
            )
        elif "expect" in fields and expect not in EXPECTS:
            c.add(
                fields["expect"][1], f"{what}: expect {expect!r} is not fire, quiet or suppressed"
            )
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
            error = param_error(params[pname].type, pvalue)
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
                key_inventory=tuple(case.get("key_inventory", [])),
                params=dict(overrides),
                line=node_line(case_node),
            )
        )
    if not fires:
        c.add(key, "tests need a firing case (expect: fire, or rows > 0)")
    if not quiets:
        c.add(key, "tests need a quiet case (expect: quiet, or rows: 0)")
    return tests
