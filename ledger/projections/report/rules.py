"""The 3+3 decision table of each variant, read off :func:`ledger.aggregates.escalation.decide`.

Nothing here restates a rule: each row is a situation (the counts at the level being decided and
at its neighbours) and the decision column is whatever ``decide`` returns for it, so the table in
the report is the rule the aggregate enforces, variant by variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ledger.aggregates.escalation import (
    Decision,
    DeclareMtd,
    DeEscalate,
    Escalate,
    Expand,
    LevelCount,
    StopForToxicity,
    Variant,
    decide,
)

__all__ = ["RuleRow", "decision_table", "describe_decision"]


@dataclass(frozen=True, slots=True)
class RuleRow:
    situation: str
    seen: str
    """DLTs / evaluable subjects at level d."""
    decisions: tuple[tuple[Variant, str], ...]
    """The decision under each variant, in Variant order."""


_L = LevelCount
# (situation, counts over three levels, index of d): the counts make "d" the level being decided.
_SCENARIOS: Final[tuple[tuple[str, tuple[LevelCount, ...], int], ...]] = (
    ("first cohort at d, below the top", (_L(3, 0), _L(), _L()), 0),
    ("first cohort at d, below the top", (_L(3, 1), _L(), _L()), 0),
    ("first cohort at d, below the top; d−1 had 3", (_L(3, 0), _L(3, 2), _L()), 1),
    ("first cohort at d, below the top; d−1 had 6", (_L(6, 1), _L(3, 2), _L()), 1),
    ("d expanded to 6, below the top", (_L(6, 1), _L(), _L()), 0),
    ("d expanded to 6, below the top; d−1 had 3", (_L(3, 0), _L(6, 2), _L()), 1),
    ("d expanded to 6, below the top; d−1 had 6", (_L(6, 1), _L(6, 2), _L()), 1),
    ("first cohort at the top level d", (_L(3, 0), _L(3, 0), _L(3, 0)), 2),
    ("first cohort at the top level d", (_L(3, 0), _L(3, 0), _L(3, 1)), 2),
    ("top level d expanded to 6", (_L(3, 0), _L(3, 0), _L(6, 1)), 2),
    ("d reopened after d+1 proved too toxic", (_L(3, 0), _L(6, 1), _L(3, 2)), 1),
    ("d reopened after d+1 proved too toxic", (_L(3, 0), _L(6, 2), _L(3, 2)), 1),
    ("the lowest level d", (_L(3, 2), _L(), _L()), 0),
)


def describe_decision(decision: Decision, current: int) -> str:
    """A decision in words, relative to the level being decided (d)."""
    def level(index: int) -> str:
        offset = index - current
        return "d" if offset == 0 else f"d{offset:+d}".replace("-", "−")

    if isinstance(decision, Escalate):
        return f"escalate to {level(decision.to_level)}"
    if isinstance(decision, Expand):
        return f"treat 3 more at {level(decision.level)}"
    if isinstance(decision, DeEscalate):
        return f"de-escalate: treat 3 more at {level(decision.to_level)}"
    if isinstance(decision, DeclareMtd):
        return f"MTD is {level(decision.level)}"
    if isinstance(decision, StopForToxicity):
        return "stop: no tolerable dose"
    raise TypeError(f"unknown decision {decision!r}")


def _seen(count: LevelCount) -> str:
    if count.dlts >= 2:
        return f"≥2/{count.evaluable}"
    if count.evaluable >= 6:
        return f"≤1/{count.evaluable}"
    return f"{count.dlts}/{count.evaluable}"


def decision_table() -> tuple[RuleRow, ...]:
    """Every row: the situation, the count seen at d and ``decide``'s answer per variant."""
    rows = []
    for situation, counts, current in _SCENARIOS:
        here = counts[current]
        rows.append(
            RuleRow(
                situation=situation,
                seen=_seen(here),
                decisions=tuple(
                    (variant, describe_decision(decide(variant, counts, current), current))
                    for variant in Variant
                ),
            )
        )
    return tuple(rows)
