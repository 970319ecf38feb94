"""The value kinds of the envelope, each carrying its JSON Schema and its check together.

Every constructor here returns a `Value`: the JSON Schema 2020-12 fragment that the published
document uses and the function the parser runs, written side by side so the two cannot drift.
A check returns the value as the ledger stores it (numbers as float, integral floats as int,
text NFC-normalised) or raises `RuleViolationError` with a one-line message.

Regular expressions are written in the subset that Python's `re` and ECMA-262 (with the `u`
flag, as `ajv` uses by default) read the same way: no `\\d`, `\\s` or `\\w` (Unicode-aware in
Python, ASCII in JavaScript), and no `$` (in Python it also matches before a final newline):
a pattern ends with `(?![\\s\\S])`, "nothing follows".
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.aggregates.rejections import ReasonCode

END = r"(?![\s\S])"

# Identifiers (subject_id, ae_id, lesion_id, source, entered_by, trial_id, cohort): ASCII letters
# and digits, then also `.`, `_` and `-`; 1 to 64 characters. No spaces, no look-alikes.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}" + END

# event_id and target_event_id: a UUID in its canonical form, lowercase and hyphenated.
UUID_BODY = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UUID_PATTERN = "^" + UUID_BODY + END

_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
# Clinical dates: a real calendar day from 2000-01-01 to 2099-12-31, `YYYY-MM-DD`, no time part.
DATE_PATTERN = rf"^(?:20[0-9]{{2}}-{_MONTH_DAY}|20(?:[02468][048]|[13579][26])-02-29)" + END
# Birth dates: a real calendar day from 1900-01-01 to 2099-12-31.
BIRTH_DATE_PATTERN = (
    rf"^(?:(?:19|20)[0-9]{{2}}-{_MONTH_DAY}"
    rf"|(?:(?:19|20)(?:0[48]|[2468][048]|[13579][26])|2000)-02-29)" + END
)

# Characters free text may not hold: C0/C1 controls (NUL, tab, newline …), soft hyphen, Arabic
# letter mark, Mongolian vowel separator, zero-width and directional marks, line/paragraph
# separators, bidi embeddings/overrides/isolates, invisible operators, surrogates (a lone UTF-16
# half is not a character), private use, the BOM, interlinear annotations, the replacement
# character, non-characters, and the invisible tag characters (U+E0000–E007F).
_FORBIDDEN = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    r"\ud800-\udfff\ue000-\uf8ff\ufeff\ufff9-\uffff"
    "\U000e0000-\U000e007f"
)
# Space separators (Unicode Zs): allowed inside free text, not at its start or end.
_SPACES = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
TEXT_PATTERN = rf"^[^{_FORBIDDEN}{_SPACES}](?:[^{_FORBIDDEN}]*[^{_FORBIDDEN}{_SPACES}])?" + END
MAX_TEXT_CHARS = 200


class RuleViolationError(Exception):
    """A value that breaks a rule of the envelope; the message names where and why."""

    def __init__(self, message: str, reason_code: ReasonCode = ReasonCode.SCHEMA_INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.reason_code = reason_code


def show(value: object, limit: int = 40) -> str:
    """A value for a message: ASCII only (no control, bidi or surrogate reaches a terminal)."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


Check = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Value:
    """One kind of value: its JSON Schema fragment and the check that enforces the same rule."""

    schema: Mapping[str, Any]
    check: Check


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expect(kind: str, value: object, where: str) -> RuleViolationError:
    return RuleViolationError(f"{where}: must be {kind}, not {_json_type(value)}")


def boolean() -> Value:
    def check(value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise _expect("true or false", value, where)
        return value

    return Value({"type": "boolean"}, check)


def integer(minimum: int, maximum: int) -> Value:
    """A whole number in [minimum, maximum]; 3.0 is the integer 3 (as JSON Schema reads it)."""

    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expect("an integer", value, where)
        if isinstance(value, float) and not value.is_integer():
            raise RuleViolationError(f"{where}: must be a whole number, not {show(value)}")
        if not minimum <= value <= maximum:
            raise RuleViolationError(f"{where}: {show(value)} is outside {minimum}..{maximum}")
        return int(value)

    return Value({"type": "integer", "minimum": minimum, "maximum": maximum}, check)


def number(
    *,
    above: float | None = None,
    minimum: float | None = None,
    below: float | None = None,
    maximum: float | None = None,
    unit: str = "",
) -> Value:
    """A finite number within the bounds given (`above`/`below` exclusive); stored as float."""
    schema: dict[str, Any] = {"type": "number"}
    if above is not None:
        schema["exclusiveMinimum"] = above
    if minimum is not None:
        schema["minimum"] = minimum
    if below is not None:
        schema["exclusiveMaximum"] = below
    if maximum is not None:
        schema["maximum"] = maximum
    low = f"({above}" if above is not None else f"[{minimum}"
    high = f"{below})" if below is not None else f"{maximum}]"
    span = f"{low}, {high}{' ' + unit if unit else ''}"

    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expect("a number", value, where)
        inside = (
            (above is None or value > above)
            and (minimum is None or value >= minimum)
            and (below is None or value < below)
            and (maximum is None or value <= maximum)
        )
        if not inside or (isinstance(value, float) and not math.isfinite(value)):
            raise RuleViolationError(f"{where}: {show(value)} is outside {span}")
        return float(value)

    return Value(schema, check)


def one_of(*choices: str) -> Value:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise _expect("a string", value, where)
        if value not in choices:
            raise RuleViolationError(f"{where}: {show(value)} is not one of {', '.join(choices)}")
        return value

    return Value({"type": "string", "enum": list(choices)}, check)


def patterned(pattern: str, what: str, *, max_chars: int | None = None) -> Value:
    """A string matching `pattern` (searched, as JSON Schema does; patterns are anchored)."""
    compiled = re.compile(pattern)
    schema: dict[str, Any] = {"type": "string", "pattern": pattern}
    if max_chars is not None:
        schema["minLength"] = 1
        schema["maxLength"] = max_chars

    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise _expect(what, value, where)
        if max_chars is not None and len(value) > max_chars:
            raise RuleViolationError(f"{where}: longer than {max_chars} characters")
        if not compiled.search(value):
            raise RuleViolationError(f"{where}: {show(value)} is not {what}")
        return value

    return Value(schema, check)


def identifier() -> Value:
    return patterned(
        ID_PATTERN, "an identifier (A-Z a-z 0-9 then also . _ -, at most 64 characters)"
    )


def uuid() -> Value:
    return patterned(UUID_PATTERN, "a UUID in canonical lowercase hyphenated form")


def day(pattern: str = DATE_PATTERN, span: str = "2000-01-01 to 2099-12-31") -> Value:
    return patterned(pattern, f"a calendar date YYYY-MM-DD from {span}")


def text() -> Value:
    """Free text: 1–200 characters, no control/invisible/bidi characters, trimmed; stored NFC."""
    plain = patterned(
        TEXT_PATTERN,
        "plain text (no control, zero-width, bidi or private characters; no leading or "
        "trailing space)",
        max_chars=MAX_TEXT_CHARS,
    )

    def check(value: Any, where: str) -> str:
        return unicodedata.normalize("NFC", plain.check(value, where))

    return Value(plain.schema, check)


def nullable(inner: Value) -> Value:
    def check(value: Any, where: str) -> Any:
        return None if value is None else inner.check(value, where)

    return Value({"anyOf": [dict(inner.schema), {"type": "null"}]}, check)


def array(item: Value, *, max_items: int) -> Value:
    def check(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise _expect("an array", value, where)
        if len(value) > max_items:
            raise RuleViolationError(f"{where}: more than {max_items} items")
        return [item.check(element, f"{where}[{index}]") for index, element in enumerate(value)]

    return Value({"type": "array", "items": dict(item.schema), "maxItems": max_items}, check)


@dataclass(frozen=True)
class Slot:
    """A field of an object: required, or optional (absent reads as None when `fill`)."""

    value: Value
    required: bool = True
    fill: bool = True


@dataclass(frozen=True)
class Shape:
    """An object with exactly these fields (unknown fields are errors).

    `exactly_one` names fields of which exactly one must be present (JSON Schema `oneOf`);
    `after` is a check JSON Schema cannot express (listed in `NOT_IN_JSON_SCHEMA`).
    """

    fields: Mapping[str, Slot]
    exactly_one: Sequence[str] = ()
    after: Callable[[dict[str, Any], str], None] | None = field(default=None)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: dict(slot.value.schema) for name, slot in self.fields.items()},
            "required": [name for name, slot in self.fields.items() if slot.required],
            "additionalProperties": False,
        }
        if self.exactly_one:
            schema["oneOf"] = [{"required": [name]} for name in self.exactly_one]
        return schema

    def check(self, value: Any, where: str) -> dict[str, Any]:
        here = where or "submission"
        if not isinstance(value, dict):
            raise _expect("an object", value, here)
        fields = self.fields
        if not value.keys() <= fields.keys():  # one set test; the first unknown name on failure
            unknown = next(name for name in value if name not in fields)
            raise RuleViolationError(f"{here}: unknown field {show(unknown)}")
        if self.exactly_one:
            present = [name for name in self.exactly_one if name in value]
            if len(present) != 1:
                raise RuleViolationError(
                    f"{here}: needs exactly one of {', '.join(self.exactly_one)}"
                    + (f", not {len(present)}" if present else "")
                )
        checked: dict[str, Any] = {}
        for name, slot in fields.items():
            if name in value:
                checked[name] = slot.value.check(value[name], f"{where}.{name}" if where else name)
            elif slot.required:
                raise RuleViolationError(f"{here}: missing field {name}")
            elif slot.fill:
                checked[name] = None
        if self.after is not None:
            self.after(checked, where)
        return checked

    def as_value(self) -> Value:
        return Value(self.schema(), self.check)


def any_of(shapes: Mapping[str, Value], what: str) -> Value:
    """A value that matches at least one of `shapes` (by `$ref`); kept as sent when it does."""

    def check(value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise _expect("an object", value, where)
        for shape in shapes.values():
            try:
                shape.check(value, where)
            except RuleViolationError:
                continue
            return value
        raise RuleViolationError(f"{where}: is not {what}")

    return Value({"anyOf": [{"$ref": ref} for ref in shapes]}, check)
