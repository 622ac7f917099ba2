"""Write one benchmark's results into its own section of docs/benchmarks.md.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; rerunning it replaces only that section, so the
benchmarks can run separately and in any order.
"""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["machine_line", "write_section"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine_line() -> str:
    """Return when and on what a benchmark ran, for the section's first line."""
    cores = len(__import__("os").sched_getaffinity(0))
    return (
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC on {platform.machine()}, "
        f"{cores} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}."
    )


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``markdown``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = DOC.read_text("utf-8") if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text if text.endswith("\n") else text + "\n", "utf-8")
