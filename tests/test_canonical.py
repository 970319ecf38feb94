"""RFC 8785 canonical bytes: the published JCS vectors; one-line errors for what JCS cannot hold."""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit.canonical import MAX_SAFE_INTEGER, canonical_bytes

FIXTURES = Path(__file__).parent / "fixtures" / "rfc8785"
STRUCTURAL = ("arrays", "french", "structures", "unicode", "values", "weird")
FIRST_1000_SHA256 = "be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687"


def _published_checksums() -> dict[int, str]:
    """Lines → SHA-256 of the ES6 number file's prefix, from the data set's own README table."""
    text = (FIXTURES / "testdata-README.md").read_text()
    rows = re.findall(r"^\| ([0-9a-f]{64}) \| (\d+)\s+\|", text, re.MULTILINE)
    return {int(lines): digest for digest, lines in rows}


def _double(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def _es6_inputs() -> Iterator[int]:
    """The IEEE-754 bit patterns of es6testfile100m.txt, generated as its README's numgen.js."""
    text = (FIXTURES / "testdata-README.md").read_text()
    table = text[text.index("staticU64s = new BigUint64Array([") :]
    table = table[: table.index("])")]
    yield from (int(h, 16) for h in re.findall(r"0x([0-9a-f]+)n", table))
    yield from (0x0010000000000000 + i for i in range(2000))
    block, data = bytes(32), b""
    while True:
        value = 0.0
        while value == 0.0 or not math.isfinite(value):
            if not data:
                block = hashlib.sha256(block).digest()
                data = block
            value = struct.unpack("<d", data[:8])[0]
            data = data[8:]
        yield struct.unpack("<Q", struct.pack("<d", value))[0]


@pytest.mark.parametrize("name", STRUCTURAL)
def test_structural_vectors_canonicalise_to_the_published_bytes(name: str) -> None:
    """Each cyberphone input, parsed and canonicalised, is byte-identical to its output file."""
    value = json.loads((FIXTURES / "input" / f"{name}.json").read_bytes())
    assert canonical_bytes(value) == (FIXTURES / "output" / f"{name}.json").read_bytes()


def test_the_number_fixture_is_the_published_prefix_of_the_es6_test_file() -> None:
    """The committed 1,000 number lines hash to the checksum the data set publishes for them."""
    data = (FIXTURES / "es6testfile-first-1000.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == FIRST_1000_SHA256 == _published_checksums()[1000]
    assert data.count(b"\n") == 1000


def test_every_es6_number_line_serialises_as_published() -> None:
    """Each `hex-ieee,expected` line: the double with those bits canonicalises to `expected`."""
    wrong = []
    for line in (FIXTURES / "es6testfile-first-1000.txt").read_text().splitlines():
        bits, expected = line.split(",")
        got = canonical_bytes(_double(int(bits, 16))).decode()
        if got != expected:
            wrong.append(f"{bits}: {got} != {expected}")
    assert not wrong, wrong[:5]


def test_the_first_100000_generated_numbers_match_the_published_checksum() -> None:
    """Regenerating 100,000 lines with canonical_bytes reproduces the published file's SHA-256."""
    digest = hashlib.sha256()
    for count, bits in enumerate(_es6_inputs(), start=1):
        digest.update(f"{bits:x},{canonical_bytes(_double(bits)).decode()}\n".encode())
        if count == 100_000:
            break
    assert digest.hexdigest() == _published_checksums()[100_000]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(-0.0, b"0", id="negative zero is 0"),
        pytest.param(3.0, b"3", id="an integral float drops its .0"),
        pytest.param(1e21, b"1e+21", id="1e21 switches to exponent form"),
        pytest.param(1e20, b"100000000000000000000", id="1e20 is written out"),
        pytest.param(1e-7, b"1e-7", id="1e-7 switches to exponent form"),
        pytest.param(0.000001, b"0.000001", id="1e-6 is written out"),
        pytest.param(MAX_SAFE_INTEGER, b"9007199254740991", id="largest safe integer"),
        pytest.param(-MAX_SAFE_INTEGER, b"-9007199254740991", id="smallest safe integer"),
        pytest.param(2**53, b"9007199254740992", id="2**53 is a double: written as one"),
        pytest.param([-(2**53) - 2], b"[-9007199254740994]", id="-(2**53) - 2 is a double"),
        pytest.param(10**16, b"10000000000000000", id="10**16 prints back as itself"),
        pytest.param(33882327968470790, b"33882327968470790", id="a large integer a double prints"),
        pytest.param({"b": [], "a": {}}, b'{"a":{},"b":[]}', id="keys sorted, empty containers"),
        pytest.param(("x", None, True), b'["x",null,true]', id="a tuple is an array"),
        pytest.param(
            {"\u20ac": 1, "\U0001f602": 2, "\ufb33": 3},
            '{"\u20ac":1,"\U0001f602":2,"\ufb33":3}'.encode(),
            id="keys sort by UTF-16 code units, not code points",
        ),
        pytest.param("\u007f\u001f", b'"\x7f\\u001f"', id="only controls below 0x20 are escaped"),
    ],
)
def test_rfc8785_rules_row_by_row(value: object, expected: bytes) -> None:
    """Each JCS rule (ECMAScript numbers, UTF-16 key order, minimal escaping) gives these bytes."""
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    ("value", "where"),
    [
        pytest.param(float("nan"), "$: nan", id="NaN"),
        pytest.param({"data": {"dose_mg": float("inf")}}, "$.data.dose_mg: inf", id="infinity"),
        pytest.param([2**53 + 1], "$[0]: integer beyond 2**53", id="2**53 + 1 is no double"),
        pytest.param({"n": -(2**53) - 1}, "$.n: integer beyond", id="-(2**53) - 1 is no double"),
        pytest.param(10**21, "$: integer beyond", id="10**21 would print as 1e+21"),
        pytest.param(33882327968470792, "$: integer beyond", id="its double prints ...790"),
        pytest.param(10**400, "$: integer beyond", id="an integer beyond the double range"),
        pytest.param(10**5000, "$: integer beyond", id="an integer too long to print"),
        pytest.param({1: "x"}, "$: object key 1 is not a string", id="non-string key"),
        pytest.param(
            {"s": "a\ud800b"}, "$.s: lone surrogate U+D800", id="lone surrogate in a value"
        ),
        pytest.param({"\udc00": 1}, "lone surrogate U+DC00", id="lone surrogate in a key"),
        pytest.param({"a b": [b"x"]}, "$['a b'][0]: bytes is not a JSON value", id="bytes"),
        pytest.param({"when": {1, 2}}, "$.when: set is not a JSON value", id="set"),
    ],
)
def test_what_jcs_cannot_represent_raises_a_one_line_value_error(value: object, where: str) -> None:
    """What JCS cannot represent raises a one-line ValueError naming the place and the reason."""
    with pytest.raises(ValueError, match="cannot canonicalise JSON") as caught:
        canonical_bytes(value)
    message = str(caught.value)
    assert where in message
    assert "\n" not in message
    assert len(message) < 200


def test_nesting_too_deep_is_a_value_error_not_a_recursion_error() -> None:
    """A value nested beyond the interpreter's recursion limit is refused with a ValueError."""
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nesting too deep"):
        canonical_bytes(deep)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_canonical_bytes_are_a_fixed_point_of_a_json_round_trip(value: object) -> None:
    """Parsing canonical bytes and canonicalising again gives the same bytes, as a verifier does."""
    first = canonical_bytes(value)
    assert canonical_bytes(json.loads(first)) == first


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), max_size=8))
def test_key_insertion_order_does_not_change_the_bytes(value: dict[str, int]) -> None:
    """The same object built in any key order canonicalises to the same bytes."""
    reordered = dict(reversed(list(value.items())))
    assert canonical_bytes(reordered) == canonical_bytes(value)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**80), 2**80))
def test_an_accepted_integer_reads_back_as_itself(number: int) -> None:
    """An integer canonical_bytes accepts parses back to the same integer (no silent rounding)."""
    try:
        encoded = canonical_bytes(number)
    except ValueError:
        assert abs(number) > MAX_SAFE_INTEGER
        return
    assert json.loads(encoded) == number


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e17, max_value=1e17, allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@given(_json_values)
@settings(max_examples=3000, deadline=None)
def test_the_fast_path_writes_exactly_the_reference_serialisers_bytes(value: object) -> None:
    """Where the standard-library fast path answers, its bytes are rfc8785's; where it declines,
    canonical_bytes still gives rfc8785's bytes (or the same refusal)."""
    from ledger.audit.canonical import _fast_canonical

    fast = _fast_canonical(value)
    try:
        reference: bytes | None = rfc8785.dumps(cast(Any, value))
    except (ValueError, RecursionError):
        reference = None
    if fast is not None:
        assert fast == reference


_SHAPE_KEYS = ("position", "type", "data", "reason", "odd {key}%s", "z")
_SHAPE_TEXTS = ("type", "reason", "odd {key}%s")


@given(
    st.fixed_dictionaries(
        {
            **dict.fromkeys(_SHAPE_KEYS, _json_values),
            **dict.fromkeys(_SHAPE_TEXTS, st.none() | st.text() | _json_values),
        }
    ),
    st.sampled_from([None, "leaf_hash"]),
    st.dictionaries(st.sampled_from(["leaf_hash", "extra", "type"]), _json_values, max_size=2),
    st.sets(st.sampled_from(_SHAPE_KEYS), max_size=1),
)
@settings(max_examples=1500, deadline=None)
def test_a_canonical_shape_writes_exactly_the_reference_serialisers_bytes(
    members: dict[str, object], ignored: str | None, changes: dict[str, object], dropped: set[str]
) -> None:
    """CanonicalShape (the template path of entries and checkpoints) gives rfc8785's bytes of the
    object without its ignored key, whatever its members, and refuses what rfc8785 refuses; an
    object with missing or extra keys goes the general way to the same bytes."""
    from ledger.audit.canonical import CanonicalShape

    shape = CanonicalShape(_SHAPE_KEYS, texts=_SHAPE_TEXTS, ignored=ignored)
    value: dict[str, Any] = {
        k: v for k, v in {**members, **changes}.items() if k not in dropped
    }
    try:
        reference: bytes | None = rfc8785.dumps({k: v for k, v in value.items() if k != ignored})
    except (ValueError, RecursionError):
        reference = None
    try:
        written: bytes | None = shape.dumps(value)
    except ValueError:
        written = None
    if reference is not None:
        assert written == reference
    elif written is not None:  # canonical_bytes also takes large integers a double carries
        assert written == canonical_bytes({k: v for k, v in value.items() if k != ignored})


def test_a_canonical_shape_writes_entries_by_the_template() -> None:
    """The usual entry takes the template path (no fallback), with the reference bytes."""
    from ledger.audit.sealing import _ENTRY_SHAPE

    entry: dict[str, Any] = {
        "position": 7, "type": "fruquintinib.dosed", "trial_id": "NCT05406206",
        "recorded_at": "2025-03-04T09:00:00.000000Z", "subject_id": "01-003",
        "occurred_on": "2025-03-04", "event_id": "e\u00e9\n\"", "source": "edc", "entered_by": None,
        "reason": None, "data": {"dose_mg": 5.0, "b": [1.5, True, {"z": 1, "a": None}]},
        "leaf_hash": "00" * 32,
    }
    assert _ENTRY_SHAPE._fast_text(entry) is not None
    assert _ENTRY_SHAPE.dumps(entry) == rfc8785.dumps(
        {k: v for k, v in entry.items() if k != "leaf_hash"}
    )
