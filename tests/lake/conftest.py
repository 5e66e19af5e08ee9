"""Each test leaves the process's --lake setting as it found it (none)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forensics.case import db


@pytest.fixture(autouse=True)
def _no_lake_after() -> Iterator[None]:
    yield
    db.use_lake(None)
