"""Requests of a synthetic world, before they are written in any log format.

A `Call` is one request as the gateway saw it; `synth/gateway_logs.py` turns calls into Kong
file-log records or LiteLLM spend rows, `synth/provider_usage.py` sums them into the providers'
usage reports.
`background` draws the ordinary traffic of one credential: diurnal in its tenant's time zone,
fewer calls at weekends, varied prompts, its own model mix, streaming share and error rates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from forensics.synth.world import MODELS, Credential, Model

# Share of a working day's traffic in each local hour (people asleep at night).
_DIURNAL = (
    0.05, 0.04, 0.03, 0.03, 0.03, 0.05, 0.12, 0.3, 0.7, 1.0, 1.0, 1.0,
    0.8, 0.95, 1.0, 1.0, 0.9, 0.75, 0.55, 0.4, 0.3, 0.2, 0.12, 0.08,
)  # fmt: skip

WORDS = (
    "invoice order refund shipment account payment ticket customer contract clause policy "
    "report revenue forecast budget summary review release feature incident outage deploy "
    "database query table column metric dashboard latency region market campaign lead email "
    "meeting agenda draft section paragraph translation tone bullet example function class "
    "method variable python typescript sql json yaml config schema migration index cache "
    "quarter month week vendor supplier warehouse inventory product catalog price discount "
    "onboarding training manual checklist roadmap milestone risk audit compliance privacy"
).split()
_OPENERS = (
    "Summarise", "Explain", "Rewrite", "Translate", "Classify", "Draft", "Review", "Compare",
    "List", "Fix", "Describe", "Extract", "Outline", "Shorten", "Check", "Improve", "Plan",
    "Write", "Suggest", "Convert", "Why does", "How do I", "What is", "Can you", "Please",
)  # fmt: skip


def words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))


def varied_prompt(rng: random.Random) -> str:
    """A user message whose first words vary: ordinary traffic shares no long prefix."""
    return f"{rng.choice(_OPENERS)} {words(rng, 2, 5)} for the {words(rng, 4, 18)}."


@dataclass
class Call:
    """One request at the gateway."""

    ts: float  # epoch seconds
    cred: Credential | None
    ip: str
    model: Model
    user_agent: str
    prompt: str = ""
    system: str = ""
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    tool_calls: int = 0
    outcome: str = "ok"  # ok | rate_limited | upstream_429 | invalid | server | content_filter
    # | unauthorized
    latency_ms: int = 0
    user: str = ""
    origin: str | None = None
    jwt: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    # A request that is not a model call (sign-up, login, key creation, a probe for /.env):
    # its path, method and status as the gateway logged them; no AI block is written.
    path: str | None = None
    method: str = "POST"
    status: int | None = None

    @property
    def reached_provider(self) -> bool:
        """Whether the provider counted the call's tokens (gateway refusals never got there)."""
        return (
            self.path is None and self.outcome in ("ok", "content_filter") and self.input_tokens > 0
        )

    @property
    def cost(self) -> float:
        m = self.model
        return (self.input_tokens * m.price_in + self.output_tokens * m.price_out) / 1e6


def make_call(
    rng: random.Random,
    cred: Credential,
    ts: float,
    *,
    model: Model | None = None,
    prompt: str | None = None,
    ip: str | None = None,
    stream: bool | None = None,
    outcome: str | None = None,
    output_scale: float | None = None,
    tool_calls: int | None = None,
) -> Call:
    """A call of `cred` at `ts`, drawn from the credential's habits unless told otherwise."""
    if model is None:
        model = MODELS[rng.choices(cred.models, cred.model_weights)[0]]
    embeddings = model.endpoint == "embeddings"
    if prompt is None:
        prompt = words(rng, 20, 90) if embeddings else varied_prompt(rng)
    if stream is None:
        stream = not embeddings and rng.random() < cred.stream_share
    if outcome is None:
        outcome = "ok"
        roll = rng.random()
        for name, share in cred.error_shares.items():
            if roll < share:
                outcome = name
                break
            roll -= share
    scale = cred.output_scale if output_scale is None else output_scale
    system = "" if embeddings else cred.system_prompt
    history = 0 if embeddings else int(rng.lognormvariate(5.0, 1.0))
    input_tokens = max(8, (len(system) + len(prompt)) // 4 + history)
    output_tokens = 0 if embeddings else max(1, int(rng.lognormvariate(5.2, 0.7) * scale))
    cached = (input_tokens // 128) * 128 if input_tokens >= 1024 and rng.random() < 0.4 else 0
    if tool_calls is None:
        tool_calls = 0
        if not embeddings and rng.random() < cred.tool_share:
            tool_calls = rng.randint(*cred.tools_per_call)
    latency = int(180 + output_tokens * rng.uniform(9, 16) + rng.expovariate(1 / 120))
    if outcome != "ok":
        output_tokens, tool_calls, cached = 0, 0, 0
        latency = rng.randint(8, 40) if outcome in ("rate_limited", "unauthorized") else 300
        if outcome in ("rate_limited", "unauthorized", "invalid"):
            input_tokens = 0
    call = Call(
        ts=ts,
        cred=cred,
        ip=ip if ip is not None else rng.choice(cred.ips),
        model=model,
        user_agent=cred.user_agent,
        prompt=prompt,
        system=system,
        stream=stream,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached,
        tool_calls=tool_calls,
        outcome=outcome,
        latency_ms=latency,
        user=rng.choice(cred.users) if cred.users else "",
        origin=cred.origin,
    )
    return call


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (normal approximation above 50)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def day_times(rng: random.Random, cred: Credential, day_start: float, count: int) -> list[float]:
    """`count` instants in the UTC day starting at `day_start`, shaped by the credential."""
    if cred.hours is not None:
        lo, hi = cred.hours
        return sorted(day_start + rng.uniform(lo * 3600, hi * 3600) for _ in range(count))
    offset = cred.tenant.utc_offset
    weights = [_DIURNAL[(h + offset) % 24] for h in range(24)]
    hours = rng.choices(range(24), weights, k=count)
    return sorted(day_start + h * 3600 + rng.uniform(0, 3600) for h in hours)


def background(
    rng: random.Random, cred: Credential, start: float, days: int, *, skip_days: int = 0
) -> list[Call]:
    """The credential's ordinary traffic over `days` UTC days from `start`."""
    calls: list[Call] = []
    for day in range(skip_days, days):
        day_start = start + day * 86400
        local_weekday = int((day_start + cred.tenant.utc_offset * 3600 + 43200) // 86400 + 3) % 7
        weekend = local_weekday >= 5
        if weekend and cred.weekdays_only:
            continue
        mean = cred.daily * (0.35 if weekend else 1.0)
        for ts in day_times(rng, cred, day_start, poisson(rng, mean)):
            calls.append(make_call(rng, cred, ts))
    return calls
