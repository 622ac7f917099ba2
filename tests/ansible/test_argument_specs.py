"""The leadd role's meta/argument_specs.yml matches its defaults/main.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "leadd"

# argument_specs type -> Python types a default of that type may have.
# `path` and `str` defaults may be Jinja templates, which are strings.
TYPES = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def _load(relative: str) -> dict:
    return yaml.safe_load((ROLE / relative).read_text("utf-8"))


DEFAULTS = _load("defaults/main.yml")
SPECS = _load("meta/argument_specs.yml")["argument_specs"]
MAIN = SPECS["main"]["options"]


def test_main_entry_point_lists_every_default():
    assert sorted(MAIN) == sorted(DEFAULTS)


def test_main_entry_point_keeps_the_defaults_order():
    # Reading both files side by side is easier in the same order.
    assert list(MAIN) == list(DEFAULTS)


@pytest.mark.parametrize("name", sorted(MAIN))
def test_option_has_a_description(name):
    description = MAIN[name].get("description")

    assert isinstance(description, list)
    assert description
    assert all(isinstance(line, str) and line.strip() for line in description)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_option_type_matches_default(name):
    spec = MAIN[name]
    default = DEFAULTS[name]

    assert spec["type"] in TYPES, f"{name}: unexpected type {spec['type']}"
    # bool is a subclass of int in Python; an int option must not default to a bool.
    assert not (spec["type"] == "int" and isinstance(default, bool)), name
    assert isinstance(default, TYPES[spec["type"]]), f"{name}: default {default!r} is not a {spec['type']}"


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_option_default_matches_defaults_file(name):
    assert MAIN[name].get("default") == DEFAULTS[name]


@pytest.mark.parametrize("name", sorted(n for n, spec in MAIN.items() if spec.get("type") == "list"))
def test_list_option_names_its_elements(name):
    spec = MAIN[name]

    assert "elements" in spec
    assert all(isinstance(item, TYPES[spec["elements"]]) for item in DEFAULTS[name])


@pytest.mark.parametrize("name", sorted(n for n, spec in MAIN.items() if "choices" in spec))
def test_default_is_one_of_the_choices(name):
    assert DEFAULTS[name] in MAIN[name]["choices"]


def test_secret_options_are_no_log():
    secrets = {"leadd_google_places_api_key", "leadd_api_token", "leadd_openai_api_key"}

    assert {name for name, spec in MAIN.items() if spec.get("no_log")} == secrets


@pytest.mark.parametrize("entry_point", sorted(set(SPECS) - {"main"}))
def test_other_entry_points_reuse_main_options(entry_point):
    options = SPECS[entry_point]["options"]

    assert set(options) <= set(DEFAULTS)
    for name, spec in options.items():
        assert spec == MAIN[name], f"{entry_point}.{name} differs from main.{name}"


def test_every_entry_point_has_a_task_file():
    for entry_point in SPECS:
        assert (ROLE / "tasks" / f"{entry_point}.yml").is_file(), entry_point
