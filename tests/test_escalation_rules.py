"""The 3+3 rule (clinical-rules.md §1), walked row by row for every variant."""

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.aggregates.escalation import (
    Decision,
    DeclareMtd,
    DeEscalate,
    Escalate,
    Expand,
    LevelCount,
    StopForToxicity,
    Variant,
    cohort_is_decidable,
    decide,
)

STORER, KORN, STRICT = Variant.STORER, Variant.KORN, Variant.STRICT_SIX
ALL = tuple(Variant)
A, B, C = 0, 1, 2
NONE = LevelCount()


def c(dlts: int, evaluable: int) -> LevelCount:
    """A count written the way the tables write it: ``c(1, 3)`` is 1/3."""
    return LevelCount(evaluable=evaluable, dlts=dlts)


# --- the 3+3 table: rows every variant shares --------------------------------------------------

COMMON_ROWS = [
    ("0/3 at A escalates to B", (c(0, 3), NONE, NONE), A, Escalate(B)),
    ("0/3 at B escalates to C", (c(0, 3), c(0, 3), NONE), B, Escalate(C)),
    ("1/3 at A expands A to 6", (c(1, 3), NONE, NONE), A, Expand(A)),
    ("1/3 at B expands B to 6", (c(0, 3), c(1, 3), NONE), B, Expand(B)),
    ("1/3 at the top expands it to 6", (c(0, 3), c(0, 3), c(1, 3)), C, Expand(C)),
    ("1/6 at A escalates to B", (c(1, 6), NONE, NONE), A, Escalate(B)),
    ("1/6 at B escalates to C", (c(0, 3), c(1, 6), NONE), B, Escalate(C)),
    ("1/6 at the top is the MTD", (c(0, 3), c(1, 6), c(1, 6)), C, DeclareMtd(C)),
    ("2/3 at the lowest level stops", (c(2, 3), NONE, NONE), A, StopForToxicity()),
    ("3/3 at the lowest level stops", (c(3, 3), NONE, NONE), A, StopForToxicity()),
    ("2/6 at the lowest level stops", (c(2, 6), NONE, NONE), A, StopForToxicity()),
    ("2/2 at the lowest level stops early", (c(2, 2), NONE, NONE), A, StopForToxicity()),
    ("single level: 2/3 stops", (c(2, 3),), A, StopForToxicity()),
    ("single level: 1/3 expands", (c(1, 3),), A, Expand(A)),
    ("single level: 1/6 is the MTD", (c(1, 6),), A, DeclareMtd(A)),
]

# --- the variants table -------------------------------------------------------------------------

VARIANT_ROWS: list[tuple[Variant, str, tuple[LevelCount, ...], int, Decision]] = [
    # storer: escalation only; MTD = d-1 however many subjects it had
    (STORER, "2/3 at B after A 0/3: MTD A with 3", (c(0, 3), c(2, 3), NONE), B, DeclareMtd(A)),
    (STORER, "2/3 at B after A 1/6: MTD A", (c(1, 6), c(2, 3), NONE), B, DeclareMtd(A)),
    (STORER, "2/6 at C after B 0/3: MTD B with 3", (c(0, 3), c(0, 3), c(2, 6)), C, DeclareMtd(B)),
    (STORER, "3/3 at C after B 1/6: MTD B", (c(0, 3), c(1, 6), c(3, 3)), C, DeclareMtd(B)),
    (STORER, "2/2 at B decides early: MTD A", (c(0, 3), c(2, 2), NONE), B, DeclareMtd(A)),
    (STORER, "0/3 at the top: MTD top with 3", (c(0, 3), c(0, 3), c(0, 3)), C, DeclareMtd(C)),
    (STORER, "single level 0/3: MTD with 3", (c(0, 3),), A, DeclareMtd(A)),
    # korn: de-escalate while the level below has only 3
    (KORN, "2/3 at C, B at 0/3: treat 3 more at B", (c(0, 3), c(0, 3), c(2, 3)), C, DeEscalate(B)),
    (KORN, "2/6 at C, B at 0/3: treat 3 more at B", (c(0, 3), c(0, 3), c(2, 6)), C, DeEscalate(B)),
    (KORN, "2/3 at C, B at 1/6: MTD B", (c(0, 3), c(1, 6), c(2, 3)), C, DeclareMtd(B)),
    (KORN, "2/3 at B, A at 0/3: treat 3 more at A", (c(0, 3), c(2, 3), NONE), B, DeEscalate(A)),
    (KORN, "2/2 at B decides early: back to A", (c(0, 3), c(2, 2), NONE), B, DeEscalate(A)),
    (KORN, "2/6 at B, A at 1/6: MTD A", (c(1, 6), c(2, 6), NONE), B, DeclareMtd(A)),
    (KORN, "reopened B 0/6 under a toxic C: MTD B", (c(0, 3), c(0, 6), c(2, 3)), B, DeclareMtd(B)),
    (KORN, "reopened B 1/6 under a toxic C: MTD B", (c(0, 3), c(1, 6), c(2, 3)), B, DeclareMtd(B)),
    (KORN, "reopened B 2/6, A at 0/3: back to A", (c(0, 3), c(2, 6), c(2, 3)), B, DeEscalate(A)),
    (KORN, "reopened B 2/6, A at 1/6: MTD A", (c(1, 6), c(2, 6), c(2, 3)), B, DeclareMtd(A)),
    (KORN, "reopened A 1/6 under toxic B, C: MTD A", (c(1, 6), c(2, 6), c(2, 3)), A, DeclareMtd(A)),
    (KORN, "reopened A 2/6, B, C toxic: stop", (c(2, 6), c(2, 6), c(2, 3)), A, StopForToxicity()),
    (KORN, "reopened A 2/5 decides early: stop", (c(2, 5), c(2, 3), NONE), A, StopForToxicity()),
    (KORN, "0/3 at the top: MTD top with 3", (c(0, 3), c(0, 3), c(0, 3)), C, DeclareMtd(C)),
    (KORN, "single level 0/3: MTD with 3", (c(0, 3),), A, DeclareMtd(A)),
    # strict-six: as korn, but the top level is declared only on 6
    (STRICT, "0/3 at the top: expand it to 6", (c(0, 3), c(0, 3), c(0, 3)), C, Expand(C)),
    (STRICT, "0/6 at the top: MTD top", (c(0, 3), c(0, 3), c(0, 6)), C, DeclareMtd(C)),
    (STRICT, "1/6 at the top: MTD top", (c(0, 3), c(1, 6), c(1, 6)), C, DeclareMtd(C)),
    (STRICT, "2/6 at the top, B 0/3: back to B", (c(0, 3), c(0, 3), c(2, 6)), C, DeEscalate(B)),
    (STRICT, "2/6 at the top, B 1/6: MTD B", (c(0, 3), c(1, 6), c(2, 6)), C, DeclareMtd(B)),
    (STRICT, "2/3 at C, B at 0/3: back to B", (c(0, 3), c(0, 3), c(2, 3)), C, DeEscalate(B)),
    (STRICT, "reopened B 1/6, C toxic: MTD B", (c(0, 3), c(1, 6), c(2, 6)), B, DeclareMtd(B)),
    (STRICT, "reopened B 2/6, A at 0/3: back to A", (c(0, 3), c(2, 6), c(2, 6)), B, DeEscalate(A)),
    (STRICT, "reopened A 3/6, B, C toxic: stop", (c(3, 6), c(2, 6), c(2, 6)), A, StopForToxicity()),
    (STRICT, "single level 0/3: expand it to 6", (c(0, 3),), A, Expand(A)),
    (STRICT, "single level 0/6: MTD", (c(0, 6),), A, DeclareMtd(A)),
]


def _rows() -> list[object]:
    rows: list[object] = []
    for variant in ALL:
        for label, counts, current, expected in COMMON_ROWS:
            rows.append(pytest.param(variant, counts, current, expected, id=f"{variant}: {label}"))
    for variant, label, counts, current, expected in VARIANT_ROWS:
        rows.append(pytest.param(variant, counts, current, expected, id=f"{variant}: {label}"))
    return rows


@pytest.mark.parametrize(("variant", "counts", "current", "expected"), _rows())
def test_decide_follows_the_table_row(
    variant: Variant, counts: tuple[LevelCount, ...], current: int, expected: Decision
) -> None:
    """Each row of the 3+3 and variants tables gives its decision."""
    assert decide(variant, counts, current) == expected


def test_decide_accepts_the_variant_as_the_protocol_file_spells_it() -> None:
    """A variant given as its protocol-file string behaves as the enum member."""
    assert decide("strict-six", (c(0, 3),), A) == Expand(A)  # type: ignore[arg-type]


# --- de-escalation chains, driven cohort by cohort ----------------------------------------------


def _drive(variant: Variant, levels: int, cohort_dlts: Sequence[int]) -> list[Decision]:
    """Feed cohorts of 3 (DLTs per cohort given) through the rule, applying each decision."""
    counts = [NONE] * levels
    current, slots = 0, 3
    decisions: list[Decision] = []
    for dlts in cohort_dlts:
        before = counts[current]
        counts[current] = LevelCount(before.evaluable + 3, before.dlts + dlts)
        assert cohort_is_decidable(counts[current], slots)
        decision = decide(variant, counts, current)
        decisions.append(decision)
        match decision:
            case Escalate(to_level=level):
                current, slots = level, 3
            case Expand(level=level) | DeEscalate(to_level=level):
                current, slots = level, counts[level].evaluable + 3
            case DeclareMtd() | StopForToxicity():
                break
    return decisions


CHAINS = [
    pytest.param(
        KORN,
        [0, 0, 2, 1],
        [Escalate(B), Escalate(C), DeEscalate(B), DeclareMtd(B)],
        id="korn: C too toxic, B 0/3 reopened, then 1/6: MTD B",
    ),
    pytest.param(
        KORN,
        [0, 0, 2, 2, 1],
        [Escalate(B), Escalate(C), DeEscalate(B), DeEscalate(A), DeclareMtd(A)],
        id="korn: C too toxic, B ≥2/6, A 0/3 reopened, then 1/6: MTD A",
    ),
    pytest.param(
        KORN,
        [0, 0, 2, 2, 2],
        [Escalate(B), Escalate(C), DeEscalate(B), DeEscalate(A), StopForToxicity()],
        id="korn: C, B, then A all too toxic: stop",
    ),
    pytest.param(
        KORN,
        [1, 0, 0, 3],
        [Expand(A), Escalate(B), Escalate(C), DeEscalate(B)],
        id="korn: chain stops before A because A already had 1/6",
    ),
    pytest.param(
        KORN,
        [1, 0, 0, 3, 2],
        [Expand(A), Escalate(B), Escalate(C), DeEscalate(B), DeclareMtd(A)],
        id="korn: B ≥2/6 after reopening, A already 1/6: MTD A",
    ),
    pytest.param(
        STRICT,
        [0, 0, 0, 2, 0],
        [Escalate(B), Escalate(C), Expand(C), DeEscalate(B), DeclareMtd(B)],
        id="strict-six: top 2/6 after 0/3, B reopened 0/6: MTD B",
    ),
    pytest.param(
        STRICT,
        [0, 0, 0, 1],
        [Escalate(B), Escalate(C), Expand(C), DeclareMtd(C)],
        id="strict-six: top 1/6: MTD top",
    ),
    pytest.param(
        STORER,
        [0, 0, 2],
        [Escalate(B), Escalate(C), DeclareMtd(B)],
        id="storer: C too toxic: MTD B with only 3 there, no de-escalation",
    ),
    pytest.param(
        STORER,
        [0, 0, 0],
        [Escalate(B), Escalate(C), DeclareMtd(C)],
        id="storer: top 0/3: MTD top with 3",
    ),
]


@pytest.mark.parametrize(("variant", "cohort_dlts", "expected"), CHAINS)
def test_escalation_walks_the_chain(
    variant: Variant, cohort_dlts: list[int], expected: list[Decision]
) -> None:
    """A sequence of cohort outcomes yields the variant's sequence of decisions."""
    assert _drive(variant, 3, cohort_dlts) == expected


# --- points the tables do not decide ------------------------------------------------------------

UNDECIDABLE = [
    ("0/2 at A is waiting for a third subject", (c(0, 2), NONE, NONE), A),
    ("1/2 at A is waiting for a third subject", (c(1, 2), NONE, NONE), A),
    ("no subjects at A yet", (NONE, NONE, NONE), A),
    ("1/4 after expansion is waiting for 6", (c(1, 4), NONE, NONE), A),
    ("1/5 after expansion is waiting for 6", (c(1, 5), NONE, NONE), A),
    ("0/5 at a reopened level is waiting for 6", (c(0, 3), c(0, 5), c(2, 3)), B),
    ("reopened B still at 0/3 is waiting for 6", (c(0, 3), c(0, 3), c(2, 3)), B),
    ("current level beyond the top", (c(0, 3), c(0, 3), NONE), 3),
    ("negative current level", (c(0, 3), NONE, NONE), -1),
    ("no dose levels at all", (), 0),
]


@pytest.mark.parametrize(
    ("variant", "counts", "current"),
    [
        pytest.param(variant, counts, current, id=f"{variant}: {label}")
        for variant in ALL
        for label, counts, current in UNDECIDABLE
    ],
)
def test_decide_refuses_points_the_tables_do_not_decide(
    variant: Variant, counts: tuple[LevelCount, ...], current: int
) -> None:
    """A non-decidable point or an impossible history raises ValueError instead of guessing."""
    with pytest.raises(ValueError, match=r"\S"):
        decide(variant, counts, current)


# --- late or corrected data at a closed level (the Trial lets earlier decisions stand) -----------

LATE_CORRECTIONS: list[tuple[Variant, str, tuple[LevelCount, ...], int, Decision]] = [
    # A level escalated past at 0/3 later reads 1/3: still "fewer than 6", so korn reopens it.
    (
        KORN,
        "C too toxic, B revised to 1/3: reopen B",
        (c(0, 3), c(1, 3), c(2, 3)),
        C,
        DeEscalate(B),
    ),
    (STORER, "C too toxic, B revised to 1/3: MTD B", (c(0, 3), c(1, 3), c(2, 3)), C, DeclareMtd(B)),
    # ... or 2/3: no one is sent back to it, and it cannot be the MTD; look one level lower.
    (
        KORN,
        "C too toxic, B revised to 2/3: back to A",
        (c(0, 3), c(2, 3), c(2, 3)),
        C,
        DeEscalate(A),
    ),
    (
        STRICT,
        "C too toxic, B revised to 2/3, A 1/6: MTD A",
        (c(1, 6), c(2, 3), c(2, 6)),
        C,
        DeclareMtd(A),
    ),
    (STORER, "C too toxic, B revised to 2/3: MTD A", (c(0, 3), c(2, 3), c(2, 3)), C, DeclareMtd(A)),
    (KORN, "B too toxic, A revised to 2/3: stop", (c(2, 3), c(2, 3), NONE), B, StopForToxicity()),
    (STORER, "B too toxic, A revised to 2/6: stop", (c(2, 6), c(2, 3), NONE), B, StopForToxicity()),
    # A level we came down from is never re-entered, whatever it reads now.
    (
        KORN,
        "reopened B 1/6, C revised to 1/3: MTD B",
        (c(0, 3), c(1, 6), c(1, 3)),
        B,
        DeclareMtd(B),
    ),
    (STRICT, "reopened A 0/6, B revised to 0/6: MTD A", (c(0, 6), c(0, 6), NONE), A, DeclareMtd(A)),
    # Levels below the current one are read, not policed.
    (KORN, "0/3 at B with A revised to 1/3: escalate", (c(1, 3), c(0, 3), NONE), B, Escalate(C)),
]


@pytest.mark.parametrize(
    ("variant", "counts", "current", "expected"),
    [
        pytest.param(variant, counts, current, expected, id=f"{variant}: {label}")
        for variant, label, counts, current, expected in LATE_CORRECTIONS
    ],
)
def test_late_corrections_never_send_anyone_to_a_level_shown_too_toxic(
    variant: Variant, counts: tuple[LevelCount, ...], current: int, expected: Decision
) -> None:
    """A neighbour's revised count is read safely instead of failing the decision."""
    assert decide(variant, counts, current) == expected


def test_decide_refuses_an_unknown_variant() -> None:
    """A variant the protocol file misspells is refused."""
    with pytest.raises(ValueError, match="storrer"):
        decide("storrer", (c(0, 3),), A)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("evaluable", "dlts"),
    [
        pytest.param(-1, 0, id="negative evaluable"),
        pytest.param(3, -1, id="negative DLTs"),
        pytest.param(3, 4, id="more DLTs than evaluable subjects"),
    ],
)
def test_level_count_refuses_impossible_counts(evaluable: int, dlts: int) -> None:
    """A count no trial can produce cannot be built."""
    with pytest.raises(ValueError, match=r"DLT|negative"):
        LevelCount(evaluable=evaluable, dlts=dlts)


@pytest.mark.parametrize(
    ("count", "slots", "expected"),
    [
        pytest.param(c(0, 0), 3, False, id="empty cohort of 3 is not decidable"),
        pytest.param(c(1, 2), 3, False, id="1/2 of 3 is not decidable"),
        pytest.param(c(0, 3), 3, True, id="0/3 of 3 is decidable"),
        pytest.param(c(1, 3), 3, True, id="1/3 of 3 is decidable"),
        pytest.param(c(2, 2), 3, True, id="2 DLTs decide a cohort of 3 early"),
        pytest.param(c(1, 3), 6, False, id="1/3 after expansion waits for 6"),
        pytest.param(c(1, 5), 6, False, id="1/5 of 6 is not decidable"),
        pytest.param(c(1, 6), 6, True, id="1/6 of 6 is decidable"),
        pytest.param(c(2, 4), 6, True, id="2 DLTs decide an expanded cohort early"),
    ],
)
def test_cohort_is_decidable(count: LevelCount, slots: int, expected: bool) -> None:
    """A cohort is decided by filling its slots or by 2 DLTs, whichever comes first."""
    assert cohort_is_decidable(count, slots) is expected


def test_cohort_is_decidable_refuses_a_level_without_slots() -> None:
    """Zero slots means the level is not open, which is a caller error."""
    with pytest.raises(ValueError, match="slot"):
        cohort_is_decidable(c(0, 0), 0)


# --- property: no reachable history breaks the rules --------------------------------------------


def _passed(count: LevelCount) -> bool:
    """0/3 or ≤1/6: a count the process may leave upward or declare."""
    return (count.evaluable == 3 and count.dlts == 0) or (count.evaluable >= 6 and count.dlts <= 1)


@settings(max_examples=400, deadline=None)
@given(
    variant=st.sampled_from(ALL),
    levels=st.integers(min_value=1, max_value=5),
    outcomes=st.lists(st.booleans(), max_size=30),
)
def test_reachable_histories_never_break_the_rules(
    variant: Variant, levels: int, outcomes: list[bool]
) -> None:
    """Subject by subject, decide stays in 0..K-1 and never sends anyone to a too-toxic level."""
    counts = [NONE] * levels
    current, slots = 0, 3
    finished = False
    for dlt in outcomes:
        before = counts[current]
        counts[current] = LevelCount(before.evaluable + 1, before.dlts + int(dlt))
        assert counts[current].evaluable <= 6
        if not cohort_is_decidable(counts[current], slots):
            continue
        decision = decide(variant, counts, current)
        match decision:
            case Escalate(to_level=level):
                assert level == current + 1 < levels
                assert counts[level] == NONE  # never into a level already tried
                current, slots = level, 3
            case Expand(level=level):
                assert level == current
                assert counts[level].dlts <= 1
                slots = counts[level].evaluable + 3
            case DeEscalate(to_level=level):
                assert variant is not STORER
                assert 0 <= level == current - 1
                assert counts[level] == c(0, 3)
                current, slots = level, 6
            case DeclareMtd(level=level):
                assert 0 <= level < levels
                assert _passed(counts[level])
                assert level == levels - 1 or counts[level + 1].dlts >= 2
                if variant is STRICT or (variant is KORN and level < levels - 1):
                    assert counts[level].evaluable >= 6
                finished = True
            case StopForToxicity():
                assert counts[0].dlts >= 2
                finished = True
        if finished:
            break
    for level, count in enumerate(counts):
        if count.dlts >= 2:
            assert level >= current  # the process never sits above a level shown too toxic


@st.composite
def _any_counts(draw: st.DrawFn) -> tuple[LevelCount, ...]:
    """Arbitrary counts of 0..6 subjects per level, reachable or not (late corrections)."""
    levels = draw(st.integers(min_value=1, max_value=5))
    counts = []
    for _ in range(levels):
        evaluable = draw(st.integers(min_value=0, max_value=6))
        counts.append(LevelCount(evaluable, draw(st.integers(min_value=0, max_value=evaluable))))
    return tuple(counts)


@settings(max_examples=400, deadline=None)
@given(variant=st.sampled_from(ALL), counts=_any_counts(), data=st.data())
def test_any_history_is_decided_safely_or_refused(
    variant: Variant, counts: tuple[LevelCount, ...], data: st.DataObject
) -> None:
    """On any counts, decide refuses with ValueError or targets a level in range not shown toxic."""
    current = data.draw(st.integers(min_value=0, max_value=len(counts) - 1))
    try:
        decision = decide(variant, counts, current)
    except ValueError:
        return
    match decision:
        case Escalate(to_level=level):
            assert level == current + 1
            assert counts[level] == NONE
        case Expand(level=level):
            assert level == current
        case DeEscalate(to_level=level) | DeclareMtd(level=level):
            assert 0 <= level < len(counts)
            assert counts[level].dlts < 2
        case StopForToxicity():
            assert all(count.dlts >= 2 for count in counts[: current + 1])
