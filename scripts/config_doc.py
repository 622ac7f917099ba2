"""Write docs/configuration.md from the settings model, so the page cannot drift from the code.

Run ``.venv/bin/python scripts/config_doc.py`` after changing leadd/config.py;
tests/test_config_doc.py fails while the page is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from leadd.config import SECRET_FIELDS, Settings, env_name

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

INTRO = """# Configuration

leadd reads its settings from environment variables. Under systemd they come
from `/etc/leadd/leadd.env` (`EnvironmentFile=`, written by the Ansible role);
in development from the environment and a `.env` file in the working
directory (the environment wins). `--env-file FILE` or `LEADD_ENV_FILE`
names another file. Under systemd (which sets `INVOCATION_ID`) no `./.env`
is read unless one of those names it, so a stray file in the working
directory cannot add settings. `.env.example` has every variable with a
comment. `leadd check-config` loads them as `leadd serve` would and lists
every invalid or missing one by name. `leadd serve` with unusable settings
exits with status 78 before binding anything.

Secrets (marked below) are never logged or printed: `check-config` shows them
only as `configured` or `missing`, and every log line is scrubbed of their
values.

This page is generated from `leadd/config.py` by `scripts/config_doc.py`.

| Variable | Default | Meaning |
|---|---|---|
"""


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        return "(computed)" if name != "cors_origins" else "(none)"
    if field.default is PydanticUndefined or field.default is None:
        return "(unset)"
    value = getattr(field.default, "value", field.default)
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        variable = f"`{env_name(name)}`" + (" (secret)" if name in SECRET_FIELDS else "")
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| {variable} | {_default(name)} | {description} |")
    notes = """
`LEADD_STATE_DIR` defaults to `$STATE_DIRECTORY` when systemd sets it
(`StateDirectory=leadd`, so `/var/lib/leadd`), else
`$XDG_STATE_HOME/leadd` or `~/.local/state/leadd`.

Rules across variables, checked by `check-config`:

- a non-loopback `LEADD_HOST` needs `LEADD_API_TOKEN`;
- `LEADD_PLACES_PROVIDER=places_new` or `places_legacy` needs `GOOGLE_PLACES_API_KEY`;
- `LEADD_STATE_DIR` must be a folder this user can create and write.

A `LEADD_*` variable that leadd does not know is reported as a warning
(with the closest known name), since it is most likely a typo.
"""
    return INTRO + "\n".join(rows) + "\n" + notes


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        return 0 if DOC.exists() and DOC.read_text("utf-8") == text else 1
    DOC.write_text(text, "utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
