"""Shared fixtures: stand-in upstreams on loopback and real leadd processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import API_TOKEN, GOOGLE_KEY, DaemonProcess, assert_no_secrets
from tests.standins.google_maps import GoogleMapsStandIn
from tests.standins.google_places import PlacesNewStandIn
from tests.standins.nominatim import NominatimStandIn
from tests.standins.overpass import OverpassStandIn
from tests.standins.openai_chat import OPENAI_KEY, OpenAIChatStandIn


@pytest.fixture(scope="session")
def _places_new_server() -> Iterator[PlacesNewStandIn]:
    with PlacesNewStandIn(api_key=GOOGLE_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def _google_maps_server() -> Iterator[GoogleMapsStandIn]:
    with GoogleMapsStandIn(api_key=GOOGLE_KEY) as server:
        yield server


@pytest.fixture
def places_new(_places_new_server: PlacesNewStandIn) -> Iterator[PlacesNewStandIn]:
    """The Places API (New) stand-in, reset for each test."""
    _places_new_server.reset()
    yield _places_new_server
    _places_new_server.reset()


@pytest.fixture
def google_maps(_google_maps_server: GoogleMapsStandIn) -> Iterator[GoogleMapsStandIn]:
    """The legacy Places and Geocoding stand-in, reset for each test."""
    _google_maps_server.reset()
    yield _google_maps_server
    _google_maps_server.reset()


@pytest.fixture(scope="session")
def _openai_server() -> Iterator[OpenAIChatStandIn]:
    with OpenAIChatStandIn(api_key=OPENAI_KEY) as server:
        yield server


@pytest.fixture
def openai_chat(_openai_server: OpenAIChatStandIn) -> Iterator[OpenAIChatStandIn]:
    """The OpenAI-compatible Chat Completions stand-in, reset for each test."""
    _openai_server.reset()
    _openai_server.configure(api_key=OPENAI_KEY)
    yield _openai_server
    _openai_server.reset()


@pytest.fixture
def openai_env(openai_chat: OpenAIChatStandIn) -> dict[str, str]:
    """Environment that points leadd's scoring at the OpenAI stand-in through the real SDK."""
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{openai_chat.url}/v1",
        "LEADD_OPENAI_MODEL": "gpt-4o-mini",
        "LEADD_OPENAI_TIMEOUT_S": "5",
    }


@pytest.fixture
def google_env(places_new: PlacesNewStandIn, google_maps: GoogleMapsStandIn) -> dict[str, str]:
    """Environment that points leadd's Google providers at the stand-ins."""
    return {
        "GOOGLE_PLACES_API_KEY": GOOGLE_KEY,
        "LEADD_GOOGLE_PLACES_BASE_URL": places_new.url,
        "LEADD_GOOGLE_MAPS_BASE_URL": google_maps.url,
        "LEADD_GOOGLE_LEGACY_PAGE_TOKEN_DELAY_S": "0.25",
    }


@pytest.fixture(scope="session")
def _overpass_server() -> Iterator[OverpassStandIn]:
    with OverpassStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def _nominatim_server() -> Iterator[NominatimStandIn]:
    with NominatimStandIn() as server:
        yield server


@pytest.fixture
def overpass(_overpass_server: OverpassStandIn) -> Iterator[OverpassStandIn]:
    """The Overpass stand-in (serves the bundled Helsinki extract), reset for each test."""
    _overpass_server.reset()
    yield _overpass_server
    _overpass_server.reset()


@pytest.fixture
def nominatim(_nominatim_server: NominatimStandIn) -> Iterator[NominatimStandIn]:
    """The Nominatim stand-in, reset for each test."""
    _nominatim_server.reset()
    yield _nominatim_server
    _nominatim_server.reset()


@pytest.fixture
def osm_env(overpass: OverpassStandIn, nominatim: NominatimStandIn) -> dict[str, str]:
    """Environment that points leadd's live OpenStreetMap sources at the stand-ins."""
    return {
        "LEADD_OVERPASS_URL": f"{overpass.url}/api/interpreter",
        "LEADD_NOMINATIM_URL": nominatim.url,
        "LEADD_OSM_CONTACT": "leadd-tests@example.com",
        "LEADD_OVERPASS_TIMEOUT_S": "5",
    }


@pytest.fixture
def leadd(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start leadd processes; each is stopped and its log checked for secrets afterwards."""
    started: list[DaemonProcess] = []

    def start(env: dict[str, str] | None = None, wait: bool = True, name: str = "leadd", **kwargs: object) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / name, env=env, **kwargs)  # type: ignore[arg-type]
        started.append(daemon)
        return daemon.start(wait=wait)

    yield start

    for daemon in started:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()
        assert_no_secrets(daemon.log_text().splitlines(), [GOOGLE_KEY, API_TOKEN, OPENAI_KEY])
