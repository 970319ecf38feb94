"""Bytes of one submission to a JSON value, within explicit limits, or one reason why not.

Whatever arrives (any bytes, any text), `read_json` returns a value or raises
`UnreadableSubmissionError`; nothing else. The limits are what a submission could ever need, with
a wide margin: an envelope is a few hundred bytes and four levels deep.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ledger.aggregates.rejections import ReasonCode
from ledger.schemas.values import UUID_BODY, show

MAX_SUBMISSION_BYTES = 64 * 1024
MAX_DEPTH = 16  # nested arrays/objects; a valid envelope needs 5
MAX_NUMBER_CHARS = 100  # characters of one number literal

_BOM = b"\xef\xbb\xbf"
_EVENT_ID = re.compile(r'"event_id"[ \t\r\n]*:[ \t\r\n]*"(' + UUID_BODY + ')"')
_STRUCTURE = re.compile(r'["\\\[\]{}]')


class UnreadableSubmissionError(Exception):
    """Input that is not one JSON document within the limits."""

    def __init__(self, reason_code: ReasonCode, message: str, event_id: str | None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.event_id = event_id


class _RefusedError(Exception):
    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def sniff_event_id(raw: bytes | str) -> str | None:
    """The event_id of a submission that cannot be read whole, when one is plainly there."""
    head = raw[:4096]
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    found = _EVENT_ID.search(text)
    return found.group(1) if found else None


def read_json(raw: bytes | str) -> Any:
    """One JSON document from `raw`, checked against the limits above."""
    try:
        return _read(raw)
    except _RefusedError as refused:
        raise UnreadableSubmissionError(
            refused.reason_code, refused.message, sniff_event_id(raw)
        ) from None


def _read(raw: bytes | str) -> Any:
    if not isinstance(raw, bytes | str):
        raise _RefusedError(ReasonCode.INVALID_JSON, f"not bytes or text but {type(raw).__name__}")
    if len(raw) > MAX_SUBMISSION_BYTES:  # a character is at least one byte
        raise _RefusedError(
            ReasonCode.TOO_LARGE,
            f"over {MAX_SUBMISSION_BYTES} bytes; a submission is at most {MAX_SUBMISSION_BYTES}",
        )
    text = _text(raw)
    if not text.strip(" \t\r\n"):
        raise _RefusedError(ReasonCode.INVALID_JSON, "empty: no JSON document")
    _check_depth(text)
    try:
        return _DECODER.decode(text)
    except _RefusedError:
        raise
    except json.JSONDecodeError as error:
        raise _RefusedError(
            ReasonCode.INVALID_JSON,
            f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except (ValueError, RecursionError) as error:
        raise _RefusedError(
            ReasonCode.INVALID_JSON, f"not valid JSON: {show(str(error), 80)}"
        ) from None


def _text(raw: bytes | str) -> str:
    """UTF-8 text with no byte order mark; a str holding lone surrogates is not text."""
    if isinstance(raw, str):
        try:
            encoded = raw.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _RefusedError(
                ReasonCode.INVALID_TEXT,
                f"not Unicode text: a lone surrogate {show(raw[error.start])} at {error.start}",
            ) from None
    else:
        encoded = raw
    if len(encoded) > MAX_SUBMISSION_BYTES:
        raise _RefusedError(
            ReasonCode.TOO_LARGE,
            f"{len(encoded)} bytes; a submission is at most {MAX_SUBMISSION_BYTES} bytes",
        )
    if encoded.startswith(_BOM):
        raise _RefusedError(
            ReasonCode.INVALID_TEXT, "starts with a byte order mark; send plain UTF-8"
        )
    try:
        return encoded.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = encoded[error.start : error.start + 1]
        raise _RefusedError(
            ReasonCode.INVALID_TEXT, f"not UTF-8: byte {error.start} is {show(bad)}"
        ) from None


def _check_depth(text: str) -> None:
    """Refuse deep nesting before the recursive parser sees it (one linear pass)."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return  # not enough openings, in strings or out, to nest too deep: no walk needed
    depth = 0
    in_string = False
    escaped_at = -1
    for mark in _STRUCTURE.finditer(text):
        char, at = mark.group(), mark.start()
        if at == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _RefusedError(
                    ReasonCode.TOO_DEEP, f"nested more than {MAX_DEPTH} levels deep"
                )
        elif char in "]}":
            depth -= 1


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _RefusedError(ReasonCode.DUPLICATE_KEY, f"the key {show(key)} appears twice")
        document[key] = value
    return document


def _constant(name: str) -> Any:
    raise _RefusedError(ReasonCode.INVALID_JSON, f"not valid JSON: {name} is not a JSON number")


def _integer(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _RefusedError(
            ReasonCode.NUMBER_TOO_LONG,
            f"a number of {len(literal)} characters; at most {MAX_NUMBER_CHARS}",
        )
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _RefusedError(
            ReasonCode.NUMBER_TOO_LONG,
            f"a number of {len(literal)} characters; at most {MAX_NUMBER_CHARS}",
        )
    value = float(literal)
    if not math.isfinite(value):
        raise _RefusedError(
            ReasonCode.SCHEMA_INVALID, f"the number {show(literal)} is out of range"
        )
    return value


# One decoder for every submission (what `json.loads` would build afresh for each, given hooks);
# it keeps no state between documents. `_text` has refused a byte order mark, the one thing
# `json.loads` checks before decoding.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_constant=_constant,
    parse_int=_integer,
    parse_float=_float,
)
