"""Gateway configuration from a policy: only fields the gateways document, limits as the
policy's, and tenant ids from the logs (attacker-controlled) carried as data, never as syntax,
through the TOML policy and both YAML files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from forensics.quota.gateway import envoy_config, kong_config
from forensics.quota.policy import Limit, Policy, Rule, load_policy
from forensics.quota.suggest import Fitted, Suggestion, policy_text

# Fields as documented: Kong Rate Limiting Advanced and AI Rate Limiting Advanced plugin
# configuration, decK's file format; Envoy's LocalRateLimit (v3), TokenBucket, the local rate
# limit descriptor and the route's RateLimit request_headers action.
KONG_TOP = {"_format_version", "plugins", "consumer_groups"}
KONG_RLA = {"identifier", "window_type", "namespace", "strategy", "limit", "window_size",
            "disable_penalty"}  # fmt: skip
KONG_AI_RLA = {"identifier", "window_type", "namespace", "strategy", "tokens_count_strategy",
               "llm_providers"}  # fmt: skip
KONG_PROVIDER = {"name", "limit", "window_size"}
ENVOY_FILTER = {"@type", "stat_prefix", "token_bucket", "filter_enabled", "filter_enforced",
                "descriptors"}  # fmt: skip
ENVOY_BUCKET = {"max_tokens", "tokens_per_fill", "fill_interval"}

HOSTILE = [
    'acme"]\n[[rule]]\nid = "x',  # would close the table header and open a rule
    "globex\\u0000 # comment",
    "tenant: {inject: yes}\n- evil",  # YAML flow and block syntax
    "ünïcode-テナント",
    "&anchor *alias !!python/object",
]


def suggestion(tenants: list[str]) -> Suggestion:
    per_minute = {t: Limit("bucket", 60, rate=10 + n, burst=20 + n) for n, t in enumerate(tenants)}
    tokens = {t: Limit("bucket", 60, rate=5000, burst=9000) for t in tenants}
    calls = {t: Limit("window", 86400, amount=40) for t in tenants}
    fits = (
        Fitted("requests-per-minute", "requests", "minute", Limit("bucket", 60, 6, 12), per_minute),
        Fitted("tokens-per-minute", "tokens", "minute", Limit("bucket", 60, 3000, 6000), tokens),
        Fitted("tool-calls-per-day", "tool_calls", "day", Limit("window", 86400, amount=30), calls),
    )
    rules = tuple(
        Rule(f.rule_id, n + 1, "credential", f.metric, f.default, overrides=f.tenants)
        for n, f in enumerate(fits)
    )
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return Suggestion(Policy("p.toml", rules), fits, 100, len(tenants), 99.5, 1.5, None, None,
                      "0123456789abcdef", at, [])  # fmt: skip


def test_hostile_tenant_ids_stay_data(tmp_path: Path) -> None:
    s = suggestion(HOSTILE)
    path = tmp_path / "policy.toml"
    path.write_text(policy_text(s), encoding="utf-8")
    back = load_policy(path)
    assert [r.id for r in back.rules] == [r.id for r in s.policy.rules]
    for mine, read in zip(s.policy.rules, back.rules, strict=True):
        assert read.overrides == mine.overrides  # every hostile id, with its own limits
        assert read.limit == mine.limit
    kong = yaml.safe_load(kong_config(back, ["openai"]))
    assert {g["name"] for g in kong["consumer_groups"]} == set(HOSTILE)
    envoy = yaml.safe_load(envoy_config(back))
    values = [
        d["entries"][0]["value"] for d in envoy["http_filters"][0]["typed_config"]["descriptors"]
    ]
    assert sorted(values) == sorted(HOSTILE)
    # a path with a line break cannot end the comment and start YAML of its own
    odd = Policy("evil\nplugins: []\n.toml", back.rules)
    assert yaml.safe_load(kong_config(odd, ["openai"]))["plugins"]


def test_only_documented_fields_and_the_policys_limits() -> None:
    policy = suggestion(["acme", "globex"]).policy
    kong = yaml.safe_load(kong_config(policy, ["anthropic", "openai"]))
    assert set(kong) <= KONG_TOP and kong["_format_version"] == "3.0"
    plugins = kong["plugins"] + [p for g in kong["consumer_groups"] for p in g["plugins"]]
    for plugin in plugins:
        config = plugin["config"]
        if plugin["name"] == "rate-limiting-advanced":
            assert set(config) <= KONG_RLA
            assert len(config["limit"]) == len(config["window_size"])
        else:
            assert plugin["name"] == "ai-rate-limiting-advanced"
            assert set(config) <= KONG_AI_RLA
            assert config["tokens_count_strategy"] == "total_tokens"
            assert [p["name"] for p in config["llm_providers"]] == ["anthropic", "openai"]
            assert all(set(p) == KONG_PROVIDER for p in config["llm_providers"])
        assert config["identifier"] == "credential"
    # acme's bucket of 10 a minute, burst 20: 20 per minute and 600 per hour, sliding
    acme = next(g for g in kong["consumer_groups"] if g["name"] == "acme")
    assert acme["plugins"][0]["config"]["limit"] == [20, 600]
    assert acme["plugins"][0]["config"]["window_size"] == [60, 3600]
    envoy = yaml.safe_load(envoy_config(policy))
    typed = envoy["http_filters"][0]["typed_config"]
    assert set(typed) == ENVOY_FILTER
    assert typed["@type"].endswith(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
    )
    for bucket in [typed["token_bucket"], *(d["token_bucket"] for d in typed["descriptors"])]:
        assert set(bucket) == ENVOY_BUCKET
        assert isinstance(bucket["max_tokens"], int) and bucket["max_tokens"] >= 1
        assert isinstance(bucket["tokens_per_fill"], int) and bucket["tokens_per_fill"] >= 1
        seconds = float(bucket["fill_interval"].removesuffix("s"))
        assert seconds >= 0.05
    # acme: 10 a minute, one token every 6 s, 20 at most
    [acme_bucket] = [d["token_bucket"] for d in typed["descriptors"]
                     if d["entries"] == [{"key": "tenant", "value": "acme"}]]  # fmt: skip
    assert acme_bucket == {"max_tokens": 20, "tokens_per_fill": 1, "fill_interval": "6s"}
    action = envoy["rate_limits"][0]["actions"][0]["request_headers"]
    assert set(action) == {"header_name", "descriptor_key"}
