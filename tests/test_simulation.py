"""Operating characteristics: exact enumeration, closed forms, and the Monte Carlo simulator.

Three independent computations must agree: an exact enumeration of every cohort outcome through the
product's own rule code, closed forms written without that code (Lin & Shih 2001 for `storer`, a
hand derivation for the de-escalating variants), and `simulate` within its sampling error.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import pytest

from ledger.aggregates.escalation import (
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
from ledger.simulation import MAX_RUNS, SimulationResult, simulate

NAMES = ("A", "B", "C")
RUNS = 20_000
SEED = 20_220_601
RATE_SETS = {
    "low": (0.05, 0.10, 0.20),
    "rising": (0.10, 0.30, 0.50),
    "toxic": (0.50, 0.60, 0.70),
}


@dataclass(frozen=True)
class Exact:
    """Exact operating characteristics: P(MTD) by level index (None = stop) and moments of N."""

    p_mtd: dict[int | None, float]
    mean_n: float
    var_n: float

    def keyed(self, names: Sequence[str]) -> dict[str, float]:
        """P(MTD) under the simulator's keys."""
        return {("none" if level is None else names[level]): p for level, p in self.p_mtd.items()}


def binom(x: int, n: int, p: float) -> float:
    """P(X = x) for X ~ Binomial(n, p)."""
    return comb(n, x) * p**x * (1.0 - p) ** (n - x)


# --- exact enumeration through the rule code ----------------------------------------------------


def enumerate_exactly(variant: Variant, rates: Sequence[float]) -> Exact:
    """Every cohort outcome, weighted by C(3,x)p^x(1-p)^(3-x), through the same state machine."""
    k = len(rates)
    p_mtd: dict[int | None, float] = dict.fromkeys((None, *range(k)), 0.0)
    moments = [0.0, 0.0]  # E[N], E[N^2]

    def walk(counts: tuple[LevelCount, ...], current: int, slots: int, n: int, prob: float) -> None:
        for x in range(4):
            q = prob * binom(x, 3, rates[current])
            if q == 0.0:
                continue
            before = counts[current]
            after = LevelCount(before.evaluable + 3, before.dlts + x)
            grown = (*counts[:current], after, *counts[current + 1 :])
            assert cohort_is_decidable(after, slots)
            match decide(variant, grown, current):
                case Escalate(to_level=level):
                    walk(grown, level, 3, n + 3, q)
                case Expand(level=level) | DeEscalate(to_level=level):
                    walk(grown, level, grown[level].evaluable + 3, n + 3, q)
                case DeclareMtd(level=level):
                    p_mtd[level] += q
                    moments[0] += q * (n + 3)
                    moments[1] += q * (n + 3) ** 2
                case StopForToxicity():
                    p_mtd[None] += q
                    moments[0] += q * (n + 3)
                    moments[1] += q * (n + 3) ** 2

    walk((LevelCount(),) * k, 0, 3, 0, 1.0)
    return Exact(p_mtd, moments[0], moments[1] - moments[0] ** 2)


# --- closed forms, written without the rule code ------------------------------------------------


def lin_shih_storer(
    rates: Sequence[float], *, a: int = 3, b: int = 3, c: int = 1, d: int = 1, e: int = 1
) -> tuple[dict[int | None, float], float]:
    """Lin & Shih (2001, Biostatistics 2:203-215), A+B design without de-escalation.

    At each level treat A; escalate if fewer than C of A have a DLT; stop if more than D; else
    treat B more and escalate if at most E of A+B have a DLT.  3+3 is A=B=3, C=D=E=1.  The MTD is
    the level below the first one that stops.  P0 = P(escalate on A), Q0 = P(escalate on A+B).
    """
    k = len(rates)
    escalate: list[float] = []
    expected_at: list[float] = []
    for p in rates:
        p0 = sum(binom(x, a, p) for x in range(c))
        q0 = sum(
            binom(x, a, p) * sum(binom(y, b, p) for y in range(e - x + 1)) for x in range(c, d + 1)
        )
        escalate.append(p0 + q0)
        expected_at.append(a + b * sum(binom(x, a, p) for x in range(c, d + 1)))
    reach = [math.prod(escalate[:j]) for j in range(k + 1)]  # P(level j is treated)
    p_mtd: dict[int | None, float] = {None: 1.0 - escalate[0]}
    for i in range(k - 1):
        p_mtd[i] = reach[i + 1] * (1.0 - escalate[i + 1])
    p_mtd[k - 1] = reach[k]
    mean_n = sum(reach[j] * expected_at[j] for j in range(k))
    return p_mtd, mean_n


def deescalating_closed_form(
    variant: Variant, rates: Sequence[float]
) -> tuple[dict[int | None, float], float]:
    """Hand-derived P(MTD) and E[N] for `korn` and `strict-six`.

    First visit to level j (reached with probability V_j, the product of the escalation
    probabilities below it) ends in: e3 = 0/3 (escalate with 3), e6 = 1/3 then 0/3 (escalate with
    6), or too toxic, T = 1 - e3 - e6.  Under strict-six the top level instead ends at ≤1/6 of 6.
    D_j, the probability that the process, once at j, comes back down to j-1, solves
    D_j = T_j + e3_j (1 - r_j) D_{j+1}, D_K = 0, where r = P(≤1 DLT among 3 more).  Then
    P(MTD = i < top) = V_i D_{i+1} (e6_i + e3_i r_i), P(MTD = top) = V_top (1 - T_top), and
    E[N] sums first-visit subjects and the 3 of each reopening, V_j e3_j D_{j+1}.
    """
    k = len(rates)
    q3 = [(1 - p) ** 3 for p in rates]
    one3 = [3 * p * (1 - p) ** 2 for p in rates]
    e3 = q3[:]
    e6 = [one3[j] * q3[j] for j in range(k)]
    r = [q3[j] + one3[j] for j in range(k)]
    first_n = [3 + 3 * one3[j] for j in range(k)]
    tolerable = [e3[j] + e6[j] for j in range(k)]
    if variant is Variant.STRICT_SIX:
        p = rates[-1]
        tolerable[-1] = (1 - p) ** 6 + 6 * p * (1 - p) ** 5
        first_n[-1] = 3 + 3 * (q3[-1] + one3[-1])
    toxic = [1 - t for t in tolerable]
    reach = [math.prod(tolerable[:j]) for j in range(k)]
    down = [0.0] * (k + 1)
    for j in range(k - 1, -1, -1):
        down[j] = toxic[j] + (e3[j] * (1 - r[j]) * down[j + 1] if j < k - 1 else 0.0)
    p_mtd: dict[int | None, float] = {None: down[0]}
    for i in range(k - 1):
        p_mtd[i] = reach[i] * down[i + 1] * (e6[i] + e3[i] * r[i])
    p_mtd[k - 1] = reach[k - 1] * tolerable[k - 1]
    reopened = sum(reach[j] * e3[j] * down[j + 1] * 3 for j in range(k - 1))
    mean_n = sum(reach[j] * first_n[j] for j in range(k)) + reopened
    return p_mtd, mean_n


ALL_RATES = [pytest.param(rates, id=f"{label} {rates}") for label, rates in RATE_SETS.items()] + [
    pytest.param((0.0, 0.0, 0.0), id="no toxicity"),
    pytest.param((1.0, 1.0, 1.0), id="certain toxicity"),
    pytest.param((0.2, 0.25, 0.33, 0.4, 0.5), id="five levels"),
    pytest.param((0.3,), id="single level"),
]


@pytest.mark.parametrize("rates", ALL_RATES)
def test_enumeration_matches_lin_shih_for_storer(rates: tuple[float, ...]) -> None:
    """The rule code's storer operating characteristics equal Lin & Shih's closed form."""
    exact = enumerate_exactly(Variant.STORER, rates)
    p_mtd, mean_n = lin_shih_storer(rates)
    assert exact.p_mtd == pytest.approx(p_mtd, abs=1e-12)
    assert exact.mean_n == pytest.approx(mean_n, abs=1e-12)


@pytest.mark.parametrize("variant", [Variant.KORN, Variant.STRICT_SIX])
@pytest.mark.parametrize("rates", ALL_RATES)
def test_enumeration_matches_the_hand_derivation_for_deescalating_variants(
    variant: Variant, rates: tuple[float, ...]
) -> None:
    """The rule code's korn and strict-six characteristics equal the hand-derived closed form."""
    exact = enumerate_exactly(variant, rates)
    p_mtd, mean_n = deescalating_closed_form(variant, rates)
    assert exact.p_mtd == pytest.approx(p_mtd, abs=1e-12)
    assert exact.mean_n == pytest.approx(mean_n, abs=1e-12)


@pytest.mark.parametrize(
    ("rate", "published"),
    [
        pytest.param(0.10, 0.91, id="10% DLT escalates with probability 0.91"),
        pytest.param(0.20, 0.71, id="20% DLT escalates with probability 0.71"),
        pytest.param(0.30, 0.49, id="30% DLT escalates with probability 0.49"),
        pytest.param(0.40, 0.31, id="40% DLT escalates with probability 0.31"),
        pytest.param(0.50, 0.17, id="50% DLT escalates with probability 0.17"),
    ],
)
def test_escalation_probability_matches_the_published_3_plus_3_table(
    rate: float, published: float
) -> None:
    """P(leaving a level upward) is the widely published (1-p)^3 + 3p(1-p)^5, to two places."""
    exact = enumerate_exactly(Variant.STORER, (rate, 0.5))
    assert round(1.0 - exact.p_mtd[None], 2) == published


def test_exact_probabilities_sum_to_one() -> None:
    """Every enumerated path ends in exactly one outcome."""
    for variant in Variant:
        for rates in RATE_SETS.values():
            assert sum(enumerate_exactly(variant, rates).p_mtd.values()) == pytest.approx(1.0)


def test_the_variants_differ_where_the_tables_say() -> None:
    """With no toxicity, storer and korn stop at the top with 9 subjects and strict-six with 12."""
    for variant, n in ((Variant.STORER, 9), (Variant.KORN, 9), (Variant.STRICT_SIX, 12)):
        exact = enumerate_exactly(variant, (0.0, 0.0, 0.0))
        assert exact.p_mtd[2] == 1.0
        assert exact.mean_n == n


# --- the simulator against the exact values ----------------------------------------------------


def _simulated(variant: Variant, rates: tuple[float, ...]) -> SimulationResult:
    """The simulation every agreement test uses: fixed runs, seed and level names."""
    return simulate(variant, rates, runs=RUNS, seed=SEED, level_names=NAMES)


@pytest.mark.parametrize("variant", list(Variant))
@pytest.mark.parametrize(
    "rates", [pytest.param(rates, id=label) for label, rates in RATE_SETS.items()]
)
def test_simulation_agrees_with_the_exact_values(
    variant: Variant, rates: tuple[float, ...]
) -> None:
    """Simulated P(MTD) and E[N] lie within four standard errors of the exact values."""
    exact = enumerate_exactly(variant, rates)
    result = _simulated(variant, rates)
    for key, p in exact.keyed(NAMES).items():
        bound = 4 * math.sqrt(p * (1 - p) / RUNS) + 1e-9
        assert abs(result.p_mtd[key] - p) <= bound, (key, result.p_mtd[key], p)
    exact_se = math.sqrt(exact.var_n / RUNS)
    assert abs(result.expected_n - exact.mean_n) <= 4 * exact_se + 1e-9
    assert result.expected_n_se == pytest.approx(exact_se, rel=0.1)
    for key, p in result.p_mtd.items():
        assert result.p_mtd_se[key] == pytest.approx(math.sqrt(p * (1 - p) / RUNS))


def test_simulation_handles_other_level_counts() -> None:
    """Four named levels simulate as the exact enumeration says."""
    rates, names = (0.05, 0.15, 0.3, 0.45), ("3mg", "4mg", "5mg", "6mg")
    exact = enumerate_exactly(Variant.KORN, rates)
    result = simulate(Variant.KORN, rates, runs=RUNS, seed=SEED, level_names=names)
    assert set(result.p_mtd) == {"none", *names}
    for key, p in exact.keyed(names).items():
        assert abs(result.p_mtd[key] - p) <= 4 * math.sqrt(p * (1 - p) / RUNS) + 1e-9


@pytest.mark.parametrize(
    ("rates", "key", "n"),
    [
        pytest.param((0.0, 0.0, 0.0), "C", 9, id="no toxicity reaches the top with 9"),
        pytest.param((1.0, 1.0, 1.0), "none", 3, id="certain toxicity stops after 3"),
    ],
)
def test_degenerate_rates_give_certain_outcomes(rates: tuple[float, ...], key: str, n: int) -> None:
    """Probabilities 0 and 1 give one outcome with no sampling error."""
    result = simulate(Variant.STORER, rates, runs=50, seed=1)
    assert result.p_mtd[key] == 1.0
    assert result.expected_n == n
    assert result.expected_n_se == 0.0


def test_same_seed_gives_identical_results() -> None:
    """A simulation is reproducible from its inputs and seed alone."""
    first = simulate(Variant.STRICT_SIX, (0.1, 0.3, 0.5), runs=2_000, seed=7)
    again = simulate(Variant.STRICT_SIX, (0.1, 0.3, 0.5), runs=2_000, seed=7)
    other = simulate(Variant.STRICT_SIX, (0.1, 0.3, 0.5), runs=2_000, seed=8)
    assert first == again
    assert first.to_json_dict() == again.to_json_dict()
    assert other != first


def test_json_dict_has_the_agreed_keys() -> None:
    """The JSON form carries variant, runs, seed, p_mtd by level name and expected_n."""
    result = simulate("korn", (0.1, 0.3, 0.5), runs=500, seed=3)  # type: ignore[arg-type]
    data = result.to_json_dict()
    assert {"variant", "runs", "seed", "p_mtd", "expected_n"} <= set(data)
    assert (data["variant"], data["runs"], data["seed"]) == ("korn", 500, 3)
    assert data["p_mtd"] == result.p_mtd
    assert set(result.p_mtd) == {"none", "A", "B", "C"}
    assert sum(result.p_mtd.values()) == pytest.approx(1.0)
    assert data["expected_n"] == result.expected_n
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_a_single_run_has_no_standard_error_for_n() -> None:
    """One run cannot estimate the spread of N, and the JSON form says so with null."""
    result = simulate(Variant.KORN, (0.1, 0.3, 0.5), runs=1, seed=3)
    assert math.isnan(result.expected_n_se)
    assert result.to_json_dict()["expected_n_se"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"true_dlt": (0.1, -0.1, 0.5)}, r"\[0, 1\]", id="negative probability"),
        pytest.param({"true_dlt": (0.1, 1.5, 0.5)}, r"\[0, 1\]", id="probability above 1"),
        pytest.param({"true_dlt": (0.1, math.nan, 0.5)}, r"\[0, 1\]", id="NaN probability"),
        pytest.param({"true_dlt": (0.1, 0.2)}, "one probability per", id="too few rates"),
        pytest.param({"true_dlt": ()}, "got none", id="no rates"),
        pytest.param({"runs": 0}, "runs", id="zero runs"),
        pytest.param({"runs": -5}, "runs", id="negative runs"),
        pytest.param({"runs": 2.5}, "runs", id="fractional runs"),
        pytest.param({"runs": MAX_RUNS + 1}, "at most 10,000,000", id="runs over the bound"),
        pytest.param({"seed": 1.5}, "seed", id="non-integer seed"),
        pytest.param({"variant": "storrer"}, "unknown 3\\+3 variant", id="unknown variant"),
        pytest.param({"level_names": ("A", "A", "C")}, "distinct", id="duplicate level names"),
        pytest.param({"level_names": ("A", "none", "C")}, "reserved", id="level named none"),
    ],
)
def test_invalid_inputs_are_refused(kwargs: dict[str, object], message: str) -> None:
    """Bad inputs fail with a message naming the problem, before any simulation."""
    arguments: dict[str, object] = {
        "variant": Variant.KORN,
        "true_dlt": (0.1, 0.3, 0.5),
        "runs": 100,
        "seed": 1,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        simulate(**arguments)  # type: ignore[arg-type]
