"""The one place `kafka` is imported: lazily, inside functions, so importing `consumers` is free.

kafka-python 3.0.x calls the deprecated `importlib.resources.read_text` while importing; that
warning is silenced here (and only here) so warnings-as-errors test runs can import it.
"""

from __future__ import annotations

import warnings
from typing import Any


def kafka() -> Any:
    """The `kafka` package, imported on first use."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"(read|open)_text is deprecated", category=DeprecationWarning
        )
        import kafka as module
    return module


def kafka_errors() -> Any:
    """`kafka.errors` (exception classes), imported on first use."""
    kafka()
    from kafka import errors

    return errors
