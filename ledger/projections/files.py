"""Writing a file so that a reader never sees half of it."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import uuid4

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a uniquely named partial file beside ``path``, then rename it over
    ``path`` (atomic on POSIX); the partial file never outlives a failure."""
    partial = path.with_name(f".{path.name}.{uuid4().hex}.partial")
    try:
        with open(partial, "xb") as handle:
            handle.write(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
