"""How fast the datasets fold is, next to simply reading the same events back from the store.

Records a synthetic trial of ``--subjects`` (default 1,000) subjects with full histories
(escalation, expansion, daily dosing, scans, AEs, corrections, follow-up) through ``LedgerService``
into a SQLite store, under the bundled protocol with ``max_subjects`` raised, then reports
events/second for

* reading: ``list(service.entries(trial_id))`` (the aggregate already loaded, so this is the
  store read and the translation to ``LedgerEntry`` only);
* folding: ``build_datasets(entries)`` over the entries already in memory;
* both: ``build_datasets(service.entries(trial_id))`` as ``ledger export`` does it;

and the fold-to-read ratio. Run: ``python bench/bench_datasets.py [--subjects N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ledger.aggregates.protocol import ProtocolDefinition
from ledger.application import LedgerService
from ledger.demo import SimulatedClock
from ledger.demo_site import SITES, PendingSubmission, SiteSimulator, due_submissions
from ledger.projections.datasets import build_datasets
from ledger.protocol_files import bundled_protocol

START = date(2024, 1, 8)
EXPANSION_ARRIVALS_PER_DAY = 4


def record_trial(store: Path, subjects: int, seed: int) -> tuple[str, int]:
    """Record the synthetic trial; returns the trial id and the number of recorded events."""
    raw = bundled_protocol().to_mapping()
    raw["max_subjects"] = subjects
    protocol = ProtocolDefinition.from_mapping(raw)
    rng = random.Random(seed)
    calendar = SimulatedClock(START)
    queue: list[PendingSubmission] = []
    end = START + timedelta(days=250 + subjects // EXPANSION_ARRIVALS_PER_DAY + 400)
    with LedgerService(str(store), clock=calendar.now) as ledger:
        ledger.open_trial(protocol, opened_by="bench")
        trial_id = protocol.trial_id
        sites = SiteSimulator(rng, trial_id, queue)
        numbers = itertools.count(1)
        enrolled = 0
        day = START
        while day <= end:
            calendar.today = day
            trial = ledger.find_trial(trial_id)
            assert trial is not None
            arrivals = EXPANSION_ARRIVALS_PER_DAY if trial.mtd_level is not None else 1
            for _ in range(arrivals):
                cohort = trial.open_cohort()
                if cohort is None or enrolled >= subjects:
                    break
                number = next(numbers)
                subject_id = f"{(number % 3) + 1:02d}-{number:04d}"
                dose = trial.dose_of_cohort(cohort)
                envelope = sites.envelope("subject.enrolled", subject_id, day,
                                          {"cohort": cohort}, site=SITES[number % 3])
                # Enrol now (not with the day's batch) so several can arrive on one day.
                queue.remove(next(p for p in queue if p.envelope is envelope))
                heapq.heapify(queue)
                result = ledger.submit(json.dumps(envelope))
                if result.rejected:
                    break
                enrolled += 1
                sites.subject_course(subject_id, cohort, dose, day, end)
            todays = list(due_submissions(queue, day))
            if todays:
                ledger.submit_many([json.dumps(e, sort_keys=True) for e in todays])
            day += timedelta(days=1)
        events = sum(1 for _ in ledger.entries(trial_id))
    return trial_id, events


def timed(action: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as scratch:
        store = Path(scratch) / "ledger.db"
        started = time.perf_counter()
        trial_id, events = record_trial(store, args.subjects, args.seed)
        recording = time.perf_counter() - started
        with LedgerService(str(store)) as ledger:
            started = time.perf_counter()
            ledger.find_trial(trial_id)  # replays the aggregate once; not part of either rate
            load = time.perf_counter() - started
            entries = list(ledger.entries(trial_id))
            read = timed(lambda: list(ledger.entries(trial_id)), args.repeat)
            fold = timed(lambda: build_datasets(entries, as_of=None, cutoff=None), args.repeat)
            both = timed(
                lambda: build_datasets(ledger.entries(trial_id), as_of=None, cutoff=None),
                args.repeat,
            )
            datasets = build_datasets(entries, as_of=None, cutoff=None)
    subjects = len(datasets.adsl)
    print(f"synthetic trial: {subjects} subjects, {events:,} recorded events "
          f"(recorded in {recording:.1f} s; aggregate load {load:.2f} s)")
    print(f"ADSL {len(datasets.adsl)} rows, ADTTE {len(datasets.adtte)}, "
          f"ADRS {len(datasets.adrs)}, ADAE {len(datasets.adae)}")
    print(f"read from store      : {events / read:12,.0f} events/s ({read:.3f} s)")
    print(f"build datasets (fold): {events / fold:12,.0f} events/s ({fold:.3f} s)")
    print(f"read + build         : {events / both:12,.0f} events/s ({both:.3f} s)")
    print(f"fold rate / read rate: {read / fold:.2f}")
    return 0 if subjects >= args.subjects else 1


if __name__ == "__main__":
    sys.exit(main())
