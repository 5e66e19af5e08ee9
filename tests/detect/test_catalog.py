"""Checks that hold across the whole detector pack; each lists every offender at once."""

from __future__ import annotations

from forensics.detect.check import scratch_case, validate
from forensics.detect.load import default_dirs, load_detectors
from forensics.resources import shipped_dir

DETECTORS, PROBLEMS = load_detectors(default_dirs([]))


def test_the_pack_loads_without_problems():
    assert [str(p) for p in PROBLEMS] == []


def test_every_sql_has_a_yml_and_every_yml_a_sql():
    root = shipped_dir("queries")
    sql = {p.with_suffix("") for p in root.rglob("*.sql")}
    yml = {p.with_suffix("") for p in root.rglob("*.yml")}
    assert sorted(map(str, sql ^ yml)) == []


def test_every_detector_binds_against_the_case_schema():
    detectors, problems = validate(default_dirs([]))
    assert [str(p) for p in problems] == []
    assert len(detectors) == len(DETECTORS)


def test_ids_are_unique_and_match_paths():
    offenders = [d.id for d in DETECTORS if d.id != f"{d.sql_path.parent.name}.{d.sql_path.stem}"]
    assert offenders == []
    assert len({d.id for d in DETECTORS}) == len(DETECTORS)


def test_every_detector_has_a_firing_a_quiet_case_and_a_runbook():
    offenders = []
    for d in DETECTORS:
        fires = any(t.expect == "fire" or (t.rows or 0) > 0 for t in d.tests)
        quiet = any(t.expect == "quiet" or t.rows == 0 for t in d.tests)
        if not (fires and quiet and d.runbook.strip()):
            offenders.append(d.id)
    assert offenders == []


def test_the_pack_is_not_empty():
    assert {"credential.use_after_revocation", "credential.browser_exposed"} <= {
        d.id for d in DETECTORS
    }
    with scratch_case() as con:
        assert con.execute("SELECT count(*) FROM findings").fetchall() == [(0,)]


def test_every_detector_has_an_action_and_explains_only_detectors_of_the_pack():
    import fnmatch

    from forensics.report.actions import ACTIONS

    ids = {d.id for d in DETECTORS}
    assert sorted(ids - set(ACTIONS)) == []  # the incident page says what to do about each
    # and `detector@type` variants are for detectors of the pack and principal types
    from forensics.case.schema import PRINCIPAL_TYPES

    variants = {k.split("@")[0] for k in ACTIONS if "@" in k}
    assert sorted(variants - ids) == []
    assert all(k.split("@")[1] in PRINCIPAL_TYPES for k in ACTIONS if "@" in k)
    assert sorted({k for k in ACTIONS if "@" not in k} - ids) == []
    dangling = [
        (d.id, glob)
        for d in DETECTORS
        for glob in d.explains
        if not any(fnmatch.fnmatchcase(other, glob) for other in ids - {d.id})
    ]
    assert dangling == []
