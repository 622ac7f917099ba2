"""Lenient readers for upstream JSON values: anything unexpected becomes None."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["integer_or_none", "number_or_none", "retry_after_s", "text_or_none"]


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


def retry_after_s(value: str | None) -> float | None:
    """Read a Retry-After header given in seconds; None when absent or not a number (an HTTP date)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
