"""Made-up credentials in the shapes real providers use (gitleaks' rules), for leak tests."""

from __future__ import annotations

import base64
import json
import random
import string

_rng = random.Random(20261128)
ALNUM = string.ascii_letters + string.digits


def _r(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _b64url(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


JWT_HEADER = {"alg": "RS256", "kid": "key-2026-10", "typ": "JWT"}
JWT_CLAIMS = {
    "iss": "https://auth.example.net/",
    "sub": "svc-reporting",
    "jti": "tok-7f3a9c",
    "iat": 1767225000,
    "exp": 1767228600,
    "scope": "chat.write embeddings.read",
    "client_id": "reporting-app",
}
JWT = f"{_b64url(JWT_HEADER)}.{_b64url(JWT_CLAIMS)}.{_r(43, ALNUM + '-_')}"

KEYS: dict[str, str] = {
    "openai-project": "sk-proj-" + _r(74) + "T3BlbkFJ" + _r(74),
    "openai-legacy": "sk-" + _r(20) + "T3BlbkFJ" + _r(20),
    "anthropic": "sk-ant-api03-" + _r(93, ALNUM + "-_") + "AA",
    "anthropic-admin": "sk-ant-admin01-" + _r(93, ALNUM + "-_") + "AA",
    "google": "AIza" + _r(35, ALNUM + "-_"),
    "aws": "AKIA" + _r(16, string.ascii_uppercase + "234567"),
    "huggingface": "hf_" + _r(34, string.ascii_letters),
    "perplexity": "pplx-" + _r(48),
    "groq": "gsk_" + _r(52),
    "xai": "xai-" + _r(80),
    "github": "ghp_" + _r(36),
    "stripe": "sk_live_" + _r(24),
    "jwt": JWT,
}
