"""RFC 8785 (JSON Canonicalization Scheme) bytes of a JSON value: what each leaf hash is taken over.

The serialiser is the `rfc8785` package, checked in `tests/test_canonical.py` against the
reference test data of the scheme's author (cyberphone/json-canonicalization: the structural files
and the ES6 number vectors). This module only narrows its errors to one-line `ValueError`s that say
where in the value the problem is.

Numbers are doubles, written the ECMAScript way (`1e+21`, `0.000001`, `4.5`, `3.0` → `3`), so a
value that went through a JSON round trip as `3` or `3.0` hashes the same. An integer beyond
±(2**53 − 1) is accepted only when its double prints back as the same digits (2**53, 10**16); one
that would change (2**53 + 1, 10**21 → `1e+21`) is an error rather than a silent rounding.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any

import rfc8785

__all__ = ["MAX_SAFE_INTEGER", "CanonicalShape", "canonical_bytes"]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer RFC 8785 (through I-JSON, RFC 7493) represents exactly."""


def canonical_bytes(value: object) -> bytes:
    """RFC 8785 serialisation of a JSON value (dict, list, tuple, str, int, float, bool, None).

    Raises `ValueError` with a one-line reason naming the first offending place (`$.data.dose_mg`)
    for what JCS cannot represent: NaN or infinite floats, integers beyond 2**53 whose double would
    print different digits, non-string object keys, strings with lone surrogates, other Python
    types, or nesting too deep to walk.
    """
    fast = _fast_canonical(value)
    if fast is not None:
        return fast
    try:
        return rfc8785.dumps(_as_json(value))
    except rfc8785.IntegerDomainError:
        pass  # maybe a large integer a double holds exactly: retry below
    except (ValueError, RecursionError) as exc:  # rfc8785.CanonicalizationError is a ValueError
        raise ValueError(_explain(value, exc)) from None
    try:
        return rfc8785.dumps(_as_json(_large_integers_as_doubles(value, 0)))
    except (ValueError, RecursionError, OverflowError) as exc:
        raise ValueError(_explain(value, exc)) from None


def _large_integers_as_doubles(value: object, depth: int) -> object:
    """The value with each integer beyond ±(2**53 − 1) that a double carries as that double.

    JSON numbers are doubles (RFC 8785 §3.2.2.3). A large integer is accepted when the double
    nearest to it serialises back to the same digits (2**53, 10**16, 33882327968470790): then the
    canonical bytes read back give the same integer, and no two accepted integers share bytes.
    2**53 + 1 (its double prints as 9007199254740992) and 10**21 (prints as 1e+21) stay errors.
    """
    if depth > _MAX_DEPTH:
        raise RecursionError
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return float(value) if _carried_by_double(value) else value
    if isinstance(value, list | tuple):
        return [_large_integers_as_doubles(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _large_integers_as_doubles(item, depth + 1) for key, item in value.items()}
    return value


def _as_json(value: object) -> Any:
    """The value as `rfc8785.dumps` types its argument (checking happens inside it)."""
    return value


def _explain(value: object, exc: BaseException) -> str:
    """The one-line reason for a failed serialisation, located by a second (slow-path) walk."""
    if isinstance(exc, RecursionError):
        return "cannot canonicalise JSON: nesting too deep"
    try:
        found = _first_problem(value, "$", 0)
    except RecursionError:
        return "cannot canonicalise JSON: nesting too deep"
    return f"cannot canonicalise JSON: {found or 'not representable in RFC 8785'}"


_MAX_DEPTH = 500


def _first_problem(value: object, path: str, depth: int) -> str | None:
    """Where and why `value` is not RFC 8785 JSON, or None when this walk finds nothing wrong."""
    if depth > _MAX_DEPTH:
        return f"{path}: nesting deeper than {_MAX_DEPTH}"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER and not _carried_by_double(value):
            return f"{path}: integer beyond 2**53 that a JSON double does not carry exactly"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path}: {value!r} is not a JSON number"
        return None
    if isinstance(value, str):
        return _string_problem(value, path)
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _first_problem(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: object key {_short(key)} is not a string"
            found = _string_problem(key, f"{path} key {_short(key)}") or _first_problem(
                item, _member(path, key), depth + 1
            )
            if found:
                return found
        return None
    return f"{path}: {type(value).__name__} is not a JSON value"


def _carried_by_double(value: int) -> bool:
    """Whether the double nearest to `value` canonicalises to the digits of `value` itself."""
    try:
        return rfc8785.dumps(float(value)) == str(value).encode()
    except (OverflowError, ValueError):  # beyond the double range; too many digits to print
        return False


def _string_problem(text: str, path: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{path}: lone surrogate U+{ord(text[exc.start]):04X} is not Unicode text"
    return None


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")


def _member(path: str, key: str) -> str:
    """`$.data` for a plain key, `$['odd key']` (ASCII-escaped, shortened) for any other."""
    return f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}[{_short(key)}]"


def _short(key: object) -> str:
    """A key as printable ASCII on one line, at most 40 characters."""
    shown = ascii(key)
    return shown if len(shown) <= 40 else shown[:37] + "..."


# --- the fast path ------------------------------------------------------------------------------
# Ledger entries are ASCII-keyed objects of strings, safe integers, booleans and doubles of
# ordinary size. For those, the standard library's encoder writes exactly the JCS bytes once each
# integral double is written as an integer: same escapes (the two-character forms for \b \t \n
# \f \r, lowercase \u00xx for other controls, nothing else), keys sorted by code point (equal
# to UTF-16 order for ASCII), and, for 1e-4 <= |x| < 1e16, Python's shortest round-trip repr equals
# ECMAScript's Number-to-String. Anything else (non-ASCII keys, large or tiny doubles, big
# integers, lone surrogates) goes through `rfc8785`; a property test holds the two equal.

_FAST_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


class _NotPlainError(Exception):
    """The value needs the full serialiser."""


def _fast_canonical(value: object) -> bytes | None:
    text = _fast_text(value, 0)
    if text is None:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the full serialiser says where
        return None


def _fast_text(value: object, depth: int) -> str | None:
    """The JCS text of a plain value (see above), or None when it needs the full serialiser."""
    try:
        return _encode_plain(_plain(value, depth))
    except (_NotPlainError, RecursionError):
        return None


def _plain_encoder() -> Callable[[object], str]:
    """`_FAST_ENCODER.encode` without building the C encoder again on every call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _FAST_ENCODER.encode
    encoder = _FAST_ENCODER
    # The arguments `JSONEncoder.iterencode` passes; no cycle markers: a cycle is a RecursionError.
    chunks = make(
        None, encoder.default, encode_basestring, encoder.indent, encoder.key_separator,
        encoder.item_separator, encoder.sort_keys, encoder.skipkeys, encoder.allow_nan,
    )
    probe = {"b": [1, None, True, "\n"], "a": 0.5}
    if "".join(chunks(probe, 0)) != _FAST_ENCODER.encode(probe):
        return _FAST_ENCODER.encode  # an interpreter whose C encoder takes other arguments
    return lambda value: "".join(chunks(value, 0))


_encode_plain = _plain_encoder()


class CanonicalShape:
    """RFC 8785 bytes of objects that share one set of ASCII keys (a §3 entry, a checkpoint).

    Such an object is written into a template of its keys, sorted once (code-point order, which
    is RFC 8785's UTF-16 order for ASCII): each text member (`texts`, a string or None) is one
    call of the standard library's C string escaper (JCS escapes, see above), each other member
    a safe integer as is or the fast path's walk and C encoder. An object with other keys or
    types, or a value the fast path declines, goes through `canonical_bytes`, so the bytes are
    always exactly RFC 8785's. `ignored` names a key left out of the bytes when present (the
    leaf hash beside an entry).
    """

    __slots__ = ("_count", "_ignored", "_others", "_template", "_texts")

    def __init__(
        self, keys: Iterable[str], *, texts: Iterable[str] = (), ignored: str | None = None
    ) -> None:
        names = list(keys)
        if not names or any(type(k) is not str or not k.isascii() for k in names):
            raise ValueError("a canonical shape needs ASCII string keys")
        text_set = set(texts)
        text_names = [name for name in names if name in text_set]
        if len(set(names)) != len(names) or ignored in names:
            raise ValueError("a canonical shape's keys must be distinct, the ignored one apart")
        if not text_set.issubset(names):
            raise ValueError("a canonical shape's text members must be among its keys")
        other_names = [name for name in names if name not in text_names]
        # The members are fetched texts first, then the others; the template puts each in its
        # key's sorted place ({n} is the n-th fetched member's JSON).
        fetched = [*text_names, *other_names]
        self._template = (
            "{{"
            + ",".join(
                encode_basestring(key).replace("{", "{{").replace("}", "}}")
                + f":{{{fetched.index(key)}}}"
                for key in sorted(names)
            )
            + "}}"
        )
        self._texts = _getter(text_names)
        self._others = _getter(other_names)
        self._count = len(names)
        self._ignored = ignored

    def dumps(self, value: Mapping[str, Any]) -> bytes:
        """RFC 8785 bytes of `value` without the ignored key; `ValueError` as `canonical_bytes`."""
        text = self._fast_text(value)
        if text is not None:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: canonical_bytes says where
        ignored = self._ignored
        return canonical_bytes({k: v for k, v in value.items() if k != ignored})

    def _fast_text(self, value: Mapping[str, Any]) -> str | None:
        if value.__class__ is not dict:
            value = dict(value)
        ignored = self._ignored
        # Every key of the shape present and no other: the same set.
        if len(value) != self._count + (ignored is not None and ignored in value):
            return None
        try:
            texts, others = self._texts(value), self._others(value)
            # One C call per text member; a member of another type is not in _TEXT_JSON.
            fragments = [_TEXT_JSON[item.__class__](item) for item in texts]
        except KeyError:
            return None
        try:
            for item in others:
                kind = item.__class__
                if kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    fragments.append(str(item))  # a position, a size: its digits are its JSON
                elif kind is str or item is None:
                    fragments.append(_TEXT_JSON[kind](item))
                else:
                    fragments.append(_encode_plain(_plain(item, 1)))
        except (_NotPlainError, RecursionError):
            return None
        return self._template.format(*fragments)


def _getter(names: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The members named, as a tuple, in one C call (`KeyError` when one is missing)."""
    if len(names) > 1:
        return itemgetter(*names)
    if names:
        only = names[0]
        return lambda value: (value[only],)
    return lambda value: ()


def _null(_: None) -> str:
    return "null"


_TEXT_JSON: dict[type, Callable[[Any], str]] = {str: encode_basestring, type(None): _null}
"""The JSON of a text member by its exact type (a str subclass may serialise differently)."""



def _plain(value: object, depth: int) -> object:
    if isinstance(value, str) or value is None or value is True or value is False:
        return value
    if depth > _MAX_DEPTH:
        raise _NotPlainError
    if isinstance(value, dict):
        plain: dict[str, object] = {}
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                raise _NotPlainError
            # Strings and None, most of an entry, need no walk (exact types: a str subclass or
            # a bool-like could serialise differently, and goes the long way).
            plain[key] = item if type(item) is str or item is None else _plain(item, depth + 1)
        return plain
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise _NotPlainError
    if isinstance(value, float):
        magnitude = abs(value)
        if value.is_integer():
            if magnitude <= MAX_SAFE_INTEGER:
                return int(value)
            raise _NotPlainError
        if 1e-4 <= magnitude < 1e16:
            return value
        raise _NotPlainError
    if isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    raise _NotPlainError
