"""What the local servers of deploy/ (``broker.py``, ``postgres.py``) share: a lock, state files,
process identity, free ports, log tails and URL redaction. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK",
    "flock",
    "free_ports",
    "load_state",
    "log_tail",
    "process_argv",
    "redacted",
    "save_state",
    "write_atomic",
]

#: The only address the local servers listen on.
LOOPBACK = "127.0.0.1"

_State = TypeVar("_State")


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(
    path: Path, text: str, *, mode: int | None = None, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` with ``text`` in one rename; ``mode`` and ``owner`` (uid, gid) are set
    on the new file before it takes the name, so it is never readable with the wrong ones."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    if owner is not None:
        os.chown(tmp, *owner)
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(path)


def save_state(
    path: Path,
    state: Mapping[str, Any],
    *,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write a server's state file (indented JSON) atomically (``write_atomic``)."""
    write_atomic(path, json.dumps(state, indent=2) + "\n", mode=mode, owner=owner)


def load_state(
    data_dir: Path,
    state_file: str,
    parse: Callable[[Path, Mapping[str, Any]], _State],
    error: Callable[[str], Exception],
    what: str,
) -> _State | None:
    """``parse(data_dir, state)`` of the state file ``data_dir/state_file``, None if there is none.

    ``data_dir`` is expanded and made absolute first. A file that is not JSON or lacks what
    ``parse`` needs raises ``error("PATH: unreadable WHAT (...)")``.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    path = data_dir / state_file
    if not path.is_file():
        return None
    try:
        return parse(data_dir, json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{path}: unreadable {what} ({exc})") from exc


def process_argv(pid: int) -> list[bytes] | None:
    """The command line of process ``pid``, None if it does not exist or is a zombie.

    Callers match it against what they started, so a recycled pid is never taken for theirs.
    """
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return None
    if state in {"Z", "X"}:
        return None
    return argv


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (held together while they are picked)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def redacted(url: str) -> str:
    """``url`` fit to print: its password replaced by ``***`` (``ledger.application.redacted``'s
    rule; deploy/ does not import the ledger)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def one_line_error(error: BaseException) -> str:
    """One line: the message's first (PostgresError appends the log's tail after it), with
    the server log's path when there is one, never a traceback."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename or ''}: {error.strerror}".lstrip(": ")
    lines = str(error).strip().splitlines() or [type(error).__name__]
    logs = [word.rstrip(":") for line in lines for word in line.split() if word.endswith(".log:")]
    first = lines[0].rstrip(":")
    return f"{first} (see {logs[0]})" if logs and logs[0] not in first else first


def failure_status(error: BaseException) -> int:
    """Print a tool's error as one line and return its exit status: 2 for the data directory
    given (a ValueError or an OSError: bad input), 3 for a server that failed."""
    print(f"error: {one_line_error(error)}", file=sys.stderr)
    return 2 if isinstance(error, ValueError | OSError) else 3
