"""Policy files: what they say, and a file:line error for each way they can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.errors import InputError
from forensics.quota.policy import Limit, load_policy

GOOD = """\
[defaults]
key = "tenant"

[[rule]]
id = "chat-requests"
key = "credential"
limit = "requests"
endpoint = "chat*"
stream = false
bucket = { rate = 60, per = "minute", burst = 120 }

[rule.tenant."acme-prod"]
bucket = { rate = 600, per = "minute", burst = 1200 }

[[rule]]
id = "daily-cost"
limit = "cost_usd"
tenants = ["acme-prod", "globex"]
window = { limit = 250.5, per = "day" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_policy_reads_as_written(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    chat, cost = policy.rules
    assert (chat.id, chat.key, chat.metric, chat.endpoint, chat.stream) == (
        "chat-requests", "credential", "requests", "chat*", False,
    )  # fmt: skip
    assert chat.limit == Limit("bucket", 60, rate=60, burst=120)
    assert chat.overrides == {"acme-prod": Limit("bucket", 60, rate=600, burst=1200)}
    assert (cost.key, cost.tenants, cost.limit) == (
        "tenant", ("acme-prod", "globex"), Limit("window", 86400, amount=250.5),
    )  # fmt: skip
    assert chat.line == 4 and cost.line == 15
    # the fixed-window twin: the bucket's average rate in hour-long windows, overrides too
    twin = policy.as_windows()
    assert twin.rules[0].limit == Limit("window", 3600, amount=3600)
    assert twin.rules[0].overrides["acme-prod"] == Limit("window", 3600, amount=36000)
    assert twin.rules[1] == cost


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (('per = "minute", burst = 120', 'per = "fortnight", burst = 120'), 10, "per must be"),
        (('limit = "requests"', 'limit = "prompts"'), 7, "limit must be one of"),
        (('key = "credential"', 'key = "asn"'), 6, "key must be one of"),
        (("stream = false", 'stream = "no"'), 9, "stream must be true or false"),
        (('id = "daily-cost"', 'id = "chat-requests"'), 15, "used twice"),
        (('id = "daily-cost"', 'id = "daily cost!"'), 16, "needs an id"),
        (("burst = 120 }", "burst = -1 }"), 10, "burst must be a number above 0"),
        (
            ('window = { limit = 250.5, per = "day" }', ""),
            15,
            "give a bucket, a window or concurrent",
        ),
        (("tenants = [", "tenant_ids = ["), 18, "unknown key tenant_ids"),
        (
            ('[rule.tenant."acme-prod"]\nbucket', '[rule.tenant."acme-prod"]\nrate'),
            12,
            "needs one bucket or window",
        ),
        (('[[rule]]\nid = "chat', '[[rule]\nid = "chat'), 4, "not valid TOML"),
    ],
)
def test_each_mistake_names_its_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(InputError) as e:
        load_policy(path)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert message in str(e.value)


def test_a_file_that_is_no_policy(tmp_path: Path) -> None:
    for text, message in [
        ("", r"no \[\[rule\]\]"),
        ("[limits]\nx = 1\n", "unknown top-level key limits"),
        ('[defaults]\nkey = "planet"\n[[rule]]\n', "defaults.key must be one of"),
    ]:
        with pytest.raises(InputError, match=message):
            load_policy(write(tmp_path, text))
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe[[rule]]")
    with pytest.raises(InputError, match="not UTF-8"):
        load_policy(tmp_path / "bin.toml")
    with pytest.raises(InputError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_a_cap_on_requests_in_flight(tmp_path: Path) -> None:
    text = """
[[rule]]
id = "in-flight"
limit = "requests"
concurrent = 20

[rule.tenant."acme-prod"]
concurrent = 50
"""
    (rule,) = load_policy(write(tmp_path, text)).rules
    assert rule.limit == Limit("concurrent", 0, amount=20)
    assert rule.overrides == {"acme-prod": Limit("concurrent", 0, amount=50)}
    assert rule.limit.as_window() == rule.limit  # no rate to turn into a window
    for old, new, message in [
        ('limit = "requests"', 'limit = "tokens"', 'give limit = "requests"'),
        ("concurrent = 20", "concurrent = 0", "whole number of requests"),
        ("concurrent = 20", "concurrent = 2.5", "whole number of requests"),
        ("concurrent = 50", 'bucket = { rate = 1, per = "second", burst = 1 }',
         "needs one concurrent"),
    ]:  # fmt: skip
        with pytest.raises(InputError, match=message):
            load_policy(write(tmp_path, text.replace(old, new, 1)))
