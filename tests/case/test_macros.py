"""Normalisation macros against independent Python references (hypothesis) and known cases."""

from __future__ import annotations

import hashlib
import ipaddress
import re

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.case import fingerprints as creds
from forensics.case import macros as normalize


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    creds.install_macros(c, b"test-salt")
    normalize.install_macros(c)
    return c


def reference_fp(text: str) -> int:
    norm = re.sub(r"[\t\n\f\r ]+", " ", text.lower()).strip()[:64]
    norm = norm.translate(str.maketrans("123456789", "000000000"))
    return int(hashlib.sha256(norm.encode()).hexdigest()[:16], 16)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aBz09 \t\n.", max_size=700))
def test_prompt_fp_matches_the_definition(con, text):
    assert con.execute("SELECT prompt_fp($t)", {"t": text}).fetchall()[0][0] == reference_fp(text)


def test_prompt_fp_with_long_blank_runs_inside_the_prefix(con):
    text = "a" + " " * 5000 + "b" * 100
    assert con.execute("SELECT prompt_fp($t)", {"t": text}).fetchall()[0][0] == reference_fp(text)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_ip_num_matches_python(con, ip):
    expected = int(ip) + 0xFFFF00000000 if ip.version == 4 else int(ip)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        expected = int(ip.ipv4_mapped) + 0xFFFF00000000  # ::ffff:a.b.c.d is that IPv4 address
    got = con.execute("SELECT ip_num($ip)", {"ip": str(ip)}).fetchall()[0][0]
    assert got == expected
    exploded = ipaddress.ip_address(ip).exploded if ip.version == 6 else None
    if exploded:
        assert con.execute("SELECT ip_num($ip)", {"ip": exploded}).fetchall()[0][0] == expected


def ip6_hex_reference(text: str) -> str | None:
    """How the case reads hex-and-colon text that is not a valid address too: the groups
    before and after the first "::" (empty ones dropped, anything after a second "::" too),
    zeros between them up to eight groups, each group cut or padded to four digits."""
    head, tail = text.split("::")[:2] if "::" in text else (text, "")
    h = [g for g in head.split(":") if g]
    t = [g for g in tail.split(":") if g]
    if len(h) + len(t) > 8:
        return None
    return "".join(g.lower()[:4].rjust(4, "0") for g in [*h, *["0"] * (8 - len(h) - len(t)), *t])


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0aF9:", min_size=1, max_size=48).filter(lambda s: ":" in s))
def test_ip_num_reads_any_hex_and_colon_text_one_way(con, text):
    # malformed text too (too many groups, groups of five digits, ":::", two "::"): the /64
    # is cut from the same 32 digits as the number (the reference passes on the lambda that
    # cut it before, too)
    hex_digits = ip6_hex_reference(text)
    got = con.execute("SELECT ip_num($ip), client_net_of($ip)", {"ip": text}).fetchall()[0]
    if hex_digits is None:
        assert got == (None, None)
    else:
        groups = [hex_digits[i : i + 4].lstrip("0") or "0" for i in range(0, 16, 4)]
        assert got == (int(hex_digits, 16), ":".join(groups) + "::/64")


def test_dual_stack_addresses_are_ipv4(con):
    got = con.execute(
        "SELECT strip_port('::ffff:203.0.113.5'), strip_port('[2001:db8::1]:443'),"
        " strip_port('198.51.100.7:5123'), ip_num('256.1.1.1')"
    ).fetchall()
    assert got == [("203.0.113.5", "2001:db8::1", "198.51.100.7", None)]


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o1-2024-12-17", "o1"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("anthropic.claude-3-sonnet-20240229-v1:0", "claude-3-sonnet"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("openai/gpt-4o", "gpt-4o"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("GPT-4o", "gpt-4o"),
        ("", None),
    ],
)
def test_model_family(con, model, family):
    assert con.execute("SELECT model_family_of($m)", {"m": model}).fetchall()[0][0] == family


@pytest.mark.parametrize(
    ("status", "code", "finish", "kind"),
    [
        (429, None, None, "rate_limited"),
        (400, "content_policy_violation", None, "content_filter"),
        (200, None, "content_filter", "content_filter"),
        (400, "invalid_request_error", None, "invalid"),
        (401, None, None, "auth"),
        (403, None, None, "auth"),
        (500, None, None, "server"),
        (200, None, "stop", None),
    ],
)
def test_error_type(con, status, code, finish, kind):
    got = con.execute("SELECT error_type_of($s, $c, $f)", {"s": status, "c": code, "f": finish})
    assert got.fetchall()[0][0] == kind


@pytest.mark.parametrize(
    ("agent", "origin", "kind"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
         None, "web"),
        ("python-httpx/0.27.0", "https://shop.example", "web"),  # a browser page's fetch
        ("python-httpx/0.27.0", "null", None),  # an opaque origin is no site
        ("AcmeField/3.4.1 (Android 14; okhttp/4.12.0)", None, "app"),
        ("FieldPro/2.1 CFNetwork/1568.100.1 Darwin/24.0.0", None, "app"),
        ("Dart/3.5 (dart:io)", None, "app"),
        ("Mozilla/5.0 (Macintosh) AppleWebKit/537.36 Chrome/120.0 Electron/28.2.0 Safari/537.36",
         "app://desk", "app"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None, None),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", "https://x.example", None),
        ("curl/8.5.0", None, None),
        ("OpenAI/Python 1.58.1", "", None),
        (None, None, None),
    ],
)  # fmt: skip
def test_client_kind_tells_web_pages_apps_and_servers(con, agent, origin, kind):
    got = con.execute("SELECT client_kind_of($a, $o)", {"a": agent, "o": origin}).fetchall()
    assert got == [(kind,)]


@pytest.mark.parametrize(
    ("ip", "net"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("2001:db8:0:1::10", "2001:db8:0:1::/64"),
        ("2001:0DB8:0000:0001:0000:0000:0000:0010", "2001:db8:0:1::/64"),
        ("2001:db8::1", "2001:db8:0:0::/64"),
        ("::1", "0:0:0:0::/64"),
        ("not-an-ip", None),
        (None, None),
    ],
)
def test_client_net_is_the_24_or_the_64_written_one_way(con, ip, net):
    assert con.execute("SELECT client_net_of($ip)", {"ip": ip}).fetchall() == [(net,)]


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_client_net_matches_the_ipaddress_module(con, address):
    prefix = 24 if address.version == 4 else 64
    block = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    got = con.execute("SELECT client_net_of($ip)", {"ip": str(address)}).fetchall()[0][0]
    if address.version == 4:
        assert got == str(block)
    else:
        groups = block.network_address.exploded.split(":")[:4]
        assert got == ":".join(g.lstrip("0") or "0" for g in groups) + "::/64"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([" ", "\t", "\n", "\u00a0", "\u3000", "\ufeff", "{", "[", "x", '"']),
        max_size=6,
    ).map("".join),
    st.sampled_from(["{", "["]),
)
def test_json_opens_as_the_trimmed_line_starts(con, line, c):
    """json_opens trims only lines that start with neither bracket: the same answer as
    trimming every line."""
    [(fast, trimmed)] = con.execute(
        "SELECT json_opens($l, $c), starts_with(ltrim($l), $c)", {"l": line, "c": c}
    ).fetchall()
    assert fast == trimmed
