"""Markdown reports under real renderers: GitHub's (cmark-gfm) and markdown-it with linkify.

A log string printed through `md_escape` must come out as exactly its text, with no link, image
or HTML element, wherever a renderer would otherwise autolink it (GFM's extended autolinks:
`https://`, `www.`, e-mail addresses).
"""

from __future__ import annotations

import html
import re

import cmarkgfm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from forensics.report.render import md_escape, visible

HOSTILE = [
    "see http://evil.example/login now",
    "HTTPS://EVIL.EXAMPLE",
    "ftp://files.evil.example/x",
    "www.evil.example/path",
    "go to WwW.evil.example",
    "mail support@evil.example today",
    "mailto:bob@evil.example",
    "xmpp:bot@evil.example",
    "<https://evil.example>",
    "[click](https://evil.example)",
    "![img](https://evil.example/p.png)",
    "a|b `code` *em* _u_ ~~s~~ <b>x</b> &amp; $x$",
    "user-agent Mozilla/5.0 (compatible; bot; +http://www.evil.example/bot.html)",
]

_LINKIFY = MarkdownIt("commonmark", {"linkify": True}).enable("linkify").enable("table")


def _gfm(text: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(text)


def _text_of(rendered: str) -> str:
    """The text a reader sees: tags dropped, entities decoded, outer whitespace trimmed."""
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def _tags(rendered: str) -> set[str]:
    return {m.lower() for m in re.findall(r"<\s*([a-zA-Z0-9]+)", rendered)}


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("render", [_gfm, _LINKIFY.render], ids=["cmark-gfm", "markdown-it"])
def test_no_link_and_the_same_text(text, render):
    rendered = render(md_escape(text))
    assert _tags(rendered) <= {"p", "code"}, rendered
    assert _text_of(rendered) == " ".join(text.split())


def test_in_a_table_cell_an_address_stays_in_its_cell():
    row = f"| {md_escape('a|b support@evil.example')} | {md_escape('www.x.example')} |"
    rendered = _gfm("| ua | host |\n|---|---|\n" + row + "\n")
    assert "<a" not in rendered
    cells = re.findall(r"<td>(.*?)</td>", rendered)
    assert [_text_of(c) for c in cells] == ["a|b support@evil.example", "www.x.example"]


_ALPHABET = st.sampled_from(
    list("abcwWxyz019 .:/@_-+|`*[]()<>!#&;=?~\\\"'\t\n\u202e")
    + ["http://", "www.", "https://", "@evil.com", "1."]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_any_text_renders_as_itself_without_links(text):
    rendered = _gfm(md_escape(text))
    assert "<a " not in rendered and "<img" not in rendered
    expected = " ".join(str(visible(text)).split())
    assert _text_of(rendered) == expected
