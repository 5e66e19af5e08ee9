"""JSON documents: the records of a file that is not one JSON value per line.

A document is a JSON array of records (Kong http-log batches, a `jq -s` dump, Logpush's
wrapped output), one record pretty-printed (as vendors' docs show one), or several in a row
(`jq .` output). Its records are its top-level values, and the elements of a top-level array.
Each is handed on as one line of compact JSON with the line where it starts: what adapters and
sniffers read for JSON lines.

`Records` cuts text fed piece by piece, holding no more than the record being read (at most
`max_chars` of it) beyond what it has handed on. A parse error close to the end of the text fed
so far may only mean the record goes on in the next piece; anywhere else it is damage, and the
rest of the document cannot be told apart into records: it is reported once and not read. So is
a record longer than `max_chars`, whether or not it ends in the text at hand (the pieces it
came in never change the outcome).
`leading` gives the first records of a prefix read for format detection and, when not one
ends within it, the complete part of the first (`partial`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

WHITE = " \t\r\n\ufeff"
_SEPARATORS = WHITE + ","  # between records (Logpush puts "," before each next one)
# A parse error this close to the end of the text may be the text ending mid-record (a number
# or literal cut short: "tr", "-", "1e"); an unterminated string is one wherever it starts.
_SLACK = 16
_RAW_CHARS = 2000  # text of a bad record kept for its quarantine entry
_MAX_DEPTH = 64  # nesting followed when taking the complete part of a cut record
_DECODER = json.JSONDecoder()
_NUMBER = "0123456789.eE+-"  # what may go on a number cut short


@dataclass
class Item:
    """A record (compact JSON) with its first line, or (record None) why it is not one."""

    line: int
    record: str | None
    reason: str = ""
    raw: str = ""


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _maybe_cut(error: json.JSONDecodeError, size: int) -> bool:
    """Whether a parse error may only mean the text ends before the value does."""
    return error.msg.startswith("Unterminated string") or error.pos >= size - _SLACK


def goes_on(line: str) -> bool:
    """Whether a line holds the start of a JSON value that goes on after it (a pretty-printed
    document's first line), not a whole value or a broken one."""
    try:
        _DECODER.raw_decode(line.lstrip(WHITE))
    except json.JSONDecodeError as e:
        return _maybe_cut(e, len(line.lstrip(WHITE)))
    except RecursionError:
        return False
    return False


class Records:
    """The records of a JSON document fed piece by piece (see the module docstring)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.stopped = False  # a record did not parse or was too long: the rest is not read
        self.unclosed = False  # the text ended inside a top-level array
        self._text = ""
        self._pos = 0  # where the next record (or separator) starts
        self._line = 1  # the line of _counted
        self._counted = 0
        self._in_array = False
        self._want = 0  # text needed after _pos before a cut record is tried again
        self._tail: list[str] = []  # text fed since, not yet joined to _text
        self._tail_chars = 0

    def feed(self, text: str, final: bool = False) -> Iterator[Item]:
        """The records that end in the text fed so far (`final`: all of it has been fed)."""
        if self.stopped:
            return
        self._tail.append(text)
        self._tail_chars += len(text)
        if not final and len(self._text) - self._pos + self._tail_chars < self._want:
            return  # a long record: join its pieces once there are enough to try again
        if self._pos:  # drop what has been handed on
            self._line += self._text.count("\n", self._counted, self._pos)
            self._text, self._pos, self._counted = self._text[self._pos :], 0, 0
        self._text += "".join(self._tail)
        self._tail, self._tail_chars = [], 0
        yield from self._parse(final)

    def _line_at(self, pos: int) -> int:
        self._line += self._text.count("\n", self._counted, pos)
        self._counted = pos
        return self._line

    def _parse(self, final: bool) -> Iterator[Item]:
        text, size = self._text, len(self._text)
        pos = self._pos
        while True:
            while pos < size and text[pos] in _SEPARATORS:
                pos += 1
            self._pos = pos
            if pos >= size:
                self.unclosed = final and self._in_array
                return
            if text[pos] == "]" and self._in_array:
                self._in_array, pos = False, pos + 1
                continue
            if text[pos] == "[" and not self._in_array:
                self._in_array, pos = True, pos + 1
                continue
            if not final and size - pos < self._want:
                return  # the record is cut: wait for more text
            what = "JSON array element" if self._in_array else "JSON value"
            try:
                value, after = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError as e:
                cut = not final and _maybe_cut(e, size)
                if cut and size - pos <= self.max_chars:
                    self._want = 2 * (size - pos)
                    return
                self.stopped = True
                line = self._line_at(pos)
                if cut:
                    yield Item(line, None, self._too_long(), text[pos : pos + _RAW_CHARS])
                else:
                    reason = f"{what} does not parse: {e.msg} (line {self._line_at(e.pos)})"
                    yield Item(line, None, reason, text[pos : pos + _RAW_CHARS])
                return
            except RecursionError:
                self.stopped = True
                reason = f"{what} is nested too deeply to read"
                yield Item(self._line_at(pos), None, reason, text[pos : pos + _RAW_CHARS])
                return
            if text[pos] not in '{["' and (after >= size or text[after] in _NUMBER):
                if not final:
                    self._want = size - pos + 1  # a number may go on in the next piece
                    return
                if after < size or self._in_array:  # "1.5e" or "[1.5": a number cut short
                    self.stopped, line = True, self._line_at(pos)
                    reason = f"{what} does not parse: a number cut short (line {line})"
                    yield Item(line, None, reason, text[pos : pos + _RAW_CHARS])
                    return
            self._want = 0
            if after - pos > self.max_chars:  # as if it had not ended within the limit
                self.stopped = True
                yield Item(self._line_at(pos), None, self._too_long(), text[pos : pos + _RAW_CHARS])
                return
            item = Item(self._line_at(pos), compact(value))
            pos = self._pos = after
            yield item

    def _too_long(self) -> str:
        return (
            f"record is longer than {self.max_chars:,} bytes (--max-record-bytes): not loaded;"
            " the rest of the JSON document is not read"
        )

    def partial(self) -> str | None:
        """The complete part of the cut record the text fed so far ends in (compact JSON), or
        None (no such record, or not an object or array)."""
        if self.stopped or self._pos >= len(self._text):
            return None
        try:
            value = _complete_part(self._text, self._pos, 0)
        except RecursionError:
            return None
        return compact(value) if value else None


def _complete_part(text: str, pos: int, depth: int) -> dict[str, object] | list[object] | None:
    """An object with its members, or an array with its elements, that end before the text
    does; a member or element cut off is reduced the same way. None for a cut scalar."""
    opener = text[pos]
    if opener not in "[{" or depth > _MAX_DEPTH:
        return None
    members: dict[str, object] = {}
    elements: list[object] = []
    size, pos = len(text), pos + 1
    while True:
        while pos < size and text[pos] in _SEPARATORS:
            pos += 1
        if pos >= size or text[pos] in "]}":
            break
        if opener == "{":
            key, pos = _member_name(text, pos)
            if key is None:
                break
        cut = False
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            value, cut = _complete_part(text, pos, depth + 1) if pos < size else None, True
        if cut and value is None:
            break
        if opener == "{":
            members[str(key)] = value
        else:
            elements.append(value)
        if cut:
            break
    return members if opener == "{" else elements


def _member_name(text: str, pos: int) -> tuple[str | None, int]:
    """The name of the object member at `pos` and where its value starts (None: cut off)."""
    try:
        key, pos = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError:
        return None, pos
    size = len(text)
    while pos < size and text[pos] in WHITE:
        pos += 1
    if not isinstance(key, str) or pos >= size or text[pos] != ":":
        return None, pos
    pos += 1
    while pos < size and text[pos] in WHITE:
        pos += 1
    return key, pos


@dataclass
class Leading:
    """The first records of a document's prefix (see `leading`)."""

    records: list[str]
    broken: bool  # a record does not parse (not merely cut off by the end of the text)
    partial: str | None  # no record ends in the text: the complete part of the first


def leading(text: str, whole: bool, limit: int) -> Leading:
    """The first `limit` records of a document's text (`whole`: the whole file)."""
    parser = Records(max_chars=len(text) + 1)
    records: list[str] = []
    broken = False
    for item in parser.feed(text, final=whole):
        if item.record is None:
            broken = True
            break
        records.append(item.record)
        if len(records) >= limit:
            break
    partial = None if records or broken or whole else parser.partial()
    return Leading(records, broken, partial)
