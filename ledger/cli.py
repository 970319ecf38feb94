"""The `ledger` command (contract §5).

Every command exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ledger import audit_cli
from ledger.aggregates.escalation import Variant
from ledger.aggregates.protocol import ProtocolInvalidError
from ledger.application import (
    bundled_protocol,
    configured_signer,
    load_protocol,
    redacted,
)
from ledger.audit.inspection import AuditSource
from ledger.cli_options import shared_options
from ledger.cli_plumbing import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    INCOMPLETE_MARKER,
    UsageError,
    as_of_argument,
    emit,
    one_line,
    positive_int,
    provenance_of,
    read_lines,
    reader,
    software_version,
    writer,
)
from ledger.demo_cli import demo_command
from ledger.schemas.submissions import submission_json_schema
from ledger.settings import Environment

SUBMIT_BATCH = 1000


def main(argv: Sequence[str] | None = None) -> int:
    environment = Environment.read()
    parser = _parser(environment)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        _refuse_password_on_command_line(args, environment)
        code = handler(args)
        if getattr(args, "unsigned", False):
            print(
                f"ledger {args.command}: WARNING: no signing key (--signing-key or "
                "LEDGER_SIGNING_KEY): checkpoints were recorded unsigned; `ledger verify` says so",
                file=sys.stderr,
            )
        return code
    except BrokenPipeError:
        # The reader went away (`ledger history ... | head`): nothing more to say to anyone.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except audit_cli.NotIntactError as error:
        print(f"ledger {args.command}: {error}", file=sys.stderr)
        return EXIT_REJECTED
    except (UsageError, ValueError, LookupError, ProtocolInvalidError) as error:
        _mark_incomplete(args, error)
        print(f"ledger {args.command}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _mark_incomplete(args, "interrupted (Ctrl-C)")
        print(f"ledger {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        _mark_incomplete(args, error)
        if environment.debug:
            raise
        print(
            f"ledger {args.command}: failed: {type(error).__name__}: {one_line(error)} "
            "(LEDGER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _mark_incomplete(args: argparse.Namespace, why: object) -> None:
    """A command that writes a folder and stopped half-way leaves a file saying so, so a partial
    output never passes for a complete one."""
    out = getattr(args, "out", None)
    if isinstance(out, Path) and out.is_dir():
        (out / INCOMPLETE_MARKER).write_text(
            f"`ledger {args.command}` stopped before finishing: {why}\n"
            "The files in this folder are partial; run the command again.\n",
            encoding="utf-8",
        )


def _refuse_password_on_command_line(args: argparse.Namespace, environment: Environment) -> None:
    store = getattr(args, "store", None)
    if store is None or (environment.store_from_environment and store == environment.store):
        return
    if "://" in store and urlparse(store).password is not None:
        raise UsageError(
            "a password in --store is visible to every user (ps); use PGPASSWORD, ~/.pgpass, "
            "or the whole URL in LEDGER_STORE"
        )


# --- commands ---------------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
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


def _submit(args: argparse.Namespace) -> int:
    path: Path = args.file
    lines = read_lines(path)
    accepted = duplicates = done = 0
    rejected: list[dict[str, Any]] = []
    try:
        with writer(args) as ledger:
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


def _cohorts(args: argparse.Namespace) -> int:
    as_of = as_of_argument(args)
    with reader(args) as ledger:
        trial_id = args.trial or ledger.default_trial_id()
        table = ledger.cohort_table(trial_id, as_of=as_of)
    if table.position == 0:
        raise UsageError(f"trial {trial_id} was not yet open at {args.as_of}")
    emit(args, table.to_json_dict(), table.render())
    return 0


def _history(args: argparse.Namespace) -> int:
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


def _simulate(args: argparse.Namespace) -> int:
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


def _schema(args: argparse.Namespace) -> int:
    try:
        schema = submission_json_schema(args.type)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


def _export(args: argparse.Namespace) -> int:
    from collections.abc import Iterator

    from ledger.entries import LedgerEntry
    from ledger.projections.export import export_datasets
    from ledger.reading import export_provenance

    as_of = as_of_argument(args)
    with reader(args) as ledger:
        trial_id = args.trial or ledger.default_trial_id()
        # Checkpoints first: the audit log read for them also serves the entries' leaf hashes.
        checkpoints = ledger.checkpoints(trial_id)
        hashes: list[str | None] = []

        def hashed(entries: Iterator[LedgerEntry]) -> Iterator[LedgerEntry]:
            """The entries streamed into the fold once, their leaf hashes kept on the way."""
            for entry in entries:
                hashes.append(entry.leaf_hash)
                yield entry

        manifest = export_datasets(
            hashed(ledger.entries(trial_id, as_of=as_of)),
            as_of=as_of,
            cutoff=args.cutoff,
            fmt=args.format,
            out=args.out,
            software_version=software_version(),
            audit=lambda: export_provenance(hashes, checkpoints),
        )
    document = manifest.to_json_dict()
    emit(args, document, f"wrote {args.format} datasets and manifest.json to {args.out}")
    return 0


def _report(args: argparse.Namespace) -> int:
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
            provenance=provenance_of(entries, ledger.checkpoints(trial_id)),
        )
    document = {
        "report": str(files.html),
        "km_summary": str(files.km_summary),
        "figures": list(files.figures),
    }
    emit(args, document, f"wrote {files.html} and {files.km_summary}")
    return 0


def _topic_source(args: argparse.Namespace) -> AuditSource:
    """`trial.ledger`, `trial.rejections` and `trial.checkpoints` as an audit source."""
    from consumers.audit import read_ledger_topics
    from consumers.cli import connection

    if args.public_key is None:
        raise UsageError("--public-key is needed to check the topics' checkpoints")
    keys = audit_cli.public_keys_of(args.public_key) or {}
    trial_id = args.trial or bundled_protocol().trial_id
    settings = connection(args.bootstrap, args.kafka_config)
    snapshot = read_ledger_topics(
        settings, trial_id, ledger_topic=args.ledger_topic, rejections_topic=args.rejections_topic
    )
    return audit_cli.source_from_topics(trial_id, f"topics at {settings.bootstrap}", snapshot, keys)


def _publish(args: argparse.Namespace) -> int:
    from consumers.cli import cmd_publish

    code, text, document = cmd_publish(
        args.file, args.bootstrap, args.submissions_topic, kafka_config=args.kafka_config
    )
    emit(args, document, text)
    return code


def _ingest(args: argparse.Namespace) -> int:
    from consumers.cli import cmd_ingest, connection, ingest_settings

    signer = configured_signer(args.signing_key)
    args.unsigned = signer is None
    code, text, document = cmd_ingest(
        args.store, connection(args.bootstrap, args.kafka_config), ingest_settings(args), signer
    )
    emit(args, document, text)
    return code


def _broker(args: argparse.Namespace) -> int:
    from consumers.cli import cmd_broker

    code, text, document = cmd_broker(args)
    emit(args, document, text)
    return code


def _parser(environment: Environment | None = None) -> argparse.ArgumentParser:
    """The `ledger` command line, its defaults from `environment` (read now when not given)."""
    environment = Environment.read() if environment is None else environment
    parser = argparse.ArgumentParser(
        prog="ledger", description="Event-sourced ledger for the NCT05406206 dose-finding trial."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {software_version()}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    options = shared_options(environment)
    store, as_json, as_of, signing = options.store, options.as_json, options.as_of, options.signing

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        parents: list[argparse.ArgumentParser],
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, parents=parents)
        sub.set_defaults(handler=handler)
        return sub

    init = add(
        "init", _init, "open the trial with a protocol definition", [store, as_json, signing]
    )
    init.add_argument("--protocol", type=Path, help="protocol JSON (default: bundled NCT05406206)")
    init.add_argument(
        "--variant", choices=[v.value for v in Variant], help="override the 3+3 variant"
    )
    init.add_argument(
        "--entered-by",
        default=environment.user,
        help="who opens the trial (recorded; default: $USER)",
    )
    init.add_argument("--reason", help="why the trial is opened (recorded)")

    submit = add(
        "submit",
        _submit,
        "record submissions from a .jsonl file (no Kafka)",
        [store, as_json, signing],
    )
    submit.add_argument("file", type=Path, metavar="FILE.jsonl", help="one envelope per line")

    add("cohorts", _cohorts, "the cohort table", [store, as_json, as_of])

    history = add("history", _history, "audit trail of one subject", [store, as_json, as_of])
    history.add_argument(
        "subject", metavar="SUBJECT", help="subject id (01-003) or USUBJID (NCT05406206-01-003)"
    )

    simulate = add("simulate", _simulate, "operating characteristics of the 3+3 rules", [as_json])
    simulate.add_argument(
        "--true-dlt", required=True, metavar="P1,P2,P3", help="true DLT rate at each dose level"
    )
    simulate.add_argument("--runs", type=int, default=10_000, help="simulated trials")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (same seed, same runs)")
    simulate.add_argument(
        "--variant",
        choices=[v.value for v in Variant],
        default=Variant.STRICT_SIX.value,
        help="3+3 variant",
    )

    schema = add(
        "schema",
        _schema,
        "the JSON Schema (2020-12) of the submission envelope: every type and schema version",
        [],
    )
    schema.add_argument("--type", help="only this event type's envelopes")

    add(
        "export",
        _export,
        "write ADSL, ADTTE, ADRS, ADAE and manifest.json",
        [store, as_json, as_of, options.cutoff, options.dataset_format, options.out_folder],
    )
    add(
        "report",
        _report,
        "the statistician's report: report.html (self-contained) and km_summary.csv",
        [store, as_json, as_of, options.cutoff, options.out_folder],
    )

    verify, replay = audit_cli.add_audit_commands(add, options, _topic_source)

    from consumers.cli import add_bootstrap_argument, add_broker_arguments, add_ingest_arguments

    kafka = argparse.ArgumentParser(add_help=False)
    add_bootstrap_argument(kafka)
    for reads_topics in (verify, replay):  # verify / replay the topics instead of the store
        add_bootstrap_argument(reads_topics)
        reads_topics.add_argument(
            "--ledger-topic", default="trial.ledger", help="with --bootstrap: the ledger topic"
        )
        reads_topics.add_argument(
            "--rejections-topic",
            default="trial.rejections",
            help="with --bootstrap: the rejections topic",
        )

    publish = add(
        "publish", _publish, "validate and publish submissions to Kafka", [kafka, as_json]
    )
    publish.add_argument("file", type=Path, metavar="FILE.jsonl", help="one envelope per line")

    ingest = add(
        "ingest",
        _ingest,
        "consume submissions, record, republish the ledger",
        [store, kafka, as_json, signing],
    )
    add_ingest_arguments(ingest)

    broker = add("broker", _broker, "a local Apache Kafka for development and tests", [as_json])
    add_broker_arguments(broker)

    demo = add("demo", demo_command, "run a seeded synthetic trial on the embedded store", [])
    demo.add_argument(
        "--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)"
    )
    demo.add_argument("--seed", type=int, default=12, help="random seed (same seed, same trial)")
    demo.add_argument(
        "--subjects",
        type=positive_int,
        metavar="N",
        help="enlarge the expansion so that N subjects enroll in all (a big ledger)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
