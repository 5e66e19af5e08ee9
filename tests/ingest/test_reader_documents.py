"""Sniffing whole records within a byte bound, and cutting JSON documents into records.

`reader.sniff` hands the sniffers lines, or a JSON document's records as compact JSON;
`documents.Records` cuts a document fed piece by piece (as `read_json_document` feeds it) into
the same records, whatever the pieces; `read_json_document` streams it chunk by chunk.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.ingest import decompress, documents, reader
from forensics.ingest.decompress import Limits, ReadEnd
from tests.ingest.test_kong import kong_record

KONG = kong_record()


def write(tmp_path: Path, text: str, name: str = "x.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- sniff: which files are documents, and what the sniffers get ------------------------------


def test_json_lines_stay_lines(tmp_path):
    text = "".join(json.dumps(kong_record(**{"request.id": str(i)})) + "\n" for i in range(30))
    head = reader.sniff(write(tmp_path, text))
    assert not head.document and head.cut is None
    assert head.lines == text.splitlines()[:20]
    batches = json.dumps([KONG, KONG]) + "\n" + json.dumps([KONG]) + "\n"  # an array a line
    head = reader.sniff(write(tmp_path, batches))
    assert not head.document and head.lines == batches.splitlines()


@pytest.mark.parametrize(
    "first",
    [
        '{"started_at": 1767225600123, "client_ip": "198.51',  # cut off
        '{"started_at": 1767225600123} {"client_ip": "198.51.100.7"',  # two on a line
    ],
)
def test_json_lines_with_a_broken_first_line_stay_lines(tmp_path, first):
    text = first + "\n" + json.dumps(KONG) + "\n"
    head = reader.sniff(write(tmp_path, text))
    assert not head.document
    assert head.lines == text.splitlines()


@pytest.mark.parametrize("lines", [3, 30_000], ids=["small", "over-the-bound"])
def test_a_text_log_starting_with_a_bracket_stays_lines(tmp_path, lines):
    line = '[2026-01-01 10:00:00] 203.0.113.7 "POST /v1/chat/completions" 200 {"model": "gpt-4o"}'
    head = reader.sniff(write(tmp_path, (line + "\n") * lines, "app.log"))
    assert not head.document and head.cut is None
    assert head.lines == [line] * min(lines, 20)
    long_line = "[" + "x" * 2_000_000  # one line, longer than the bound: no JSON message
    head = reader.sniff(write(tmp_path, long_line, "one.log"))
    assert head.cut == "the first record does not end within the first 1.0 MiB read"


def test_a_pretty_printed_array_gives_its_elements(tmp_path):
    records = [kong_record(**{"request.id": str(i)}) for i in range(25)]
    head = reader.sniff(write(tmp_path, json.dumps(records, indent=2)))
    assert head.document and head.complete
    assert head.lines == [compact(r) for r in records[:20]]  # at most 20 records


def test_pretty_printed_objects_one_after_another_and_the_wrapped_layout(tmp_path):
    jq = "".join(json.dumps(r, indent=4) + "\n" for r in (KONG, KONG))
    head = reader.sniff(write(tmp_path, jq))
    assert head.document and head.lines == [compact(KONG)] * 2
    wrapped = "[" + json.dumps(KONG) + "\n," + json.dumps(KONG) + "\n]\n"
    head = reader.sniff(write(tmp_path, wrapped))
    assert head.document and head.lines == [compact(KONG)] * 2


def test_a_document_broken_at_the_start_is_still_a_document(tmp_path):
    text = "[\n  {\n    oops\n  }\n]\n"
    head = reader.sniff(write(tmp_path, text))
    assert head.document  # loaded as one, its break quarantined with its line
    assert head.lines == ["[", "  {", "    oops", "  }", "]"]  # the sniffers get the lines


def test_sniffing_reads_a_bounded_prefix_and_says_when_no_record_ends_in_it(tmp_path):
    big = {"a": 1, "b": [1, 2, {"c": "x" * 100}], "d": {"e": "y" * 2_000_000}, "f": 2}
    path = write(tmp_path, json.dumps(big, indent=2))
    head = reader.sniff(path, max_bytes=64 * 1024)
    assert head.content_bytes <= 1024 * 1024 and not head.complete  # one block at most
    assert head.document
    assert head.cut == "no JSON record ends within the first 64.0 KiB read"
    assert json.loads(head.lines[0]) == {"a": 1, "b": [1, 2, {"c": "x" * 100}], "d": {}}
    text = write(tmp_path, "z" * 3_000_000, "line.log")
    head = reader.sniff(text, max_bytes=64 * 1024)
    assert not head.document
    assert head.cut == "the first record does not end within the first 64.0 KiB read"
    assert [len(line) for line in head.lines] == [64 * 1024]


def test_a_long_first_line_of_complete_records_gives_them(tmp_path):
    """A one-line array longer than the bound: the elements that end in it are the records
    (it loads one line at a time, as JSON lines do)."""
    line = json.dumps([KONG] * 2000)
    head = reader.sniff(write(tmp_path, line + "\n"), max_bytes=64 * 1024)
    assert not head.document and head.cut is None
    assert head.lines == [compact(KONG)] * 20


# --- documents.Records: the same records whatever the pieces ----------------------------------


def items(parser: documents.Records, pieces: list[str]) -> list[tuple[int, str | None, str]]:
    got = []
    for i, piece in enumerate(pieces):
        for item in parser.feed(piece, final=i == len(pieces) - 1):
            got.append((item.line, item.record, item.reason))
    return got


DOC = (
    json.dumps(
        [{"n": 1, "s": "é\u2028", "x": [1.5, -2e3, True, None]}, 12345, "str"],
        indent=2,
        ensure_ascii=False,
    )
    + "\n"
    + json.dumps({"n": 2}, indent=2)
    + "\n[ ]\n"
    + json.dumps({"n": 3})
    + "\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(DOC)])
def test_records_are_the_same_whatever_the_pieces(size):
    pieces = [DOC[i : i + size] for i in range(0, len(DOC), size)]
    got = items(documents.Records(max_chars=10_000), pieces)
    assert got == [
        (2, compact({"n": 1, "s": "é\u2028", "x": [1.5, -2e3, True, None]}), ""),
        (12, "12345", ""),
        (13, '"str"', ""),
        (15, '{"n":2}', ""),
        (19, '{"n":3}', ""),
    ]


def test_damage_is_reported_at_once_not_after_reading_on():
    parser = documents.Records(max_chars=10_000)
    text = '[\n  {"a": 1},\n  {"a": 2 "b": 3},\n  {"a": 4},\n'  # the array goes on
    got = list(parser.feed(text))
    assert [(i.line, i.record, i.reason) for i in got] == [
        (2, '{"a":1}', ""),
        (3, None, "JSON array element does not parse: Expecting ',' delimiter (line 3)"),
    ]
    assert parser.stopped and list(parser.feed("  {}\n]\n", final=True)) == []


def test_a_record_over_the_limit_ends_the_document_whatever_the_pieces():
    text = '[{"b": 1}, {"a": "0123456789012345678901234"}, {"b": 2}]'
    reason = (
        "record is longer than 20 bytes (--max-record-bytes): not loaded;"
        " the rest of the JSON document is not read"
    )
    for pieces in ([text], [text[:20], text[20:]], [text[:40], text[40:]]):
        got = items(documents.Records(max_chars=20), pieces)
        assert got == [(1, '{"b":1}', ""), (1, None, reason)]


def test_an_unclosed_array_is_noticed_and_a_number_at_its_cut_is_not_taken():
    parser = documents.Records(max_chars=100)
    assert items(parser, ['[{"a": 1},\n']) == [(1, '{"a":1}', "")]
    assert parser.unclosed
    for cut in ("[1,\n 2.5", "[1,\n 2.5e"):  # 2.5e7 cut short is no 2.5
        got = items(documents.Records(max_chars=100), [cut])
        reason = "JSON array element does not parse: a number cut short (line 2)"
        assert got == [(1, "1", ""), (2, None, reason)]


# --- read_json_document: streamed, chunk by chunk -----------------------------------------------


def test_a_large_document_streams_in_chunks_with_its_lines(tmp_path):
    records = [kong_record(**{"request.id": f"r{i}"}) for i in range(3000)]
    text = json.dumps(records, indent=2) + "\n"
    path = write(tmp_path, text)
    assert path.stat().st_size > 2 * 1024 * 1024  # more than one block of the reader
    end = ReadEnd()
    chunks = list(reader.read_json_document(path, end, chunk_bytes=256 * 1024))
    assert len(chunks) > 4
    got = [line for c in chunks if c.data for line in bytes(c.data).decode().split("\n")]
    assert got == [compact(r) for r in records]
    starts = [i for i, line in enumerate(text.splitlines(), 1) if line == "  {"]
    assert [n for c in chunks for n in c.line_numbers or []] == starts
    assert not any(c.bad_lines for c in chunks) and end.problem is None
    assert end.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert end.next_line == len(text.splitlines()) + 1


def test_after_damage_the_file_is_still_read_to_the_end(tmp_path):
    head = '[\n  {"a": 1},\n  {"a": oops},\n'
    text = head + "".join(f'  {{"n": {i}}},\n' for i in range(200_000)) + "]\n"
    path = write(tmp_path, text)
    end = ReadEnd(limits=Limits(max_record_bytes=1024))
    chunks = list(reader.read_json_document(path, end))
    assert [bytes(c.data) for c in chunks if c.data] == [b'{"a":1}']
    assert [b[:2] for c in chunks for b in c.bad_lines] == [
        (3, "JSON array element does not parse: Expecting value (line 3)")
    ]
    assert end.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert end.raw_bytes == len(text.encode())
    assert end.next_line == len(text.splitlines()) + 1


def test_invalid_utf8_lines_and_an_unclosed_array(tmp_path):
    """A line that is not UTF-8 is quarantined as such and read as blank: a record on it goes
    with it, one it is part of breaks the document there."""
    path = tmp_path / "x.json"
    path.write_bytes(b'[\n  {"a": 1},\n  {"b": "\xff"},\n  {"c": 3}\n')
    end = ReadEnd()
    [chunk] = reader.read_json_document(path, end)
    assert bytes(chunk.data) == b'{"a":1}\n{"c":3}' and chunk.line_numbers == [2, 4]
    assert [line_reason[:2] for line_reason in chunk.bad_lines] == [(3, "invalid UTF-8 at byte 9")]
    assert (end.problem, end.next_line) == ("JSON array is not closed (file cut off?)", 5)
    path.write_bytes(b'[\n  {"a": 1,\n   "b": "\xff"},\n  {"c": 3}\n]\n')
    end = ReadEnd()
    [chunk] = reader.read_json_document(path, end)
    assert bytes(chunk.data) == b""
    assert [(line, reason.split(":")[0]) for line, reason, _ in chunk.bad_lines] == [
        (2, "JSON array element does not parse"),
        (3, "invalid UTF-8 at byte 9"),
    ]
    assert end.problem is None  # the break ends the document; nothing is said twice


# --- the same, for any document ----------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[str, list[object]]:
    records = draw(st.lists(_VALUES, max_size=6))
    indent = draw(st.sampled_from([None, 0, 1, 2, 4]))
    ascii_only = draw(st.booleans())
    if draw(st.booleans()):
        text = json.dumps(records, indent=indent, ensure_ascii=ascii_only)
    else:  # objects one after another, as `jq .` prints them (a number cut short at the end of
        # the file would read as another number: top-level values are records as they come)
        records = [r for r in records if isinstance(r, dict)]
        text = "\n".join(json.dumps(r, indent=indent, ensure_ascii=ascii_only) for r in records)
    return text, records


@settings(max_examples=300, deadline=None, database=None)
@given(document=_documents(), data=st.data())
def test_any_document_gives_its_records_in_any_pieces_and_a_prefix_when_cut(document, data):
    text, records = document
    want = [compact(r) for r in records]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    parser = documents.Records(max_chars=len(text) + 1)
    got = items(parser, pieces)
    assert [record for _, record, _ in got] == want
    assert not parser.stopped and not parser.unclosed
    cut = data.draw(st.integers(0, len(text)))  # a file cut off: never an exception
    parser = documents.Records(max_chars=len(text) + 1)
    got = items(parser, [text[:cut]])
    loaded = [record for _, record, _ in got if record is not None]
    assert loaded == want[: len(loaded)]
    assert len(got) - len(loaded) <= 1  # the break, said once
    lead = documents.leading(text[:cut], whole=False, limit=50)
    assert lead.records == want[: len(lead.records)]


@settings(max_examples=150, deadline=None, database=None)
@given(
    records=st.lists(st.dictionaries(st.text(max_size=4), _VALUES, max_size=3), max_size=5),
    block=st.integers(1, 64),
    limit=st.integers(8, 400),
)
def test_the_file_reader_agrees_with_the_parser_whatever_the_blocks(records, block, limit):
    """Blocks of a few bytes split lines and UTF-8 characters; lines over the record limit are
    cut at character boundaries: the records are those of the text parsed whole."""
    text = json.dumps(records, indent=1, ensure_ascii=False) + "\n"
    want = list(documents.Records(max_chars=limit).feed(text, final=True))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.json"
        path.write_text(text, encoding="utf-8")
        end = ReadEnd(limits=Limits(max_record_bytes=limit))
        with mock.patch.object(decompress, "RAW_BLOCK", block):
            chunks = list(reader.read_json_document(path, end, chunk_bytes=50))
    got_records = [line for c in chunks if c.data for line in bytes(c.data).decode().split("\n")]
    assert got_records == [i.record for i in want if i.record is not None]
    assert [n for c in chunks for n in c.line_numbers or []] == [
        i.line for i in want if i.record is not None
    ]
    bad = [(line, reason) for c in chunks for line, reason, _ in c.bad_lines]
    assert bad == [(i.line, i.reason) for i in want if i.record is None]
    assert end.raw_bytes == len(text.encode())


def test_a_lone_surrogate_escape_is_written_back_as_it_was(tmp_path):
    path = write(tmp_path, '[\n  {"id": "a\\ud800b"},\n  {"id": "\\u00e9"}\n]\n')
    [chunk] = reader.read_json_document(path, ReadEnd())
    assert bytes(chunk.data) == '{"id":"a\\ud800b"}\n{"id":"é"}'.encode()
