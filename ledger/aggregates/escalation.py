"""The 3+3 dose-escalation rule (clinical-rules.md §1) as one pure function.

The Trial aggregate and the operating-characteristics simulator both call `decide`, so the trial
that runs and the trial whose properties were simulated follow one rule, not two copies of it.

Dose levels are indexes ``0..K-1``, lowest to highest; ``counts[i]`` is the cumulative count of
DLT-evaluable subjects and DLTs among them at level ``i``.  Non-evaluable subjects are replaced
(protocol.md) and never appear in a count.

The tables leave some states open.  This module settles them as follows, and the tests pin each:

* `decide` takes no slot count.  The history already says what the current level is waiting for:
  a level with 3 subjects is deciding its first cohort, unless a higher level has subjects, in which
  case it was reopened for 6 after that level proved too toxic and 3 subjects cannot decide it.
  The one thing the history cannot show is that an "expand" was already applied but no new subject
  has arrived (1/3, or 0/3 at the top under ``strict-six``); callers therefore ask
  `cohort_is_decidable` with their slot count first, and `decide` repeats the expansion otherwise.
* A call at a point the tables do not decide (0/2, 1/4, 1/5, a reopened level at 3, ...) raises
  `ValueError` rather than guessing: a silent wrong decision would be recorded in the ledger.
* ≥2 DLTs decide a level whatever its size (2/2, 2/4): no later subject can bring it back to ≤1/6.
* More than 6 evaluable subjects cannot arise under the slot rules; if it does, ≤1 DLT among them is
  read as ≤1/6 because every row that applies to 6 applies a fortiori.
* Only the current level must be at a decidable point; the other levels are read, not policed.
  The Trial aggregate decides on live counts and lets a late or corrected fact change a closed
  level's count ("earlier decisions stand and are flagged for review"), so a level we escalated past
  at 0/3 may read 1/3 or 2/3 later.  Raising on such a history would stop the ledger from recording
  what happened; instead each row reads its neighbours so that no one is sent to a level the
  current counts show too toxic:
  - a level is never re-entered upward: once the level above has subjects (it was too toxic when
    we left it), ≤1/6 at the current level declares it, whatever the level above reads now;
  - after a too-toxic level the rule looks down for the highest level *not* shown too toxic
    (fewer than 2 DLTs), skipping any that late data made too toxic; none left → stop.  On every
    history the process itself produces that is d−1, exactly the table's row.
* ``korn``/``strict-six`` with level d too toxic and d−1 at ≥6 subjects declare d−1 at once: d−1 can
  only have been left upward, so its count was ≤1/6 and there are no "3 more" to treat there.
* The variant is read on every call, not fixed per history: the protocol may be amended mid-trial
  (say ``korn`` → ``storer`` after a de-escalation), and the new rule must read the old history.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

_COHORT = 3  # subjects per cohort: the first cohort at a level, and each expansion
_FULL = 6  # a level never holds more than two cohorts
_TOO_TOXIC = 2  # DLTs that make a level too toxic whatever its size


class Variant(StrEnum):
    """The three published readings of 3+3; the protocol file names the one in force."""

    STRICT_SIX = "strict-six"
    KORN = "korn"
    STORER = "storer"


@dataclass(frozen=True, slots=True)
class LevelCount:
    """DLT-evaluable subjects and DLTs among them at one dose level, cumulative over visits."""

    evaluable: int = 0
    dlts: int = 0

    def __post_init__(self) -> None:
        # Rejected here so that no rule ever has to reason about an impossible count.
        if self.evaluable < 0 or self.dlts < 0:
            raise ValueError(
                f"a level count cannot be negative (evaluable={self.evaluable}, dlts={self.dlts})"
            )
        if self.dlts > self.evaluable:
            raise ValueError(
                f"{self.dlts} DLTs among {self.evaluable} evaluable subjects: DLTs are counted "
                "among evaluable subjects only"
            )


@dataclass(frozen=True, slots=True)
class Escalate:
    """Open ``to_level`` with 3 slots."""

    to_level: int


@dataclass(frozen=True, slots=True)
class Expand:
    """Treat 3 more at ``level`` (slots 3 → 6)."""

    level: int


@dataclass(frozen=True, slots=True)
class DeEscalate:
    """Reopen ``to_level`` (0/3 when left) for 3 more, slots → 6: the level above was too toxic."""

    to_level: int


@dataclass(frozen=True, slots=True)
class DeclareMtd:
    """``level`` is the maximum tolerated dose; dose escalation ends."""

    level: int


@dataclass(frozen=True, slots=True)
class StopForToxicity:
    """No level is tolerable; the trial enrolls no one else."""


Decision: TypeAlias = Escalate | Expand | DeEscalate | DeclareMtd | StopForToxicity


def cohort_is_decidable(count: LevelCount, slots: int) -> bool:
    """Whether the rule can act now, so a cohort with 2 DLTs need not wait for its last subjects."""
    if slots < 1:
        raise ValueError(f"a level under treatment has at least one slot, got {slots}")
    return count.dlts >= _TOO_TOXIC or count.evaluable >= slots


def decide(variant: Variant, counts: Sequence[LevelCount], current: int) -> Decision:
    """Apply the 3+3 table and the variant's rows to a decidable current level.

    Raises ValueError when the current level is at a point the tables do not decide, because a
    guessed decision would be recorded as fact (see the module docstring).
    """
    variant = Variant(variant)  # the protocol file gives a string; an unknown one fails here
    _check_shape(counts, current)
    top = len(counts) - 1
    here = counts[current]

    if here.dlts >= _TOO_TOXIC:
        return _after_too_toxic(variant, counts, current)

    if here.evaluable == _COHORT:
        if current < top and counts[current + 1].evaluable > 0:
            raise ValueError(
                f"level {current} was reopened for {_FULL} after level {current + 1} proved too "
                f"toxic; {here.dlts}/{here.evaluable} cannot decide it yet"
            )
        if here.dlts == 1:
            return Expand(current)
        if current < top:
            return Escalate(current + 1)
        if variant is Variant.STRICT_SIX:
            return Expand(current)  # the top level is declared only on 6 subjects
        return DeclareMtd(current)

    if here.evaluable >= _FULL:
        if current < top and counts[current + 1].evaluable == 0:
            return Escalate(current + 1)
        # Top level, or the level above has subjects: it proved too toxic when we came down
        # from it, and that decision stands even if late data has since changed its count.
        return DeclareMtd(current)

    raise ValueError(
        f"level {current} at {here.dlts}/{here.evaluable} is not decidable: the 3+3 table decides "
        f"on {_COHORT} or {_FULL} evaluable subjects, or on ≥{_TOO_TOXIC} DLTs"
    )


def _after_too_toxic(variant: Variant, counts: Sequence[LevelCount], current: int) -> Decision:
    """The variants differ only here and at the top level, so their rows live in one place."""
    below = _highest_tolerable_below(counts, current)
    if below is None:
        return StopForToxicity()
    if variant is Variant.STORER or counts[below].evaluable >= _FULL:
        # Storer never goes back; the others stop going back once the level below has its 6.
        return DeclareMtd(below)
    return DeEscalate(below)


def _highest_tolerable_below(counts: Sequence[LevelCount], current: int) -> int | None:
    """d−1 on every history the process makes; lower only if late data showed d−1 too toxic."""
    for level in range(current - 1, -1, -1):
        if counts[level].dlts < _TOO_TOXIC:
            return level
    return None


def _check_shape(counts: Sequence[LevelCount], current: int) -> None:
    """Refuse calls that name no level, before any row indexes into ``counts``."""
    if not counts:
        raise ValueError("a 3+3 design needs at least one dose level")
    if not 0 <= current < len(counts):
        raise ValueError(f"current level {current} is outside 0..{len(counts) - 1}")
