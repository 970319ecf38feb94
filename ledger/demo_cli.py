"""`ledger demo`: the whole synthetic trial on a fresh embedded store, with everything a user
looks at first (cohort table, datasets, report, a signing key and its checkpoints)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.cli_plumbing import (
    INCOMPLETE_MARKER,
    UsageError,
    provenance_of,
    software_version,
)


def demo_command(args: argparse.Namespace) -> int:
    """`ledger demo`: a seeded synthetic trial, its datasets, report and signing key."""
    from ledger.audit.checkpoints import generate_signing_key, load_signing_key
    from ledger.demo import check_subjects, replay_commands, run_demo
    from ledger.ledger_reader import LedgerReader
    from ledger.projections.cohorts import cohort_table
    from ledger.projections.export import export_report
    from ledger.projections.report import write_report

    try:
        check_subjects(args.subjects)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _claim_demo_folder(args.out)
    key_path = args.out / "signing-key.pem"
    signer = load_signing_key(key_path) if key_path.exists() else generate_signing_key(key_path)
    (args.out / "public-key.pem").write_text(signer.public_key_pem, encoding="ascii")
    run = run_demo(args.out, args.seed, signer=signer, subjects=args.subjects)
    with LedgerReader(run.store) as ledger:
        entries = list(ledger.entries(run.trial_id))
        provenance = provenance_of(entries, ledger.checkpoints(run.trial_id))
    table = cohort_table(entries)
    report = export_report(
        entries,
        as_of=None,
        cutoff=run.last_day,
        out=args.out,
        software_version=software_version(),
        audit=provenance,
    )
    write_report(
        entries,
        as_of=None,
        cutoff=run.last_day,
        out=args.out,
        software_version=software_version(),
        provenance=provenance,
    )
    print(
        f"demo trial {run.trial_id}, seed {args.seed}: {run.submitted} submissions "
        f"({run.accepted} accepted, {run.duplicates} duplicates, {run.rejected} rejected)"
    )
    if args.subjects is not None and run.enrolled < args.subjects:
        print(f"enrolled {run.enrolled} of the {args.subjects} subjects asked for: no MTD was "
              "declared, so there was no expansion to enlarge")
    print(table.render())
    print(f"MTD: {table.mtd or 'none'}")
    print(report.headline)
    print(f"datasets, report.html, km_summary.csv, Kaplan–Meier plots and summary.txt in "
          f"{args.out} (cutoff {run.last_day})")
    print(f"checkpoints signed with {key_path} (key {signer.key_id}); public key in "
          f"{args.out / 'public-key.pem'}")
    print(f"wrote {run.store}, {run.submissions_file} and {run.protocol_file}; these commands "
          "replay the files into a fresh store (recorded now, not on the demo's calendar) and "
          "export the demo's CSV datasets from it:")
    for command in replay_commands(run, signing_key=key_path):
        print(f"  {command}")
    (args.out / INCOMPLETE_MARKER).unlink()
    return 0


DEMO_MARKER = ".ledger-demo"


def _claim_demo_folder(out: Path) -> None:
    """The demo replaces only what an earlier demo wrote: a store it did not make is refused."""
    store = out / "ledger.db"
    if store.exists() and not (out / DEMO_MARKER).exists():
        raise UsageError(
            f"{store} exists and was not made by `ledger demo`; choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("made by `ledger demo`; it may replace this folder\n")
    (out / INCOMPLETE_MARKER).write_text("`ledger demo` is running or was stopped\n")


