"""What every `ledger` command shares: exit codes, the one way to open the store for writing or
for reading, argument types, and printing one document or its text.

The store and the signing key are imported where a command opens them: building the `ledger`
parser, which every command does, imports neither.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.entries import parse_timestamp

if TYPE_CHECKING:
    from ledger.application import LedgerService
    from ledger.ledger_reader import LedgerReader


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


EXIT_OK = 0
EXIT_REJECTED = 1  # some submissions were rejected, or a ledger did not verify
EXIT_BAD_INPUT = 2
EXIT_FAILED = 3  # the command could not do its work: store unreachable, a bug, ...
EXIT_INTERRUPTED = 130
INCOMPLETE_MARKER = "INCOMPLETE"


def software_version() -> str:
    from importlib.metadata import version

    return version("trial-ledger")


def writer(args: argparse.Namespace) -> LedgerService:
    """The store for a command that writes: checkpoints signed with the configured key."""
    from ledger.application import LedgerService
    from ledger.audit.checkpoints import configured_signer

    signer = configured_signer(getattr(args, "signing_key", None))
    args.unsigned = signer is None  # said loudly once the command has run (main)
    service = LedgerService(args.store, signer=signer)
    try:
        service.check_signing_key()
    except Exception:
        service.close()
        raise
    return service


def reader(args: argparse.Namespace) -> LedgerReader:
    """The store for a command that only reads: opened read-only, never created, without the
    recording side (`LedgerReader`)."""
    import sqlite3

    from ledger.ledger_reader import LedgerReader

    try:
        return LedgerReader(args.store)
    except sqlite3.DatabaseError as error:
        if not _not_a_ledger_store(Path(args.store)):
            raise  # a store that cannot be opened (permissions, I/O): the command failed
        raise UsageError(f"not a ledger store: {args.store} ({error})") from None


def _not_a_ledger_store(path: Path) -> bool:
    """Whether a file SQLite would not open as a store is simply not one: empty, not SQLite,
    damaged, or another program's database (no `stored_events`). Opened read-only, such a file
    fails as the ledger's tables cannot be made, or fails to open at all."""
    import sqlite3
    from contextlib import closing

    from ledger.store import read_only_uri

    try:
        with path.open("rb") as file:
            header = file.read(16)
    except OSError:
        return False
    if header != b"SQLite format 3\x00":
        return True
    try:
        with closing(sqlite3.connect(read_only_uri(path), uri=True)) as con:
            found = con.execute(
                "SELECT count(*) FROM sqlite_master WHERE name='stored_events'"
            ).fetchone()
    except sqlite3.OperationalError:
        return False  # could not open it: no verdict on what it holds
    except sqlite3.DatabaseError:
        return True  # a SQLite header over a damaged body
    return not found[0]


def provenance_of(entries: list[Any], checkpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
    from ledger.audit.provenance import provenance

    hashes = [e.leaf_hash for e in entries]
    if any(h is None for h in hashes):
        return None  # a store written before the ledger hashed its log, not yet sealed
    return provenance([str(h) for h in hashes], len(entries), checkpoints)


def as_of_argument(args: argparse.Namespace) -> datetime | None:
    # An empty --as-of is a malformed instant, not "latest": only a missing one means that.
    return None if args.as_of is None else parse_timestamp(args.as_of)


def read_lines(path: Path) -> list[tuple[int, bytes]]:
    """Every line, blank ones too: each is accounted for as accepted, duplicate or rejected."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with path.open("rb") as handle:
        return [(number, line.rstrip(b"\r\n")) for number, line in enumerate(handle, start=1)]


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(document, sort_keys=True, indent=2))
    else:
        print(text)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def output_path(text: str) -> Path:
    """What `--out` names. An empty one (an unset shell variable) would be the current folder,
    whose files the command would then replace."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name the folder or file to write")
    return Path(text)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


def one_line(error: BaseException) -> str:
    """An error as the one line a command prints: its message's first line, else its type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
