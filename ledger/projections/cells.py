"""What a missing cell is, said once for every writer and check of the datasets.

A frame's cell is missing when it holds None, pandas' NA or NaT, or a float NaN (how pandas
fills a numeric column's gaps); everything else is a value.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["is_missing", "present_values"]


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (
        isinstance(value, float) and math.isnan(value)
    )


def present_values(values: pd.Series[Any]) -> list[Any]:
    """The column's values that are not missing, in order: pandas' own `notna` (the same four
    kinds of missing), in C rather than a Python test per cell."""
    return values[values.notna()].tolist()
