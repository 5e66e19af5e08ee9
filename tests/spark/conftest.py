"""A local Spark session for the tests marked `spark`: skipped with the reason where pyspark
or Java is missing, unless FORENSICS_REQUIRE_SPARK is set (CI sets it: there the parity test
must run, not skip)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Any:
    missing = []
    if importlib.util.find_spec("pyspark") is None:
        missing.append("pyspark is not installed (pip install 'forensics[spark]')")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        missing.append("no Java on the PATH")
    if missing:
        if os.environ.get("FORENSICS_REQUIRE_SPARK"):
            pytest.fail(f"FORENSICS_REQUIRE_SPARK is set but {'; '.join(missing)}")
        pytest.skip("; ".join(missing))
    from forensics.spark.session import spark_session

    return spark_session()
