"""The audit commands (contract §6): checkpoint, verify, archive, replay, diff.

Thin entry points: each reads its source through the application or `ledger.audit.inspection`,
and prints what the auditor asked for. Exit codes as §6: 0 intact, 1 not intact, 2 bad input.
`ledger.audit.inspection` (the verifier, and `cryptography` with it) is imported by the commands
that use it, not by every command that builds the `ledger` parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ledger.cli_options import SharedOptions
from ledger.cli_plumbing import (
    UsageError,
    as_of_argument,
    emit,
    output_path,
    provenance_of,
    reader,
    software_version,
)
from ledger.entries import format_timestamp, known_as_of, parse_timestamp

if TYPE_CHECKING:
    from ledger.audit.inspection import AuditSource

TopicReader = Callable[[argparse.Namespace], "AuditSource"]
"""Reads the ledger's Kafka topics into a source (wired by ledger.cli, which may import Kafka)."""
AddCommand = Callable[..., argparse.ArgumentParser]


class NotIntactError(Exception):
    """The source did not verify: exit status 1 with the report."""


def checkpoint_command(args: argparse.Namespace) -> int:
    with reader(args) as service:
        trial_id = args.trial or service.default_trial_id()
        service.size(trial_id)  # a trial the store does not hold: LookupError naming it
        latest = service.latest_checkpoints(trial_id)
    if latest["ledger"] is None:
        raise LookupError(f"the store holds no checkpoint of {trial_id} yet")
    text = json.dumps(latest, sort_keys=True, indent=2)
    if args.receipt is None:
        print(text)
        return 0
    if args.receipt.is_dir():
        raise UsageError(f"--out {args.receipt} is a folder; name the receipt file to write")
    try:
        # "x": an auditor's kept receipt is what later logs are checked against; never replace it.
        with args.receipt.open("x", encoding="utf-8") as receipt:
            receipt.write(text + "\n")
    except FileExistsError:
        raise UsageError(
            f"{args.receipt} already exists; a kept receipt is never overwritten: name a new file"
        ) from None
    emit(args, latest, f"wrote the latest checkpoints of {trial_id} to {args.receipt}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from ledger.audit.inspection import verify_source

    topics = getattr(args, "bootstrap", None) or getattr(args, "kafka_config", None)
    given = {"--store": args.store, "--archive": args.archive, "--bootstrap/--kafka-config": topics}
    sources = [name for name, value in given.items() if value]
    if len(sources) > 1:
        raise UsageError(f"verify one source at a time, not {' and '.join(sources)} together")
    args.store = args.store or args.default_store
    receipts = _receipts(args)
    receipt_trial = _trial_of_receipts(receipts, args.trial)
    args.trial = args.trial or receipt_trial
    keys = public_keys_of(args.public_key)
    source = _source(args, receipted=receipt_trial is not None)
    if receipt_trial is not None and source.trial_id != receipt_trial:
        raise UsageError(
            f"the receipts are checkpoints of trial {receipt_trial}; {source.description} holds "
            f"trial {source.trial_id}: give receipts of the trial verified"
        )
    result = verify_source(source, receipts=receipts, public_keys=keys)
    emit(args, result.to_json_dict(), result.render())
    return 0 if result.intact else 1


def archive_command(args: argparse.Namespace) -> int:
    from ledger.audit.inspection import verify_source, write_archive

    as_of = as_of_argument(args)
    with reader(args) as service:
        trial_id = args.trial or service.default_trial_id()
        # What the logs hold now, before their checkpoints are read: with --as-of, an archive
        # ends at a sealed batch; without, it holds these (sealed or not: rows stored without
        # a seal are for verify to report), not what a writer adds while it is read.
        held = {"ledger": service.size(trial_id), "rejections": service.rejection_count()}
        checkpoints = service.checkpoints(trial_id, as_of=as_of)
        last = {
            log: max((int(c["size"]) for c in checkpoints if c["log"] == log), default=0)
            for log in ("ledger", "rejections")
        }
        if as_of is not None and not last["ledger"]:
            raise LookupError(
                f"no checkpoint of {trial_id} was recorded by {format_timestamp(as_of)}: "
                "nothing to archive"
            )
        upto = last if as_of is not None else {log: max(held[log], last[log]) for log in last}
        entries = [
            e.to_json_dict()
            for e in service.entries(trial_id)
            if e.position <= upto["ledger"]
        ]
        source = service.audit_source(trial_id)
        keys = service.public_keys(trial_id)
    verification = verify_source(source)
    if not verification.intact:
        findings = verification.to_json_dict()["problems"]
        # An archive keeps decoded records only: a row that no longer decodes, or one beside
        # the log, would be left out and the copy verify clean.
        raise NotIntactError(
            f"{source.description} is NOT INTACT ({len(findings)} problem(s); `ledger verify` "
            "lists them): an archive would not show them, so none is written"
        )
    rejections = [
        dict(r.entry)
        for r in source.rejections
        if r.entry is not None and r.position <= upto["rejections"]
    ]
    manifest = write_archive(
        args.out,
        trial_id=trial_id,
        entries=entries,
        rejections=rejections,
        checkpoints=checkpoints,
        public_keys=keys,
        as_of=format_timestamp(as_of) if as_of else None,
        software_version=software_version(),
    )
    emit(args, manifest, f"archived {len(entries)} entries of {trial_id} to {args.out}")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    from ledger.audit.inspection import verify_source
    from ledger.projections.export import export_datasets

    if (args.archive is None) == (getattr(args, "bootstrap", None) is None):
        raise UsageError("give an archive folder or --bootstrap (the trial.ledger topic)")
    if args.archive is not None and args.out.resolve().is_relative_to(args.archive.resolve()):
        # The datasets' manifest.json would replace the archive's own, and the archive would no
        # longer be what was archived.
        raise UsageError(f"--out {args.out} is inside the archive it replays; write elsewhere")
    receipts = _receipts(args)
    source = _source(args)
    result = verify_source(source, receipts=receipts, public_keys=public_keys_of(args.public_key))
    if not result.intact:
        print(result.render(), file=sys.stderr)
        raise NotIntactError(f"{source.description} does not verify; nothing replayed")
    as_of = as_of_argument(args)
    entries = list(known_as_of(source.entries(), as_of))
    manifest = export_datasets(
        entries,
        as_of=as_of,
        cutoff=args.cutoff,
        fmt=args.format,
        out=args.out,
        software_version=software_version(),
        audit=provenance_of(entries, source.checkpoints),
    )
    emit(
        args, manifest.to_json_dict(),
        f"replayed {source.description} into {args.out} ({manifest.summary})",
    )
    return 0


def diff_command(args: argparse.Namespace) -> int:
    from ledger.projections.diff import diff_datasets, render_diff

    before, after = parse_timestamp(args.from_), parse_timestamp(args.to)
    with reader(args) as service:
        trial_id = args.trial or service.default_trial_id()
        entries = list(service.entries(trial_id, as_of=after))
    document = diff_datasets(entries, before=before, after=after, cutoff=args.cutoff)
    emit(args, document, render_diff(document))
    return 0


def _receipts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The checkpoints of every `--checkpoint FILE` given (an auditor's kept receipts)."""
    from ledger.audit.inspection import read_receipts

    return [c for path in args.checkpoint or [] for c in read_receipts(path)]


def _trial_of_receipts(receipts: list[dict[str, Any]], trial: str | None) -> str | None:
    """The trial the receipts' ledger checkpoints name (None: no receipt names one). Receipts of
    another trial than `--trial` are bad input, not a ledger inconsistent with them."""
    named = sorted({str(c["trial_id"]) for c in receipts
                    if c.get("log") == "ledger" and c.get("trial_id")})
    if len(named) > 1:
        raise UsageError(f"the receipts name several trials ({', '.join(named)}): verify one "
                         "trial at a time")
    if named and trial is not None and named[0] != trial:
        raise UsageError(
            f"the receipts are checkpoints of trial {named[0]}, not of --trial {trial}"
        )
    return named[0] if named else None


def _source(args: argparse.Namespace, *, receipted: bool = False) -> AuditSource:
    """What `verify` and `replay` read. `receipted`: an auditor's receipt names the trial, so a
    store holding nothing of it is a ledger that lost what the receipt proves, not a wrong name.
    """
    from ledger.audit.inspection import read_archive

    if getattr(args, "archive", None):
        return read_archive(args.archive)
    if getattr(args, "bootstrap", None) or getattr(args, "kafka_config", None):
        topics: TopicReader = args.topic_source
        return topics(args)
    with reader(args) as service:
        trial_id = args.trial or service.default_trial_id()
        source = service.audit_source(trial_id)
    held = source.ledger or any(c["log"] == "ledger" for c in source.checkpoints)
    if not held and not source.problems and not receipted:
        # Nothing at all of this trial, not even a checkpoint saying it once had entries: the
        # name is wrong, which is bad input, not an intact empty ledger.
        raise LookupError(f"no trial {trial_id} in this ledger")
    return source


class TopicContents(Protocol):
    """What the ledger's topics hold for a trial (consumers/audit.py reads it)."""

    @property
    def ledger(self) -> list[dict[str, Any]]: ...
    @property
    def rejections(self) -> list[dict[str, Any]]: ...
    @property
    def checkpoints(self) -> list[dict[str, Any]]: ...
    @property
    def problems(self) -> list[str]:
        """What would make them an incomplete history (retention, compaction, log start)."""


def source_from_topics(
    trial_id: str, description: str, topics: TopicContents, public_keys: dict[str, str]
) -> AuditSource:
    """What the topics hold, as a source: checkpoints are checked with the key given, since a
    topic carries no key of its own."""
    from ledger.audit.inspection import AuditSource, records_from_messages

    return AuditSource(
        description=description,
        trial_id=trial_id,
        ledger=records_from_messages(topics.ledger, "position"),
        rejections=records_from_messages(topics.rejections, "sequence"),
        checkpoints=topics.checkpoints,
        public_keys=public_keys,
        problems=[("topic_history", p) for p in topics.problems],
    )


def public_keys_of(path: Path | None) -> dict[str, str] | None:
    from ledger.audit.inspection import public_keys_from_pem

    if path is None:
        return None
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read public key {path}: {error}") from None
    return public_keys_from_pem(text)


def add_audit_commands(
    add: AddCommand, options: SharedOptions, topic_source: TopicReader
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """Register checkpoint, verify, archive, replay and diff; return verify and replay, which
    also read the Kafka topics (the caller adds those options)."""
    store, as_json, as_of, cutoff = options.store, options.as_json, options.as_of, options.cutoff
    checkpoint = add(
        "checkpoint",
        checkpoint_command,
        "the latest signed checkpoint of each log: the receipt an auditor keeps",
        [store, as_json],
    )
    checkpoint.add_argument(
        "--out", dest="receipt", type=output_path, metavar="FILE",
        help="write the receipt to this new file (an existing one is never overwritten)",
    )

    verify = add(
        "verify",
        verify_command,
        "recompute every hash, the Merkle tree and the signatures; check against receipts",
        [as_json, options.public_key],
    )
    # Its own --store, with no default, so that one given beside --archive or --bootstrap is
    # refused instead of ignored; without any source the shared default store is verified.
    verify.add_argument(
        "--store",
        help="SQLite file or postgresql:// URL (env LEDGER_STORE; default ./ledger.db)",
    )
    verify.add_argument("--trial", help="trial id, when the store holds several")
    verify.set_defaults(default_store=store.get_default("store"))
    verify.add_argument("--archive", type=Path, help="verify an archive folder instead")
    receipt_help = "a receipt from `ledger checkpoint`; the log must extend it (repeatable)"
    verify.add_argument("--checkpoint", type=Path, action="append", metavar="FILE",
                        help=receipt_help)

    archive = add(
        "archive",
        archive_command,
        "a self-contained, verifiable copy of the logs for auditors",
        [store, as_json, as_of],
    )
    archive.add_argument("--out", type=output_path, required=True, help="a new, empty folder")

    replay = add(
        "replay",
        replay_command,
        "verify an archive (or the topics), then rebuild the datasets from it alone",
        [store, as_json, as_of, cutoff, options.dataset_format, options.out_folder,
         options.public_key],
    )
    replay.add_argument(
        "archive", type=Path, nargs="?", metavar="ARCHIVE_DIR", help="from `ledger archive`"
    )
    replay.add_argument("--checkpoint", type=Path, action="append", metavar="FILE",
                        help=receipt_help)

    diff = add(
        "diff",
        diff_command,
        "dataset rows added, removed and changed between two as-of points, and why",
        [store, as_json, cutoff],
    )
    diff.add_argument("--from", dest="from_", required=True, metavar="T1", help="ISO-8601 UTC")
    diff.add_argument("--to", required=True, metavar="T2", help="ISO-8601 UTC")
    for reads_topics in (verify, replay):
        reads_topics.set_defaults(topic_source=topic_source)
    return verify, replay
