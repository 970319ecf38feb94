"""The SAS v5 transport format's limits on names, labels and text, said once for the writer
(:mod:`ledger.projections.xpt`) and the checks on write (:mod:`ledger.projections.conformance`),
which holds every dataset to them without importing the writer's pandas."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_CHARACTER_BYTES", "MAX_LABEL_LENGTH", "MAX_NAME_LENGTH", "SAS_NAME"]

MAX_NAME_LENGTH: Final = 8
MAX_LABEL_LENGTH: Final = 40
MAX_CHARACTER_BYTES: Final = 200

SAS_NAME: Final = re.compile(r"[A-Z][A-Z0-9_]{0,7}")
"""A SAS v5 variable or dataset name."""
