"""The audit commands (contract §6): checkpoint, verify, archive, replay, diff.

Thin entry points: each reads its source through the application or `ledger.audit.inspection`,
and prints what the auditor asked for. Exit codes as §6: 0 intact, 1 not intact, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.application import LedgerService
from ledger.audit.inspection import (
    AuditSource,
    provenance,
    public_keys_from_pem,
    read_archive,
    read_receipts,
    records_from_messages,
    verify_source,
    write_archive,
)
from ledger.entries import format_timestamp, known_as_of, parse_timestamp

Emit = Callable[[argparse.Namespace, Any, str], None]
TopicReader = Callable[[argparse.Namespace], AuditSource]
"""Reads the ledger's Kafka topics into a source (wired by ledger.cli, which may import Kafka)."""


class NotIntactError(Exception):
    """The source did not verify: exit status 1 with the report."""


def checkpoint(args: argparse.Namespace, service: LedgerService, emit: Emit) -> int:
    trial_id = args.trial or service.default_trial_id()
    latest = service.latest_checkpoints(trial_id)
    if latest["ledger"] is None:
        raise LookupError(f"the store holds no checkpoint of {trial_id} yet")
    text = json.dumps(latest, sort_keys=True, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
        emit(args, latest, f"wrote the latest checkpoints of {trial_id} to {args.out}")
    else:
        print(text)
    return 0


def verify(
    args: argparse.Namespace,
    open_service: Callable[[], LedgerService],
    emit: Emit,
    topics: TopicReader,
) -> int:
    receipts = [c for path in args.checkpoint or [] for c in read_receipts(path)]
    keys = public_keys_of(args.public_key)
    source = _source(args, open_service, topics)
    result = verify_source(source, receipts=receipts, public_keys=keys)
    emit(args, result.to_json_dict(), result.render())
    return 0 if result.intact else 1


def archive(args: argparse.Namespace, service: LedgerService, emit: Emit, version: str) -> int:
    trial_id = args.trial or service.default_trial_id()
    as_of = parse_timestamp(args.as_of) if args.as_of else None
    checkpoints = service.checkpoints(trial_id)
    if as_of is not None:
        # An archive ends at a sealed batch, so every entry in it is covered by a checkpoint.
        checkpoints = [c for c in checkpoints if parse_timestamp(str(c["recorded_at"])) <= as_of]
    last = {
        log: max((int(c["size"]) for c in checkpoints if c["log"] == log), default=0)
        for log in ("ledger", "rejections")
    }
    entries = (
        [e.to_json_dict() for e in service.entries(trial_id) if e.position <= last["ledger"]]
        if as_of is not None
        else [e.to_json_dict() for e in service.entries(trial_id)]
    )
    source = service.audit_source(trial_id)
    rejections = [
        r.entry
        for r in source.rejections
        if r.entry is not None and (as_of is None or r.position <= last["rejections"])
    ]
    manifest = write_archive(
        args.out,
        trial_id=trial_id,
        entries=entries,
        rejections=[dict(r) for r in rejections],
        checkpoints=checkpoints,
        public_keys=service.public_keys(trial_id),
        as_of=format_timestamp(as_of) if as_of else None,
        software_version=version,
    )
    emit(args, manifest, f"archived {len(entries)} entries of {trial_id} to {args.out}")
    return 0


def replay(
    args: argparse.Namespace,
    open_service: Callable[[], LedgerService],
    emit: Emit,
    version: str,
    topics: TopicReader,
) -> int:
    from ledger.projections.export import export_datasets

    source = _source(args, open_service, topics)
    result = verify_source(source, public_keys=public_keys_of(args.public_key))
    if not result.intact:
        print(result.render(), file=sys.stderr)
        raise NotIntactError(f"{source.description} does not verify; nothing replayed")
    as_of = parse_timestamp(args.as_of) if args.as_of else None
    entries = list(known_as_of(source.entries(), as_of))
    leaf_hashes = [str(e.leaf_hash) for e in entries]
    manifest = export_datasets(
        entries,
        as_of=as_of,
        cutoff=args.cutoff,
        fmt=args.format,
        out=args.out,
        software_version=version,
        audit=provenance(leaf_hashes, len(entries), source.checkpoints),
    )
    emit(args, manifest.to_json_dict(), f"replayed {source.description} into {args.out}")
    return 0


def _source(
    args: argparse.Namespace, open_service: Callable[[], LedgerService], topics: TopicReader
) -> AuditSource:
    if getattr(args, "archive", None):
        return read_archive(args.archive)
    if getattr(args, "bootstrap", None) or getattr(args, "kafka_config", None):
        return topics(args)
    with open_service() as service:
        trial_id = args.trial or service.default_trial_id()
        return service.audit_source(trial_id)


def source_from_topics(
    trial_id: str,
    description: str,
    ledger: list[dict[str, Any]],
    rejections: list[dict[str, Any]],
    checkpoints: list[dict[str, Any]],
    problems: list[str],
    public_keys: dict[str, str],
) -> AuditSource:
    """What the topics hold, as a source: checkpoints are checked with the key given, since a
    topic carries no key of its own."""
    return AuditSource(
        description=description,
        trial_id=trial_id,
        ledger=records_from_messages(ledger, "position"),
        rejections=records_from_messages(rejections, "sequence"),
        checkpoints=checkpoints,
        public_keys=public_keys,
        problems=[("topic_history", p) for p in problems],
    )


def public_keys_of(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read public key {path}: {error}") from None
    return public_keys_from_pem(text)
