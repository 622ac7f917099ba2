"""The id of the installed release, as the Ansible role records it.

The role installs each release into /opt/leadd/releases/ID/ with its venv in
``venv/`` and writes ID into ``RELEASE`` beside it; /health reports it so a
deploy can tell the new process from the old one. Outside such a layout
(development, tests) there is no release id.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["release_id"]


@lru_cache(maxsize=1)
def release_id() -> str | None:
    marker = Path(sys.prefix).parent / "RELEASE"
    try:
        text = marker.read_text("utf-8").strip()
    except OSError:
        return None
    return text.splitlines()[0] if text else None
