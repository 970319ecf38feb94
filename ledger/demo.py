"""A seeded synthetic NCT05406206: sites submitting day by day, the ledger deciding as it goes.

Subjects arrive on a calendar; each is enrolled only when the ledger says a cohort has a place, so
escalation, expansion and replacement all happen through the aggregates. Every submission is also
written to `submissions.jsonl` and the protocol the trial opened with to `protocol.json`, so
`ledger init --protocol protocol.json` then `ledger submit submissions.jsonl` on a fresh store
replays the same history (`replay_commands`).

The demo's ledger runs on a simulated clock (recorded in the evening of each calendar day) so its
history spreads over the trial's calendar and `--as-of` questions have interesting answers.

The sites speak envelope version 2 (contract §9) where it says more than version 1: each enrollment
carries the subject's baseline characteristics and each adverse event report its MedDRA coding.
Every envelope goes out in the lowest version its data fits (`schemas.submissions.wire_version`).
The baseline characteristics come from their own random stream, seeded from the same seed, so
a seed's clinical course (and every dataset number derived from it) is the one it always was.
"""

from __future__ import annotations

import itertools
import json
import random
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from ledger.application import BatchReport, LedgerService
from ledger.audit.checkpoints import Signer
from ledger.demo_site import SITES, PendingSubmission, SiteSimulator, due_submissions
from ledger.protocol_files import bundled_protocol

DEMO_START = date(2024, 1, 8)
DEMO_END = date(2026, 6, 30)
EXPANSION_ARRIVALS_PER_DAY = 4
MAX_SUBJECTS = 20_000
"""The most `--subjects` takes: a bigger synthetic ledger takes hours to write (about a minute
per thousand subjects here) and a typo should not start one."""
SUBMISSIONS_FILE = "submissions.jsonl"
PROTOCOL_FILE = "protocol.json"


@dataclass(frozen=True, slots=True)
class DemoRun:
    trial_id: str
    submissions_file: Path
    protocol_file: Path
    """The protocol the trial opened with (`ledger init --protocol` reads it)."""
    store: str
    submitted: int
    accepted: int
    duplicates: int
    rejected: int
    last_day: date
    enrolled: int
    """Subjects enrolled: fewer than `--subjects` asked for when no MTD was declared (there is
    no expansion to enlarge)."""


class SimulatedClock:
    """A simulated wall clock: the ledger records each day's submissions that evening."""

    def __init__(self, start: date) -> None:
        self.today = start
        self._tick = itertools.count()

    def now(self) -> datetime:
        return datetime.combine(self.today, time(18, 0), tzinfo=UTC) + timedelta(
            microseconds=next(self._tick)
        )


def run_demo(
    out: Path, seed: int, signer: Signer | None = None, subjects: int | None = None
) -> DemoRun:
    """Run the whole synthetic trial into `out/ledger.db`, `out/submissions.jsonl` and
    `out/protocol.json` (the protocol the trial opened with), its checkpoints signed with `signer`.

    `subjects`: enlarge the expansion so that this many subjects enroll in all (the protocol's
    `max_subjects`, recorded in `trial.opened`), arriving up to EXPANSION_ARRIVALS_PER_DAY a day
    once the MTD is declared, more a day when that many would not all enroll by the demo's last
    day: how users and benchmarks make a big ledger.
    """
    check_subjects(subjects)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "ledger.db"
    submissions_file, protocol_file = out / SUBMISSIONS_FILE, out / PROTOCOL_FILE
    for stale in (store, submissions_file, protocol_file):
        stale.unlink(missing_ok=True)
    rng = random.Random(seed)
    calendar = SimulatedClock(DEMO_START)
    queue: list[PendingSubmission] = []
    totals = BatchReport()
    submitted = 0
    with (
        LedgerService(str(store), clock=calendar.now, signer=signer) as ledger,
        submissions_file.open("w") as jsonl,
    ):
        trial_id = _open_trial(ledger, subjects, protocol_file)
        baseline = random.Random(f"trial-ledger demo baseline {seed}")
        sites = SiteSimulator(rng, trial_id, queue, baseline_rng=baseline)
        subject_numbers = itertools.count(1)
        next_arrival = DEMO_START
        enrolled = 0
        for today in _days(DEMO_START, DEMO_END):
            calendar.today = today
            trial = ledger.find_trial(trial_id)
            assert trial is not None
            cohort = trial.open_cohort()
            arrivals = 1
            if subjects is not None and trial.mtd_level is not None:
                arrivals = expansion_arrivals(trial.protocol.max_subjects - enrolled, today)
            if cohort is None or today < next_arrival:
                arrivals = 0
            for _ in range(arrivals):
                assert cohort is not None
                number = next(subject_numbers)
                enrolled += 1
                subject_id = f"{(number % 3) + 1:02d}-{number:03d}"
                dose = trial.dose_of_cohort(cohort)
                site = SITES[int(subject_id[:2]) - 1]
                sites.envelope(
                    "subject.enrolled",
                    subject_id,
                    today,
                    sites.enrollment_data(cohort, today, site),
                    site=site,
                )
                sites.subject_course(subject_id, cohort, dose, today, DEMO_END)
                next_arrival = today + timedelta(
                    days=1 if arrivals > 1 else rng.randint(3, 12)
                )
            todays = list(due_submissions(queue, today))
            if not todays:
                continue
            if rng.random() < 0.02:
                todays.append(todays[0])  # an EDC retry: the ledger records it once
            lines = [json.dumps(envelope, sort_keys=True) for envelope in todays]
            jsonl.write("".join(line + "\n" for line in lines))
            submitted += len(lines)
            report = ledger.submit_many(lines)
            totals.results.extend(report.results)
        return DemoRun(
            trial_id=trial_id,
            submissions_file=submissions_file,
            protocol_file=protocol_file,
            store=str(store),
            submitted=submitted,
            accepted=totals.accepted,
            duplicates=totals.duplicates,
            rejected=len(totals.rejected),
            last_day=DEMO_END,
            enrolled=enrolled,
        )


def check_subjects(subjects: int | None) -> None:
    """Refuse a `--subjects` over MAX_SUBJECTS, before anything is written."""
    if subjects is not None and subjects > MAX_SUBJECTS:
        raise ValueError(
            f"--subjects {subjects} is more than the demo makes ({MAX_SUBJECTS:,}; about a "
            f"minute per thousand subjects)"
        )


def expansion_arrivals(remaining: int, today: date) -> int:
    """How many subjects enroll today in the enlarged expansion: EXPANSION_ARRIVALS_PER_DAY, or
    more when the `remaining` would not all enroll by DEMO_END at that pace."""
    days_left = (DEMO_END - today).days + 1
    needed_per_day = -(-remaining // days_left)  # ceiling: the last day takes the rest
    return min(max(EXPANSION_ARRIVALS_PER_DAY, needed_per_day), remaining)


def replay_commands(
    run: DemoRun,
    *,
    store: str = "replay.db",
    out: str = "replay-out",
    signing_key: Path | None = None,
) -> list[str]:
    """The shell commands that rebuild the demo's ledger from its files on a fresh `store`:
    open the trial with the demo's protocol (variant and size included), then submit.

    The replay records at the time it runs, not on the demo's calendar, so recorded times (and
    leaf hashes, checkpoints) differ; the entries' content and every decision are the demo's. The
    last command exports the datasets at the demo's cutoff into `out`: the demo's ADSL, ADTTE,
    ADRS and ADAE files byte for byte.
    """
    signing = [] if signing_key is None else ["--signing-key", str(signing_key)]
    on_store = ["--store", store, *signing]
    commands = [
        ["ledger", "init", "--protocol", str(run.protocol_file), *on_store],
        ["ledger", "submit", str(run.submissions_file), *on_store],
        ["ledger", "export", "--cutoff", run.last_day.isoformat(), "--store", store, "--out", out],
    ]
    return [shlex.join(command) for command in commands]


def _open_trial(ledger: LedgerService, subjects: int | None, protocol_file: Path) -> str:
    """Open the demo's trial (the bundled protocol, its expansion enlarged to `subjects`) and
    write the protocol it opened with to `protocol_file`, as `ledger init --protocol` reads it."""
    if subjects is None:
        trial_id = ledger.ensure_trial()
    else:
        protocol = bundled_protocol().with_max_subjects(subjects)
        trial_id = ledger.open_trial(
            protocol, opened_by="ledger-demo", reason=f"demo enlarged to {subjects} subjects"
        ).trial_id
    opened = ledger.find_trial(trial_id)
    assert opened is not None
    protocol_file.write_text(
        json.dumps(opened.protocol.to_mapping(), indent=2) + "\n", encoding="ascii"
    )
    return trial_id


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)
