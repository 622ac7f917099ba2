"""docs/configuration.md and .env.example name every setting."""

from __future__ import annotations

from pathlib import Path

from leadd.config import Settings, env_name
from scripts.config_doc import DOC, render

REPO = Path(__file__).resolve().parent.parent


def test_configuration_page_is_current():
    assert DOC.read_text("utf-8") == render(), "docs/configuration.md is stale: run scripts/config_doc.py"


def test_env_example_names_every_variable():
    example = (REPO / ".env.example").read_text("utf-8")
    for name in Settings.model_fields:
        assert f"{env_name(name)}=" in example, f"{env_name(name)} is missing from .env.example"
