"""The wheel ships what the code looks for at run time: queries/, reports/, data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_queries_reports_and_reference_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("forensics-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("asn_categories.csv", "country_centroids.csv"):
        assert f"forensics/data/{data}" in names
    shipped = {
        p.relative_to(REPO).as_posix()
        for d in ("queries", "reports")
        for p in (REPO / d).rglob("*")
        if p.is_file()
    }
    for path in shipped:
        assert f"forensics/_data/{path}" in names, path
    assert "forensics/cli/__init__.py" in names
    # what keeps the Spark engine's JVM quiet (forensics/spark/session.py)
    assert "forensics/spark/log4j2.properties" in names
