"""Monte Carlo operating characteristics of the 3+3 design, run on the ledger's own rule code.

The simulator calls `ledger.aggregates.escalation.decide` rather than restating the rules, so the
operating characteristics quoted for a protocol are those of the code that will run the trial.
Standard library only: the result must be reproducible from (variant, rates, runs, seed) alone.
"""

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

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

NO_MTD = "none"
"""Key of `SimulationResult.p_mtd` for runs that stopped for toxicity."""

MAX_RUNS = 10_000_000
"""The most runs one simulation takes (minutes of work); ten million estimate a probability to
within ±0.0003, and a mistyped `--runs` should not start hours of it."""

_COHORT = 3


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a simulation estimated, with its sampling error, for reports and for JSON."""

    variant: Variant
    runs: int
    seed: int
    true_dlt: tuple[float, ...]
    level_names: tuple[str, ...]
    p_mtd: dict[str, float]
    """Share of runs declaring each level the MTD; key ``"none"`` for a stop for toxicity."""
    p_mtd_se: dict[str, float]
    """Binomial standard error of each `p_mtd` entry, sqrt(p(1-p)/runs)."""
    expected_n: float
    """Mean number of subjects enrolled in dose escalation."""
    expected_n_se: float
    """Standard error of `expected_n`; NaN for a single run, where it cannot be estimated."""

    def to_json_dict(self) -> dict[str, object]:
        """Plain JSON types only; an inestimable standard error becomes null, not NaN."""
        return {
            "variant": str(self.variant),
            "runs": self.runs,
            "seed": self.seed,
            "p_mtd": dict(self.p_mtd),
            "expected_n": self.expected_n,
            "p_mtd_se": dict(self.p_mtd_se),
            "expected_n_se": None if math.isnan(self.expected_n_se) else self.expected_n_se,
            "true_dlt": list(self.true_dlt),
            "level_names": list(self.level_names),
        }


def simulate(
    variant: Variant,
    true_dlt: Sequence[float],
    runs: int,
    seed: int,
    level_names: Sequence[str] = ("A", "B", "C"),
) -> SimulationResult:
    """Estimate P(MTD = each level or none) and the expected sample size by simulation.

    Each run starts at the lowest level with 3 slots and enrolls cohorts of 3, every subject having
    a DLT with the level's true probability, until the rule declares an MTD or stops.
    """
    chosen, rates, names = _validated(variant, true_dlt, runs, seed, level_names)
    rng = random.Random(seed)
    tally = dict.fromkeys((NO_MTD, *names), 0)
    n_sum = 0
    n_sq_sum = 0
    for _ in range(runs):
        mtd, enrolled = _one_trial(chosen, rates, rng)
        tally[NO_MTD if mtd is None else names[mtd]] += 1
        n_sum += enrolled
        n_sq_sum += enrolled * enrolled

    p_mtd = {key: hits / runs for key, hits in tally.items()}
    p_mtd_se = {key: math.sqrt(p * (1.0 - p) / runs) for key, p in p_mtd.items()}
    expected_n = n_sum / runs
    if runs > 1:
        # Integer sums keep the variance exact before the one division.
        variance = (n_sq_sum - n_sum * n_sum / runs) / (runs - 1)
        expected_n_se = math.sqrt(max(variance, 0.0) / runs)
    else:
        expected_n_se = math.nan
    return SimulationResult(
        variant=chosen,
        runs=runs,
        seed=seed,
        true_dlt=rates,
        level_names=names,
        p_mtd=p_mtd,
        p_mtd_se=p_mtd_se,
        expected_n=expected_n,
        expected_n_se=expected_n_se,
    )


def _one_trial(
    variant: Variant, rates: tuple[float, ...], rng: random.Random
) -> tuple[int | None, int]:
    """One simulated escalation: the MTD index (None for a toxicity stop) and subjects enrolled."""
    counts = [LevelCount()] * len(rates)
    current = 0
    slots = _COHORT
    enrolled = 0
    # Every level receives at most two cohorts, so 2K cohorts always reach a final decision.
    for _ in range(2 * len(rates)):
        p = rates[current]
        dlts = sum(1 for _ in range(_COHORT) if rng.random() < p)
        before = counts[current]
        counts[current] = LevelCount(before.evaluable + _COHORT, before.dlts + dlts)
        enrolled += _COHORT
        if not cohort_is_decidable(counts[current], slots):
            continue
        decision = decide(variant, counts, current)
        match decision:
            case Escalate(to_level=level):
                current, slots = level, _COHORT
            case Expand(level=level):
                current, slots = level, counts[level].evaluable + _COHORT
            case DeEscalate(to_level=level):
                current, slots = level, counts[level].evaluable + _COHORT
            case DeclareMtd(level=level):
                return level, enrolled
            case StopForToxicity():
                return None, enrolled
            case _:
                assert_never(decision)
    raise RuntimeError(
        f"{variant} escalation over {len(rates)} levels made no final decision in "
        f"{2 * len(rates)} cohorts; the rule code is broken"
    )


def _validated(
    variant: Variant,
    true_dlt: Sequence[float],
    runs: int,
    seed: int,
    level_names: Sequence[str],
) -> tuple[Variant, tuple[float, ...], tuple[str, ...]]:
    """Check inputs at the edge, so a bad protocol file fails with a message, not a wrong table."""
    try:
        chosen = Variant(variant)
    except ValueError:
        known = ", ".join(v.value for v in Variant)
        raise ValueError(f"unknown 3+3 variant {variant!r}; expected one of {known}") from None
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a whole number ≥ 1, got {runs!r}")
    if runs > MAX_RUNS:
        raise ValueError(
            f"runs must be at most {MAX_RUNS:,} (about 15 s per million here), got {runs:,}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    rates = tuple(true_dlt)
    names = tuple(level_names)
    if not rates:
        raise ValueError("true_dlt needs one DLT probability per dose level; got none")
    if len(rates) != len(names):
        raise ValueError(
            f"true_dlt has {len(rates)} probabilities but level_names has {len(names)} names; "
            "give one probability per dose level"
        )
    for name, p in zip(names, rates, strict=True):
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"true DLT probability of level {name!r} must be in [0, 1], got {p!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"level names must be distinct, got {names!r}")
    if NO_MTD in names:
        raise ValueError(f"{NO_MTD!r} is reserved for 'no tolerable dose' and cannot name a level")
    return chosen, tuple(float(p) for p in rates), names
