"""The published JSON Schema and the ledger's parser agree on every line of the fuzz corpus.

The schema side is what a third party does: read the line as standard JSON (UTF-8, RFC 8259;
no NaN/Infinity, duplicate keys: last one wins) and validate it with `jsonschema` against
`submission_json_schema()` as published. A line that is not a JSON document is schema-invalid.
The only allowed disagreements are the rules JSON Schema cannot express
(`NOT_IN_JSON_SCHEMA`), each recognised here by the parser's reason.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import date
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ledger.schemas.catalogue import NOT_IN_JSON_SCHEMA
from ledger.schemas.submissions import (
    InvalidSubmissionError,
    parse_submission,
    submission_json_schema,
)
from tests.fuzz.corpus import mutate, read_corpus, valid_envelopes

MAX_SECONDS_PER_LINE = 1.0


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(submission_json_schema())


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _big_int(literal: str) -> Any:
    return int(literal) if len(literal) <= 4000 else float(literal)


def schema_accepts(raw: bytes) -> bool:
    """A standard reader plus the published schema, as an integrator's validator would do."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_no_constants, parse_int=_big_int)
    except (ValueError, RecursionError):
        return False
    return bool(_validator().is_valid(document))


def ledger_verdict(
    raw: bytes | str, recorded_on: date | None = None
) -> InvalidSubmissionError | None:
    """None when the parser accepts, else its error; any other exception fails the test."""
    try:
        parse_submission(raw, recorded_on=recorded_on)
    except InvalidSubmissionError as error:
        return error
    return None


def allowed_class(error: InvalidSubmissionError) -> str | None:
    """Which rule JSON Schema cannot express made the parser refuse, if any."""
    if error.reason_code.value in NOT_IN_JSON_SCHEMA:
        return error.reason_code.value
    if "lesion ids must be unique" in error.message:
        return "LESION_ID_REPEATED"
    return None


def disagreements(
    lines: list[bytes], recorded_on: date | None = None
) -> tuple[Counter[str], list[tuple[int, bytes, str]]]:
    allowed: Counter[str] = Counter()
    unexplained: list[tuple[int, bytes, str]] = []
    for number, raw in enumerate(lines, start=1):
        started = time.perf_counter()
        error = ledger_verdict(raw, recorded_on)
        elapsed = time.perf_counter() - started
        assert elapsed < MAX_SECONDS_PER_LINE, f"line {number} took {elapsed:.2f} s"
        accepted = schema_accepts(raw)
        if accepted == (error is None):
            continue
        why = allowed_class(error) if error is not None else None
        if why is not None:
            allowed[why] += 1
        else:
            verdict = "ledger accepts, schema refuses" if error is None else str(error)
            unexplained.append((number, raw[:200], verdict))
    return allowed, unexplained


def test_the_published_schema_is_a_valid_2020_12_document() -> None:
    """`jsonschema` takes the published document as it is (meta-schema check passes)."""
    Draft202012Validator.check_schema(submission_json_schema())
    for kind in {doc["type"] for doc in valid_envelopes()}:
        Draft202012Validator.check_schema(submission_json_schema(kind))


def test_the_corpus_holds_every_valid_type_and_hostile_case() -> None:
    """The stored corpus has the valid lines of every type and version and is mostly refused."""
    lines = read_corpus()
    verdicts = [ledger_verdict(raw) for raw in lines]
    accepted = sum(verdict is None for verdict in verdicts)
    assert len(lines) > 1400
    assert len(valid_envelopes()) <= accepted < len(lines) / 2


def test_schema_and_ledger_agree_on_every_corpus_line() -> None:
    """Schema-valid ⇔ accepted, line by line, except the listed rules JSON Schema cannot say."""
    allowed, unexplained = disagreements(read_corpus())
    assert unexplained == []
    assert set(allowed) <= set(NOT_IN_JSON_SCHEMA) | {"LESION_ID_REPEATED"}


def test_recorded_day_is_the_only_new_disagreement_with_a_recorded_on() -> None:
    """With a recorded day, the only extra refusals are dates after it (OCCURRED_IN_FUTURE)."""
    lines = read_corpus()
    _, unexplained = disagreements(lines, recorded_on=date(2025, 3, 4))
    allowed, _ = disagreements(lines, recorded_on=date(2025, 3, 3))
    assert unexplained == []
    assert allowed["OCCURRED_IN_FUTURE"] > 0


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(valid_envelopes()),
    seed=st.integers(min_value=0, max_value=2**32),
    rounds=st.integers(min_value=1, max_value=3),
)
def test_mutated_submissions_get_a_verdict_both_sides_agree_on(
    base: dict[str, Any], seed: int, rounds: int
) -> None:
    """Any mutation of a valid submission: a message or an InvalidSubmissionError, as the schema
    says (or for a listed reason)."""
    rng = random.Random(seed)
    raw = mutate(base, rng)
    for _ in range(rounds - 1):
        try:
            raw = mutate(json.loads(raw), rng)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            break
    allowed, unexplained = disagreements([raw])
    assert unexplained == []
    assert set(allowed) <= set(NOT_IN_JSON_SCHEMA) | {"LESION_ID_REPEATED"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(document=json_values, garbage=st.binary(max_size=64))
def test_any_json_or_bytes_gets_a_verdict(document: Any, garbage: bytes) -> None:
    """Random JSON values and random bytes never raise anything but InvalidSubmissionError."""
    text = json.dumps(document)
    for raw in (text, text.encode(), garbage, garbage.decode("latin-1")):
        error = ledger_verdict(raw)
        message = error.message if error is not None else "accepted"
        assert message
        assert "\n" not in message


@pytest.mark.parametrize("name", sorted(NOT_IN_JSON_SCHEMA), ids=lambda name: f"listed: {name}")
def test_each_listed_disagreement_names_a_real_reason(name: str) -> None:
    """Every listed class is a reason code the parser gives, or the lesion-uniqueness rule."""
    from ledger.aggregates.rejections import ReasonCode

    assert name in ReasonCode.__members__ or name == "LESION_ID_REPEATED"
