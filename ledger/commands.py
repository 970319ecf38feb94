"""The core `ledger` commands (contract §5): init, submit, cohorts, history, simulate, schema,
export and report. Each takes the parsed options and returns the exit code; `ledger.cli` declares
their options and reports their errors (the audit commands are `ledger.audit_cli`'s).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ledger.aggregates.escalation import Variant
from ledger.cli_plumbing import (
    EXIT_OK,
    EXIT_REJECTED,
    UsageError,
    as_of_argument,
    emit,
    provenance_of,
    read_lines,
    reader,
    software_version,
    writer,
)
from ledger.protocol_files import bundled_protocol, load_protocol
from ledger.store import redacted

SUBMIT_BATCH = 1000
"""Lines of a submitted file recorded per transaction."""


def init_command(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol) if args.protocol else bundled_protocol()
    if args.variant:
        protocol = protocol.with_variant(Variant(args.variant))
    with writer(args) as ledger:
        entry = ledger.open_trial(protocol, opened_by=args.entered_by, reason=args.reason)
    document = {
        "trial_id": protocol.trial_id,
        "protocol_version": protocol.protocol_version,
        "variant": protocol.escalation.variant.value,
        "position": entry.position,
    }
    emit(
        args,
        document,
        f"opened {protocol.trial_id} (protocol {protocol.protocol_version}, "
        f"{protocol.escalation.variant.value}) in {redacted(args.store)}",
    )
    return 0


def submit_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    lines = read_lines(path)
    accepted = duplicates = done = 0
    rejected: list[dict[str, Any]] = []
    ledger = writer(args)  # a refusal (no key for a signed store) comes before any line
    try:
        with ledger:
            ledger.ensure_trial()
            for start in range(0, len(lines), SUBMIT_BATCH):
                batch = lines[start : start + SUBMIT_BATCH]
                report = ledger.submit_many(
                    [raw for _, raw in batch],
                    origin=f"file:{path.name}",
                    line_numbers=[number for number, _ in batch],
                )
                accepted += report.accepted
                duplicates += report.duplicates
                for (line_number, _), result in zip(batch, report.results, strict=True):
                    if result.rejected:
                        assert result.reason_code is not None
                        rejected.append(
                            {
                                "line": line_number,
                                "event_id": result.event_id,
                                "reason_code": result.reason_code.value,
                                "message": result.message,
                            }
                        )
                done += len(batch)
    finally:
        if done < len(lines):  # stopped early: say exactly what was and was not recorded
            print(
                f"{path}: stopped after line {done} of {len(lines)}: {accepted} accepted, "
                f"{duplicates} duplicates, {len(rejected)} rejected; lines {done + 1}.."
                f"{len(lines)} were not submitted (a batch is all or nothing: resubmit the file, "
                "recorded lines count as duplicates)",
                file=sys.stderr,
            )
    document = {
        "lines": len(lines),
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
    }
    text = [
        f"{path}: {len(lines)} lines: {accepted} accepted, {duplicates} duplicates, "
        f"{len(rejected)} rejected"
    ]
    text += [
        f"  line {r['line']}: {r['reason_code']}: {r['message']} (event {r['event_id']})"
        for r in rejected
    ]
    emit(args, document, "\n".join(text))
    return EXIT_REJECTED if rejected else EXIT_OK


def cohorts_command(args: argparse.Namespace) -> int:
    as_of = as_of_argument(args)
    with reader(args) as ledger:
        trial_id = args.trial or ledger.default_trial_id()
        table = ledger.cohort_table(trial_id, as_of=as_of)
    if table.position == 0:
        raise UsageError(f"trial {trial_id} was not yet open at {args.as_of}")
    emit(args, table.to_json_dict(), table.render())
    return 0


def history_command(args: argparse.Namespace) -> int:
    as_of = as_of_argument(args)
    with reader(args) as ledger:
        trial_id = args.trial or ledger.default_trial_id()
        # The USUBJID ({trial}-{subject}) names the same subject as its subject id.
        subject = args.subject.removeprefix(f"{trial_id}-")
        entries = ledger.history(trial_id, subject, as_of=as_of)
    if not entries:
        raise UsageError(f"no recorded events for subject {args.subject} in {trial_id}")
    document = {
        "trial_id": trial_id,
        "subject_id": subject,
        "usubjid": f"{trial_id}-{subject}",
        "entries": [entry.to_json_dict() for entry in entries],
    }
    rows = [
        f"{e.position:>6}  {e.recorded_at.strftime('%Y-%m-%d %H:%M:%SZ')}  "
        f"{e.occurred_on.isoformat() if e.occurred_on else '':<10}  {e.type:<24} "
        f"by {e.entered_by} via {e.source}"
        + (f" — why: {e.reason}" if e.reason else "")
        + f"\n        event {e.event_id or '-'}  leaf {e.leaf_hash or '(not hashed)'}"
        + f"\n        {json.dumps(dict(e.data), sort_keys=True)}"
        for e in entries
    ]
    header = (
        f"audit trail of {trial_id}-{subject}: position, recorded (UTC), "
        "occurred, what, who, why; event id and leaf hash; data"
    )
    emit(args, document, "\n".join([header, *rows]))
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    from ledger.simulation import simulate

    try:
        rates = [float(part) for part in args.true_dlt.split(",")]
    except ValueError:
        raise UsageError(
            f"--true-dlt {args.true_dlt!r}: expected numbers like 0.1,0.25,0.4"
        ) from None
    levels = [level.name for level in bundled_protocol().dose_levels]
    if len(rates) != len(levels):
        raise UsageError(f"--true-dlt needs {len(levels)} rates, one per level {','.join(levels)}")
    result = simulate(
        Variant(args.variant), rates, runs=args.runs, seed=args.seed, level_names=levels
    )
    document: dict[str, Any] = result.to_json_dict()
    text = [f"{args.variant}: {args.runs} simulated trials, seed {args.seed}, true DLT {rates}"]
    text += [f"  P(MTD = {name:<4}) = {p:.4f}" for name, p in document["p_mtd"].items()]
    text.append(f"  expected subjects in escalation = {document['expected_n']:.2f}")
    emit(args, document, "\n".join(text))
    return 0


def schema_command(args: argparse.Namespace) -> int:
    from ledger.schemas.submissions import submission_json_schema

    try:
        schema = submission_json_schema(args.type)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from ledger.audit.provenance import export_provenance
    from ledger.projections.export import export_datasets

    as_of = as_of_argument(args)
    with reader(args) as ledger:
        trial_id = args.trial or ledger.default_trial_id()
        # One read of the seals over the exported entries gives their leaf hashes, the
        # checkpoints within them and the frontier a tree head goes on from.
        sealed = ledger.sealed_prefix(trial_id, ledger.size(trial_id, as_of=as_of))
        manifest = export_datasets(
            ledger.entries(trial_id, as_of=as_of, sealed=sealed),
            as_of=as_of,
            cutoff=args.cutoff,
            fmt=args.format,
            out=args.out,
            software_version=software_version(),
            audit=(
                export_provenance(sealed.leaf_hashes, sealed.checkpoints, sealed.frontier)
                if sealed.hashed
                else None  # a store written before the ledger hashed its log, not yet sealed
            ),
        )
    document = manifest.to_json_dict()
    emit(args, document, f"wrote {args.format} datasets and manifest.json to {args.out} "
                         f"({manifest.summary})")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from ledger.projections.report import write_report

    as_of = as_of_argument(args)
    with reader(args) as ledger:
        trial_id = args.trial or ledger.default_trial_id()
        entries = list(ledger.entries(trial_id, as_of=as_of))
        files = write_report(
            entries,
            as_of=as_of,
            cutoff=args.cutoff,
            out=args.out,
            software_version=software_version(),
            provenance=provenance_of(entries, ledger.checkpoints(trial_id, as_of=as_of)),
        )
    document = {
        "report": str(files.html),
        "km_summary": str(files.km_summary),
        "figures": list(files.figures),
    }
    emit(args, document, f"wrote {files.html} and {files.km_summary}")
    return 0
