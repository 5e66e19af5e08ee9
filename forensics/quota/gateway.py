"""A quota policy as gateway configuration the operator reviews before applying it.

Kong (decK's kong.yaml, `_format_version: "3.0"`): request rules become the Rate Limiting
Advanced plugin, token and cost rules the AI Rate Limiting Advanced plugin (one entry per
provider the case's traffic uses; tokens_count_strategy total_tokens, prompt_tokens,
completion_tokens or cost), each keyed by `identifier` (credential, consumer or ip), with a
tenant's own limits on the consumer group of that name. Kong limits by sliding windows, not
token buckets, so a bucket of `rate` per period with `burst` becomes two windows: `burst` (at
least the rate) per period, which caps a burst, and 60 periods' worth of the rate per 60
periods, which holds the average.

Envoy (the HTTP local_ratelimit filter, envoy.extensions.filters.http.local_ratelimit.v3): a
token bucket per tenant descriptor (max_tokens the burst, refilled at the rate), the tenant
taken from a request header by the route's rate_limits action. Envoy's local limiter counts
requests, per Envoy process, and keeps a bucket per descriptor value it is given, so only
request rules are rendered, as per-tenant buckets.

Rules a gateway cannot express (tool calls; any rule for Envoy but requests) are named in the
file's leading comments, never dropped silently.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from forensics.quota.policy import Limit, Policy, Rule

KONG_IDENTIFIER = {"credential": "credential", "tenant": "consumer", "ip": "ip"}
KONG_TOKENS = {
    "tokens": "total_tokens",
    "input_tokens": "prompt_tokens",
    "output_tokens": "completion_tokens",
    "cost_usd": "cost",
}
LONG_PERIODS = 60  # the average-holding window: this many of the rule's periods
ENVOY_TENANT_HEADER = "x-tenant-id"
ENVOY_FILTER = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"


def _windows(limit: Limit) -> tuple[list[int], list[int]]:
    """(limits, window sizes in seconds) of Kong's sliding windows for one limit."""
    if limit.kind == "window":
        return [math.ceil(limit.amount)], [limit.seconds]
    burst = math.ceil(max(limit.burst, limit.rate))
    average = math.ceil(limit.rate * LONG_PERIODS)
    return [burst, average], [limit.seconds, limit.seconds * LONG_PERIODS]


def _kong_plugin(rule: Rule, limit: Limit, providers: list[str]) -> dict[str, Any]:
    limits, sizes = _windows(limit)
    config: dict[str, Any] = {
        "identifier": KONG_IDENTIFIER[rule.key],
        "window_type": "sliding" if limit.kind == "bucket" else "fixed",
        "namespace": f"forensics-{rule.id}",
        "strategy": "local",
    }
    if rule.metric == "requests":
        config |= {"limit": limits, "window_size": sizes, "disable_penalty": False}
        return {"name": "rate-limiting-advanced", "config": config}
    config |= {
        "tokens_count_strategy": KONG_TOKENS[rule.metric],
        "llm_providers": [
            {"name": provider, "limit": limits, "window_size": sizes} for provider in providers
        ],
    }
    return {"name": "ai-rate-limiting-advanced", "config": config}


def _kong_skips(rule: Rule) -> str | None:
    if rule.limit.kind == "concurrent":
        return f"{rule.id}: Kong has no limit on requests in flight"
    if rule.metric not in ("requests", *KONG_TOKENS):
        return f"{rule.id}: Kong has no limit on {rule.metric}"
    if rule.key not in KONG_IDENTIFIER:
        return f"{rule.id}: Kong has no {rule.key} identifier"
    if rule.endpoint or rule.model or rule.stream is not None or rule.tenants:
        return f"{rule.id}: its endpoint, model, stream or tenant filter needs a route of its own"
    return None


def kong_config(policy: Policy, providers: list[str]) -> str:
    """decK kong.yaml for `policy` (see the module docstring)."""
    plugins: list[dict[str, Any]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    for rule in policy.rules:
        why = _kong_skips(rule)
        if why is None and rule.metric != "requests" and not providers:
            why = f"{rule.id}: the case has no provider to name in llm_providers"
        if why is not None:
            skipped.append(why)
            continue
        plugins.append(_kong_plugin(rule, rule.limit, providers))
        for tenant, limit in sorted(rule.overrides.items()):
            groups.setdefault(tenant, []).append(_kong_plugin(rule, limit, providers))
    doc: dict[str, Any] = {"_format_version": "3.0", "plugins": plugins}
    if groups:
        doc["consumer_groups"] = [{"name": t, "plugins": p} for t, p in groups.items()]
    return _with_header(
        doc,
        [
            "Kong Gateway (decK) configuration rendered by `forensics quota suggest` from "
            f"{policy.path}.",
            "Review before applying: a tenant's own limits sit on the consumer group named after"
            " it; put its consumers in that group.",
            "Token buckets become sliding windows (burst per period, the average over "
            f"{LONG_PERIODS} periods).",
            *(f"Not rendered: {s}." for s in skipped),
        ],
    )


def _envoy_bucket(limit: Limit) -> dict[str, Any]:
    """max_tokens the burst; one token per rate interval, or whole tokens each second."""
    per_second = limit.rate / limit.seconds
    if per_second <= 1:
        interval = max(0.05, 1 / per_second)
        tokens = 1
    else:
        interval, tokens = 1.0, math.ceil(per_second)
    return {
        "max_tokens": max(1, math.ceil(limit.burst)),
        "tokens_per_fill": tokens,
        "fill_interval": f"{interval:.3f}".rstrip("0").rstrip(".") + "s",
    }


def envoy_config(policy: Policy) -> str:
    """The local_ratelimit filter and the route's rate_limits action (module docstring)."""
    descriptors: list[dict[str, Any]] = []
    skipped: list[str] = []
    ceiling = Limit("bucket", 1)  # the filter's own bucket: every tenant's together
    rendered: Rule | None = None
    for rule in policy.rules:
        if rule.metric != "requests" or rule.limit.kind != "bucket":
            skipped.append(f"{rule.id}: Envoy's local limiter is a token bucket of requests")
        elif rule.endpoint or rule.model or rule.stream is not None or rule.tenants:
            skipped.append(f"{rule.id}: its filters need a route of its own")
        elif rendered is not None:
            skipped.append(f"{rule.id}: one bucket per tenant descriptor, {rendered.id}'s")
        else:
            rendered = rule
    for tenant, limit in sorted(rendered.overrides.items() if rendered else []):
        if limit.kind != "bucket":
            continue
        descriptors.append(
            {"entries": [{"key": "tenant", "value": tenant}], "token_bucket": _envoy_bucket(limit)}
        )
        ceiling = Limit(
            "bucket",
            1,
            rate=ceiling.rate + limit.rate / limit.seconds,
            burst=ceiling.burst + limit.burst,
        )
    percent = {"numerator": 100, "denominator": "HUNDRED"}
    filter_config: dict[str, Any] = {
        "@type": ENVOY_FILTER,
        "stat_prefix": "forensics_quota",
        "token_bucket": _envoy_bucket(ceiling if descriptors else Limit("bucket", 1, 1e6, 1e6)),
        "filter_enabled": {"runtime_key": "forensics_quota_enabled", "default_value": percent},
        "filter_enforced": {"runtime_key": "forensics_quota_enforced", "default_value": percent},
        "descriptors": descriptors,
    }
    doc = {
        "http_filters": [
            {"name": "envoy.filters.http.local_ratelimit", "typed_config": filter_config}
        ],
        "rate_limits": [
            {
                "actions": [
                    {
                        "request_headers": {
                            "header_name": ENVOY_TENANT_HEADER,
                            "descriptor_key": "tenant",
                        }
                    }
                ]
            }
        ],  # fmt: skip
    }
    return _with_header(
        doc,
        [
            "Envoy HTTP local_ratelimit configuration rendered by `forensics quota suggest` from "
            f"{policy.path}.",
            "Review before applying: http_filters go in the HTTP connection manager, rate_limits on"
            " the virtual host or route of the AI endpoints.",
            f"The tenant comes from the {ENVOY_TENANT_HEADER} request header, which the gateway"
            " must set from the authenticated credential (never trust the client's).",
            "Limits apply per Envoy process. The filter's own token_bucket is every listed"
            " tenant's together: a ceiling, shared by tenants without a descriptor.",
            *(
                [
                    f"{rendered.id} keys its buckets by {rendered.key}; these are per tenant: a"
                    " tenant's keys share one."
                ]
                if rendered is not None and rendered.key != "tenant"
                else []
            ),
            *(f"Not rendered: {s}." for s in skipped),
        ],
    )


def _with_header(doc: dict[str, Any], notes: list[str]) -> str:
    """`notes` as comment lines (control characters of a path out), then the YAML."""
    header = "".join("# " + re.sub(r"[\x00-\x1f\x7f]", "?", line) + "\n" for line in notes)
    return header + yaml.dump(doc, Dumper=_Plain, sort_keys=False, allow_unicode=True, width=100)


class _Plain(yaml.SafeDumper):
    """Safe YAML without anchors: each value written out where it is used."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
