"""Lenient readers for upstream JSON values: anything unexpected becomes None."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["integer_or_none", "number_or_none", "text_or_none"]


def text_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def integer_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
