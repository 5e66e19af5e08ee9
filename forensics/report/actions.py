"""What to do about a finding: one recommended action per detector, for the incident page and
the weekly headline. `tests/detect/test_catalog.py` checks that every shipped detector has one."""

from __future__ import annotations

# detector id -> what to do about it (the report ties each action to its finding)
ACTIONS = {
    "credential.use_after_revocation": "Make the revocation reach the gateway: remove credential "
    "{principal} from every gateway node's key store now, then find why it was still accepted.",
    "credential.browser_exposed": "Move key {principal} out of the web page or app: issue each "
    "end user a short-lived token from a backend, and rotate this key; its travel and spread "
    "are its users, not a thief.",
    "credential.impossible_travel": "Rotate credential {principal}: two parties hold it.",
    "credential.network_spread": "Rotate credential {principal} and block the proxy networks "
    "it was replayed from.",
    "credential.long_lived_token": "Reissue tokens with a lifetime of 15 minutes or less and "
    "stop accepting tokens of retired signing keys.",
    "scraping.near_duplicate_prompts": "Rate-limit or suspend {principal}; its traffic is a "
    "templated harvest, not an application.",
    "probing.error_mapping": "Suspend {principal} and review the blocked prompts with the "
    "safety team.",
    "cost.model_escalation": "Cap the tenant's spend per hour and restrict the expensive models "
    "to the credentials that need them.",
    "cost.concurrency": "Limit concurrent requests of {principal}.",
    "cost.tool_fanout": "Cap tool-call iterations per request for {principal}.",
    "ratelimit.window_edge": "Replace the fixed-window limit with a token bucket (below).",
    "resale.endpoint_shift": "Ask the tenant what the new traffic is; resale breaks the terms.",
    "network.cross_tenant_asn": "Block network {principal} for new sign-ups and review the "
    "tenants on it together.",
    "usage.unexplained_provider_usage": "Revoke provider key {principal} at the provider: it is "
    "used outside the gateway.",
    "automation.machine_cadence": "Confirm the automation with the tenant; allowlist it if "
    "expected.",
    # an address without a key: no tenant to ask
    "automation.machine_cadence@ip": "Find who runs the automation at address {principal} (no "
    "key or tenant names it): allowlist it if it is yours, else block or rate-limit it at the "
    "edge.",
    "credential.residential_proxy": "Rotate credential {principal} now: a proxy pool that never "
    "repeats an address defeats per-IP limits; put a per-credential token bucket in front of "
    "its replacement and find where it leaked.",
    "credential.key_testing": "Rotate the keys network {principal} got accepted (the finding's "
    "victims) now, block {principal} at the edge, and trace which leaked list its refused keys "
    "come from.",
    "credential.stale_or_unknown_key": "Rotate key {principal} or retire it: the key inventory "
    "has it as too old, expired, unknown or owned by another tenant (see the evidence's reason); "
    "make the gateway enforce expiry and rotation.",
    "credential.tenant_mismatch": "Bind credential {principal} to its own tenant at the "
    "gateway (route by the token's tenant claim), revoke what crossed over, and settle the "
    "usage between the tenants.",
    "credential.dev_tool_use": "Give the developer behind key {principal} a personal "
    "development key, and rotate {principal} once the API tool's workspace or shell history "
    "holding it is cleaned.",
    "recon.endpoint_enumeration": "Check what {principal} was served: take down any secret, "
    "admin or API-description path it got with 2xx or 3xx, then block or rate-limit "
    "{principal} at the edge if it keeps scanning.",
    "abuse.account_farm": "Challenge or block the sign-up and login endpoints for network "
    "{principal} and the farm's user agent, add per-fingerprint rate limits, suspend the "
    "accounts it created and reset the passwords of those it logged into.",
}


def action_for(detector_id: str, principal_id: str, principal_type: str = "") -> str | None:
    """What to do about a finding of `detector_id` on `principal_id` (None: no set action);
    `detector@type` is the advice for a principal of that type where it differs (no tenant
    to ask about a bare address)."""
    template = ACTIONS.get(f"{detector_id}@{principal_type}") or ACTIONS.get(detector_id)
    return template.format(principal=principal_id) if template else None
