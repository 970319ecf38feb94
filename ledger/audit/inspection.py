"""What an auditor runs: verify a ledger from any source, write and read archives.

A source (the store, an archive folder, the Kafka topics) is reduced to the same `AuditSource`:
the entries of both logs as held, with the leaf hashes held beside them, the checkpoints and the
public keys. `verify_source` checks it; `ledger replay` builds datasets from the entries of a source
that verified, through the same fold `ledger export` uses on the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.aggregates.log_ids import LEDGER_LOG, REJECTIONS_LOG
from ledger.audit.checkpoints import load_public_key
from ledger.audit.verify import LogRecord, LogReport, is_size, verify_log
from ledger.entries import LedgerEntry

ARCHIVE_FILES = {
    LEDGER_LOG: "ledger.jsonl",
    REJECTIONS_LOG: "rejections.jsonl",
    "checkpoints": "checkpoints.jsonl",
    "public_key": "public-key.pem",
    "manifest": "manifest.json",
}
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.S)


@dataclass(slots=True)
class AuditSource:
    """Everything a verifier needs, however it was obtained."""

    description: str
    trial_id: str
    ledger: list[LogRecord]
    rejections: list[LogRecord]
    checkpoints: list[dict[str, Any]]
    public_keys: dict[str, str]
    hashed_from: dict[str, int] = field(default_factory=dict)
    """Per log, the first position whose leaf hash was recorded with it; earlier entries were
    stored before the ledger hashed its logs (an old store)."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """Problems of the source itself (kind, detail), e.g. a topic that would lose history."""

    def entries(self) -> list[LedgerEntry]:
        return [LedgerEntry.from_json_dict(r.entry) for r in self.ledger if r.entry is not None]


@dataclass(frozen=True, slots=True)
class Verification:
    source: str
    trial_id: str
    logs: Mapping[str, LogReport]
    hashed_from: int
    notes: tuple[str, ...]
    source_problems: tuple[tuple[str, str], ...] = ()

    @property
    def intact(self) -> bool:
        return not self.source_problems and not any(r.problems for r in self.logs.values())

    def to_json_dict(self) -> dict[str, Any]:
        ledger = self.logs[LEDGER_LOG]
        problems = [p.to_json_dict() for report in self.logs.values() for p in report.problems]
        problems += [
            {"log": None, "position": None, "kind": kind, "detail": detail}
            for kind, detail in self.source_problems
        ]
        return {
            "intact": self.intact,
            "source": self.source,
            "trial_id": self.trial_id,
            "size": ledger.size,
            "root": ledger.root,
            "hashed_from": self.hashed_from,
            "logs": {
                name: {"size": r.size, "root": r.root, "checkpoints": r.checkpoints}
                for name, r in self.logs.items()
            },
            "problems": problems,
            "warnings": [w for r in self.logs.values() for w in r.warnings],
            "notes": list(self.notes),
        }

    def render(self) -> str:
        document = self.to_json_dict()
        verdict = "INTACT" if self.intact else "NOT INTACT"
        lines = [
            f"{verdict}: {self.source}, trial {self.trial_id}",
            *(
                f"  {name}: {log['size']} entries, root {log['root']}, "
                f"{log['checkpoints']} checkpoints"
                for name, log in document["logs"].items()
            ),
        ]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  warning: {warning}" for warning in document["warnings"]]
        lines += [
            f"  problem: {p['log'] or 'source'} position {p['position']}: "
            f"{p['kind']}: {p['detail']}"
            for p in document["problems"]
        ]
        return "\n".join(lines)


def verify_source(
    source: AuditSource,
    *,
    receipts: Sequence[Mapping[str, Any]] = (),
    public_keys: Mapping[str, str] | None = None,
) -> Verification:
    """Check both logs of a source, against the keys given (else the ones the source holds)."""
    notes: list[str] = []
    if public_keys is None:
        keys = _parsed_keys(source.public_keys)
        if keys:
            notes.append(
                "signatures checked with the public key(s) the source itself holds; "
                "give --public-key for a check that does not trust the source"
            )
    else:
        keys = _parsed_keys(public_keys)
    for log, first in sorted(source.hashed_from.items()):
        # Only beside seals made 'hashed later': a log without any is a problem (`unsealed`),
        # not an old store to take at its word.
        if first > 1 and any(c.get("log") == log for c in source.checkpoints):
            notes.append(
                f"{log} positions 1..{first - 1} were recorded before the ledger hashed its logs; "
                "their leaf hashes (where present) date from when they were first sealed"
            )
    reports = {
        log: verify_log(
            log,
            records,
            [c for c in source.checkpoints if c.get("log") == log],
            keys=keys,
            receipts=[r for r in receipts if r.get("log") == log],
            trial_id=source.trial_id if log == LEDGER_LOG else None,
            time_field="recorded_at" if log == LEDGER_LOG else "rejected_at",
            hashed_from=source.hashed_from.get(log, 1),
            signatures_required=public_keys is not None,
        )
        for log, records in ((LEDGER_LOG, source.ledger), (REJECTIONS_LOG, source.rejections))
    }
    if not receipts:
        notes.append(
            "no receipt given (--checkpoint): a log cut short after one of its checkpoints, "
            "with the checkpoints after it, cannot be told from a complete one; keep the "
            "receipts `ledger checkpoint` writes and verify against them"
        )
    signers = {
        log: _signers_in_order(c for c in source.checkpoints if c.get("log") == log)
        for log in (LEDGER_LOG, REJECTIONS_LOG)
    }
    key_ids = {key_id for found in signers.values() for key_id, _ in found}
    if len(key_ids) > 1:  # within a log or between the two: a rewrite may hide behind either
        notes.append(
            f"the logs' checkpoints are signed by {len(key_ids)} keys: "
            + "; ".join(
                f"{log} " + ", ".join(f"{key_id} from size {size}" for key_id, size in found)
                for log, found in signers.items() if found
            )
            + " (a key changed: give --public-key with the keys you trust)"
        )
    return Verification(
        source=source.description,
        trial_id=source.trial_id,
        logs=reports,
        hashed_from=source.hashed_from.get(LEDGER_LOG, 1),
        notes=tuple(notes),
        source_problems=tuple(source.problems),
    )


def _signers_in_order(checkpoints: Iterable[Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """(key id, size of the first checkpoint it signed), each time the signing key changes."""
    signers: list[tuple[str, Any]] = []
    for checkpoint in checkpoints:
        key_id = checkpoint.get("key_id")
        if checkpoint.get("signature") is not None and (not signers or signers[-1][0] != key_id):
            signers.append((str(key_id), checkpoint.get("size")))
    return signers


def _parsed_keys(pems: Mapping[str, str]) -> dict[str, Ed25519PublicKey]:
    from ledger.audit.checkpoints import key_id_of

    keys: dict[str, Ed25519PublicKey] = {}
    for pem in pems.values():
        key = load_public_key(pem)
        keys[key_id_of(key)] = key
    return keys


def public_keys_from_pem(text: str) -> dict[str, str]:
    """Every PEM public key block in a file, by key id; ValueError when there is none."""
    from ledger.audit.checkpoints import key_id_of

    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ValueError("no PEM public key found")
    return {key_id_of(load_public_key(block)): block + "\n" for block in blocks}


def read_receipts(path: Path) -> list[dict[str, Any]]:
    """Checkpoints from a `ledger checkpoint` receipt, a checkpoint object, or a list of them."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read checkpoint {path}: {error}") from None
    if isinstance(document, dict) and "size" not in document:
        document = [c for c in document.values() if c is not None]
    found = document if isinstance(document, list) else [document]
    if not found or not all(isinstance(c, dict) and "log" in c and "size" in c for c in found):
        raise ValueError(f"{path} holds no checkpoint (objects with log, size, root, signature)")
    for checkpoint in found:
        size, root = checkpoint["size"], checkpoint.get("root")
        if not is_size(size):
            raise ValueError(f"{path}: a checkpoint's size is {size!r}, not a count of entries")
        if not (isinstance(root, str) and re.fullmatch(r"[0-9a-f]{64}", root)):
            raise ValueError(f"{path}: a checkpoint's root is {root!r}, not 64 hex digits")
    return found


# --- archives -----------------------------------------------------------------------------------


def write_archive(
    out: Path,
    *,
    trial_id: str,
    entries: Sequence[Mapping[str, Any]],
    rejections: Sequence[Mapping[str, Any]],
    checkpoints: Sequence[Mapping[str, Any]],
    public_keys: Mapping[str, str],
    as_of: str | None,
    software_version: str,
) -> dict[str, Any]:
    """Write the folder an auditor takes away; returns its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise ValueError(f"{out} is not empty; archive into a new folder")
    contents = {
        ARCHIVE_FILES[LEDGER_LOG]: _jsonl(entries),
        ARCHIVE_FILES[REJECTIONS_LOG]: _jsonl(rejections),
        ARCHIVE_FILES["checkpoints"]: _jsonl(checkpoints),
        ARCHIVE_FILES["public_key"]: "".join(public_keys[k] for k in sorted(public_keys)).encode(),
    }
    for name, data in contents.items():
        (out / name).write_bytes(data)
    ledger_checkpoints = [c for c in checkpoints if c.get("log") == LEDGER_LOG]
    manifest = {
        "trial_id": trial_id,
        "as_of": as_of,
        "size": len(entries),
        "rejections": len(rejections),
        "checkpoint": ledger_checkpoints[-1] if ledger_checkpoints else None,
        "key_ids": sorted(public_keys),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        "software_version": software_version,
    }
    (out / ARCHIVE_FILES["manifest"]).write_text(
        json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


def read_archive(folder: Path) -> AuditSource:
    """An archive folder as a source; unreadable lines become `undecodable` records."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not an archive folder")
    missing = [
        name
        for key, name in ARCHIVE_FILES.items()
        if key != "public_key" and not (folder / name).is_file()
    ]
    if missing:
        raise ValueError(f"{folder} is not a ledger archive: {', '.join(missing)} missing")
    try:
        manifest = json.loads((folder / ARCHIVE_FILES["manifest"]).read_text(encoding="utf-8"))
        trial_id = str(manifest["trial_id"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder}/manifest.json unreadable: {error}") from None
    key_file = folder / ARCHIVE_FILES["public_key"]
    # An archive of a ledger that never signed holds an empty key file.
    key_text = key_file.read_text() if key_file.is_file() else ""
    keys = public_keys_from_pem(key_text) if key_text.strip() else {}
    checkpoints = [
        dict(record.entry)
        for record in _read_jsonl(folder / ARCHIVE_FILES["checkpoints"], "size")
        if record.entry is not None
    ]
    source = AuditSource(
        description=f"archive {folder}",
        trial_id=trial_id,
        ledger=_read_jsonl(folder / ARCHIVE_FILES[LEDGER_LOG], "position"),
        rejections=_read_jsonl(folder / ARCHIVE_FILES[REJECTIONS_LOG], "sequence"),
        checkpoints=checkpoints,
        public_keys=keys,
    )
    source.problems += _manifest_problems(folder, manifest, source)
    return source


def _manifest_problems(
    folder: Path, manifest: Mapping[str, Any], source: AuditSource
) -> list[tuple[str, str]]:
    """Where the archive differs from what its manifest says was written: each file's SHA-256,
    the counts, the last ledger checkpoint (a signed tree head: an archive cut short after it
    is caught even without a receipt) and the key ids. The manifest itself is not signed, so
    this catches a careless edit or a damaged copy; signatures and receipts catch the rest."""
    problems: list[tuple[str, str]] = []
    files = manifest.get("files")
    for key, name in ARCHIVE_FILES.items():
        if key == "manifest":
            continue
        path = folder / name
        actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        expected = files.get(name) if isinstance(files, Mapping) else None
        if actual != expected:
            problems.append(("manifest_mismatch", f"{name}: " + (
                "absent, but the manifest lists it" if actual is None
                else "its SHA-256 is not the manifest's")))
    ledger_checkpoints = [c for c in source.checkpoints if c.get("log") == LEDGER_LOG]
    stated = {
        "size": (manifest.get("size"), len(source.ledger)),
        "rejections": (manifest.get("rejections"), len(source.rejections)),
        "key_ids": (manifest.get("key_ids"), sorted(source.public_keys)),
    }
    problems += [
        ("manifest_mismatch", f"the manifest's {field} is {said!r}; the archive holds {held!r}")
        for field, (said, held) in stated.items()
        if said != held
    ]
    checkpoint = manifest.get("checkpoint")
    if checkpoint != (ledger_checkpoints[-1] if ledger_checkpoints else None):
        size = checkpoint.get("size") if isinstance(checkpoint, Mapping) else None
        problems.append((
            "manifest_mismatch",
            f"the manifest's checkpoint (size {size}) is not the archive's last ledger checkpoint"
            + (" (truncated)" if isinstance(size, int) and size > len(source.ledger) else ""),
        ))
    return problems


def records_from_messages(
    messages: Iterable[Mapping[str, Any] | None], position_field: str
) -> list[LogRecord]:
    """Published messages (topic records, archive lines) as log records, in the order held; a
    message that is not an object with a position (None) takes the slot after the last one."""
    records: list[LogRecord] = []
    last = 0
    for number, message in enumerate(messages, start=1):
        position = message.get(position_field) if message is not None else None
        if message is None or not isinstance(position, int) or isinstance(position, bool):
            last += 1
            records.append(LogRecord(last, None, None, f"record {number}: no {position_field}"))
            continue
        stored = message.get("leaf_hash")
        records.append(LogRecord(position, message, stored if isinstance(stored, str) else None))
        last = position
    return records


def _read_jsonl(path: Path, position_field: str) -> list[LogRecord]:
    messages: list[Mapping[str, Any] | None] = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            value = None
        messages.append(value if isinstance(value, dict) else None)
    return records_from_messages(messages, position_field)


def _jsonl(items: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        for item in items
    )
