"""Every shipped detector's inline YAML tests, through the same runner as `forensics detectors
test` (ids `detector::case`)."""

from __future__ import annotations

import pytest

from forensics.detect.inline_tests import run_case
from forensics.detect.load import default_dirs, load_detectors

DETECTORS, PROBLEMS = load_detectors(default_dirs([]))
CASES = [(d, t) for d in DETECTORS for t in d.tests]


@pytest.mark.parametrize(("detector", "case"), CASES, ids=[f"{d.id}::{t.name}" for d, t in CASES])
def test_detector_case(detector, case, tmp_path):
    result = run_case(detector, case, tmp_path)
    assert result.passed, result.detail
