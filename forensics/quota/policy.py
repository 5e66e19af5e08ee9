"""A quota policy file (TOML): which requests each rule meters, per what, and how much.

    [defaults]
    key = "credential"                  # the bucket each principal gets: tenant, credential,
                                        # user or ip (a rule may say otherwise)

    [[rule]]
    id = "chat-output"                  # letters, digits, . _ -; unique
    limit = "output_tokens"             # requests, input_tokens, output_tokens, tokens,
                                        # cost_usd or tool_calls
    bucket = { rate = 2000, per = "minute", burst = 40000 }   # a token bucket, or
    # window = { limit = 120000, per = "hour" }               # a fixed window
    endpoint = "chat*"                  # optional: glob over requests.endpoint
    model = "gpt-4o*"                   # optional: glob over requests.model
    stream = false                      # optional: streaming (true) or not (false) only
    tenants = ["acme-prod"]             # optional: these tenants only

    [rule.tenant."acme-prod"]           # optional: this tenant's own bucket or window
    bucket = { rate = 8000, per = "minute", burst = 160000 }

Every problem is an InputError naming the file and the line of the rule or key at fault.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forensics.errors import InputError

KEYS = {"tenant": "tenant_id", "credential": "credential_id", "user": "user_id", "ip": "client_ip"}
# what a request costs a rule's bucket, as SQL over `requests`
METRICS = {
    "requests": "1",
    "input_tokens": "coalesce(input_tokens, 0)",
    "output_tokens": "coalesce(output_tokens, 0)",
    "tokens": "coalesce(input_tokens, 0) + coalesce(output_tokens, 0)",
    "cost_usd": "coalesce(est_cost_usd, 0)",
    "tool_calls": "coalesce(tool_calls, 0)",
}
# metrics a gateway knows before it forwards the request; the others it learns from the response
UPFRONT = frozenset({"requests", "input_tokens"})
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KINDS = ("bucket", "window", "concurrent")
_RULE_KEYS = {"id", "key", "limit", *_KINDS, "endpoint", "model", "stream", "tenants"}


@dataclass(frozen=True)
class Limit:
    """A token bucket (`rate` per `seconds`, up to `burst`), a fixed window (`amount` per
    window of `seconds`, windows aligned to the epoch) or a cap on requests in flight
    (`concurrent`: at most `amount` at once, each from its start for its latency)."""

    kind: str  # bucket | window | concurrent
    seconds: int
    rate: float = 0.0
    burst: float = 0.0
    amount: float = 0.0

    def describe(self) -> str:
        if self.kind == "concurrent":
            return f"at most {self.amount:g} in flight"
        per = next((name for name, s in PERIODS.items() if s == self.seconds), f"{self.seconds} s")
        if self.kind == "bucket":
            return f"bucket {self.rate:g}/{per}, burst {self.burst:g}"
        return f"window {self.amount:g}/{per}"

    def as_window(self, seconds: int = 3600) -> Limit:
        """The fixed window of the same average rate, `seconds` long (an hour: the article's
        "1000 requests per hour") or the bucket's own period if longer."""
        if self.kind != "bucket":
            return self
        length = max(seconds, self.seconds)
        return Limit("window", length, amount=self.rate * length / self.seconds)


@dataclass(frozen=True)
class Rule:
    id: str
    line: int
    key: str  # tenant | credential | user | ip
    metric: str
    limit: Limit
    endpoint: str | None = None
    model: str | None = None
    stream: bool | None = None
    tenants: tuple[str, ...] = ()
    overrides: dict[str, Limit] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    path: str
    rules: tuple[Rule, ...]

    def as_windows(self, seconds: int = 3600) -> Policy:
        """The same rules with each bucket replaced by the fixed window of its average rate
        (Limit.as_window)."""
        rules = tuple(
            replace(
                r,
                limit=r.limit.as_window(seconds),
                overrides={t: o.as_window(seconds) for t, o in r.overrides.items()},
            )
            for r in self.rules
        )
        return Policy(self.path, rules)


class _Lines:
    """Where things are in the file's text, for error messages (tomllib gives no positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.rules = [
            n for n, line in enumerate(self.lines, 1) if re.match(r"\s*\[\[\s*rule\s*\]\]", line)
        ]

    def rule(self, index: int) -> int:
        return self.rules[index] if index < len(self.rules) else 1

    def key(self, index: int, name: str) -> int:
        """The line of `name = ...` (or `[rule.name...]`) inside rule `index`, else the rule's."""
        start = self.rule(index)
        end = self.rules[index + 1] if index + 1 < len(self.rules) else len(self.lines) + 1
        pattern = re.compile(rf"\s*({re.escape(name)}\s*=|\[\s*rule\.{re.escape(name)}\b)")
        for n in range(start, end):
            if pattern.match(self.lines[n - 1]):
                return n
        return start


def load_policy(path: Path) -> Policy:
    """Read and check a policy file (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(path, f"cannot read the policy: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text: not a TOML policy") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        at = re.search(r"at line (\d+)", str(e))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        raise InputError(
            path, f"not valid TOML: {message}", line=int(at[1]) if at else None
        ) from None
    lines = _Lines(text)
    unknown = sorted(set(doc) - {"defaults", "rule"})
    if unknown:
        raise InputError(
            path, f"unknown top-level key {unknown[0]} (expected [defaults], [[rule]])"
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - {"key"}:
        raise InputError(path, "[defaults] takes one key: key (tenant, credential, user or ip)")
    default_key = defaults.get("key", "credential")
    if default_key not in KEYS:
        raise InputError(path, f"defaults.key must be one of {', '.join(KEYS)}")
    found = doc.get("rule")
    if not isinstance(found, list) or not found:
        raise InputError(path, "no [[rule]]: a policy needs at least one rule")
    rules: list[Rule] = []
    for index, raw in enumerate(found):
        rule = _rule(path, lines, index, raw, default_key)
        if any(r.id == rule.id for r in rules):
            raise InputError(path, f"rule id {rule.id} is used twice", line=rule.line)
        rules.append(rule)
    return Policy(str(path), tuple(rules))


def _rule(path: Path, lines: _Lines, index: int, raw: Any, default_key: str) -> Rule:
    line = lines.rule(index)

    def fail(message: str, key: str | None = None) -> InputError:
        return InputError(path, message, line=lines.key(index, key) if key else line)

    extra = sorted(set(raw) - _RULE_KEYS - {"tenant"})
    if extra:
        known = ", ".join(sorted(_RULE_KEYS | {"tenant"}))
        raise fail(f"unknown key {extra[0]} in a rule (known: {known})", extra[0])
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
        raise fail("a rule needs an id of letters, digits, '.', '_' or '-'", "id")
    key = raw.get("key", default_key)
    if key not in KEYS:
        raise fail(f"rule {rule_id}: key must be one of {', '.join(KEYS)}", "key")
    metric = raw.get("limit")
    if metric not in METRICS:
        raise fail(f"rule {rule_id}: limit must be one of {', '.join(METRICS)}", "limit")
    given = [k for k in _KINDS if k in raw]
    if len(given) != 1:
        raise fail(f"rule {rule_id}: give a bucket, a window or concurrent (one of them)")
    kind = given[0]
    limit = _limit(raw[kind], kind, metric, lambda m: fail(f"rule {rule_id}: {m}", kind))
    stream = raw.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise fail(f"rule {rule_id}: stream must be true or false", "stream")
    globs = {}
    for name in ("endpoint", "model"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(f"rule {rule_id}: {name} must be a glob such as chat*", name)
        globs[name] = value
    tenants = raw.get("tenants", [])
    if not isinstance(tenants, list) or not all(isinstance(t, str) and t for t in tenants):
        raise fail(f"rule {rule_id}: tenants must be a list of tenant ids", "tenants")
    overrides: dict[str, Limit] = {}
    own = raw.get("tenant", {})
    if not isinstance(own, dict):
        raise fail(f'rule {rule_id}: give tenant overrides as [rule.tenant."ID"]', "tenant")
    for tenant, spec in own.items():
        # a cap on requests in flight is overridden by another cap, a rate by a rate
        fits = ("concurrent",) if kind == "concurrent" else ("bucket", "window")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in fits:
            raise fail(f"rule {rule_id}: tenant {tenant} needs one {' or '.join(fits)}", "tenant")
        ((kind_t, value),) = spec.items()
        overrides[tenant] = _limit(
            value,
            kind_t,
            metric,
            lambda m, t=tenant: fail(f"rule {rule_id}, tenant {t}: {m}", "tenant"),
        )
    return Rule(
        id=rule_id,
        line=line,
        key=key,
        metric=metric,
        limit=limit,
        endpoint=globs["endpoint"],
        model=globs["model"],
        stream=stream,
        tenants=tuple(tenants),
        overrides=overrides,
    )


def _limit(spec: Any, kind: str, metric: str, fail: Any) -> Limit:
    if kind == "concurrent":
        if metric != "requests":
            raise fail('concurrent caps requests in flight: give limit = "requests"')
        if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
            raise fail("concurrent must be a whole number of requests, 1 or more")
        return Limit("concurrent", 0, amount=float(spec))
    if not isinstance(spec, dict):
        raise fail(f'{kind} must be a table such as {{ rate = 60, per = "minute", burst = 120 }}')
    wanted = {"rate", "per", "burst"} if kind == "bucket" else {"limit", "per"}
    if set(spec) != wanted:
        raise fail(f"{kind} takes exactly {', '.join(sorted(wanted))}")
    per = spec["per"]
    if per not in PERIODS:
        raise fail(f"per must be one of {', '.join(PERIODS)}")
    numbers = {k: v for k, v in spec.items() if k != "per"}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise fail(f"{name} must be a number above 0")
    if kind == "bucket" and metric in UPFRONT and spec["burst"] < 1:
        raise fail("burst must hold at least one request (1)")
    if kind == "bucket":
        return Limit("bucket", PERIODS[per], rate=float(spec["rate"]), burst=float(spec["burst"]))
    return Limit("window", PERIODS[per], amount=float(spec["limit"]))
