"""Recording cost per submission, without Kafka: parsing, the Trial aggregate, the store, replay.

    python bench/bench_record.py [--submissions FILE.jsonl] [--replay STORE] [--runs 3]
                                 [--batch 2000]

Over the lines of a demo's `submissions.jsonl` (by default a fresh `ledger demo --subjects 300
--seed 3`, made in a temporary folder), timed best of RUNS:

1. parse: `parse_submission` + `to_domain` of every line;
2. record: `Trial.record` of every parsed submission into a trial opened in memory under the
   demo's protocol (no store);
3. submit: `LedgerService.submit_many` of the lines, BATCH at a time, into a fresh SQLite store
   (parse, record, seal, commit: what ingest does per polled batch, without Kafka);
4. replay: the Trial aggregate read back from STORE (read-only; default the store just written),
   with eventsourcing's default projector and with `trial.project_trial`, and their ratio.

Each figure is printed as a rate (submissions or events per second), comparable across runs and
versions of the code on the same machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.application import project_aggregate

from ledger.aggregates.facts import Submission
from ledger.aggregates.rejections import SubmissionRejectedError
from ledger.aggregates.trial import Trial, project_trial
from ledger.aggregates.trial_topics import trial_aggregate_id
from ledger.application import LedgerService
from ledger.demo import run_demo
from ledger.ledger_reader import LedgerReader
from ledger.schemas.submissions import InvalidSubmissionError, parse_submission, to_domain

TRIAL = "NCT05406206"
#: After every demo date, so no submission is refused as dated in the future.
RECORDED_AT = datetime(2100, 1, 1, tzinfo=UTC)


def best(runs: int, timed: Callable[[], object]) -> tuple[float, float]:
    """Fastest and slowest of `runs` timings of `timed`, in seconds."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        timed()
        seconds.append(time.perf_counter() - started)
    return min(seconds), max(seconds)


def parse_all(lines: list[bytes]) -> list[Submission]:
    parsed: list[Submission] = []
    for line in lines:
        try:
            parsed.append(to_domain(parse_submission(line, recorded_on=RECORDED_AT.date())))
        except InvalidSubmissionError:
            continue
    return parsed


def record_all(opened: Trial, submissions: list[Submission]) -> int:
    """Record every submission into a copy of the freshly opened trial; its events."""
    trial = Trial.open(opened.protocol, source="bench", entered_by="bench", recorded_at=RECORDED_AT)
    for submission in submissions:
        try:
            trial.record(submission, RECORDED_AT)
        except SubmissionRejectedError:
            continue
    return trial.version


def submit_all(protocol_source: Trial, lines: list[bytes], batch: int, folder: Path) -> None:
    store = folder / f"submit-{time.perf_counter_ns()}.db"
    with LedgerService(str(store), clock=lambda: RECORDED_AT) as service:
        service.open_trial(protocol_source.protocol, opened_by="bench")
        for at in range(0, len(lines), batch):
            service.submit_many(lines[at : at + batch])


def replay(store: str, projector: Callable[..., Trial | None] = project_aggregate) -> int:
    """Read the Trial back from `store` with `projector`; its events."""
    with LedgerReader(store) as service:
        trial: Trial = service._app.repository.get(
            trial_aggregate_id(TRIAL), projector_func=projector
        )
        return trial.version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=Path, default=None)
    parser.add_argument("--replay", default=None, help="a store to replay (read-only)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        folder = Path(tmp)
        source = args.submissions
        if source is None:
            run_demo(folder / "demo", seed=3, subjects=300)
            source = folder / "demo" / "submissions.jsonl"
        demo_store = str(source.parent / "ledger.db")
        lines = [line for line in source.read_bytes().splitlines() if line.strip()]
        with LedgerReader(demo_store) as demo:
            opened = demo.find_trial(TRIAL)
        assert opened is not None, f"no trial {TRIAL} in {demo_store}"
        count = len(lines)
        print(f"submissions: {count} from {source}")

        low, high = best(args.runs, lambda: parse_all(lines))
        print(f"parse:   {count / low:9,.0f} submissions/s  ({low:.2f}-{high:.2f} s)")

        parsed = parse_all(lines)
        events = record_all(opened, parsed)
        low, high = best(args.runs, lambda: record_all(opened, parsed))
        print(f"record:  {count / low:9,.0f} submissions/s  ({low:.2f}-{high:.2f} s, "
              f"{events} events, in memory)")

        low, high = best(args.runs, lambda: submit_all(opened, lines, args.batch, folder))
        print(f"submit:  {count / low:9,.0f} submissions/s  ({low:.2f}-{high:.2f} s, "
              f"batches of {args.batch}, fresh SQLite)")

        store = args.replay or str(max(folder.glob("submit-*.db")))
        events = replay(store)
        print(f"replay of {events} events of {store}:")
        rates = []
        for name, projector in (("project_aggregate", project_aggregate),
                                ("project_trial", project_trial)):
            low, high = best(args.runs, lambda: replay(store, projector))  # noqa: B023
            rates.append(events / low)
            print(f"  {name:17}  {events / low:9,.0f} events/s  ({low:.2f}-{high:.2f} s)")
        print(f"  project_trial / project_aggregate: {rates[1] / rates[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
