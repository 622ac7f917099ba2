"""Helpers shared by the scoring tests: environments, lead lookups and a renamed catalogue place."""

from __future__ import annotations

from typing import Any

from tests.helpers import ApiClient

PROFILE = "Restaurants in Sydney with a website that could use online table booking"


def scoring_env(google_env: dict[str, str], openai_env: dict[str, str], **settings: str) -> dict[str, str]:
    """Return google_env and openai_env merged, with LEADD_OPENAI_<NAME> settings from keyword arguments."""
    extra = {f"LEADD_OPENAI_{name.upper()}": value for name, value in settings.items()}
    return google_env | openai_env | extra


def search_leads(client: ApiClient, search_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/searches/{search_id}/leads", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def named(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the leads with a name: the catalogue's places without one are not scorable."""
    return [lead for lead in leads if lead["name"]]


def rename_place(monkeypatch: Any, places_new: Any, index: int, name: str) -> None:
    """Serve catalogue place ``index`` under another display name for the rest of the test."""
    original = places_new.catalogue_place

    def renamed(position: int) -> dict[str, Any]:
        place = original(position)
        if position == index:
            place["displayName"] = {"text": name, "languageCode": "en"}
        return place

    monkeypatch.setattr(places_new, "catalogue_place", renamed)
