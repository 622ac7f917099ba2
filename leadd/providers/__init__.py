"""Place sources behind one interface, built from the settings.

``Providers`` owns the upstream HTTP session and the googlemaps client, knows
which providers are configured, and picks the geocoder for each provider.
"""

from __future__ import annotations

import logging

import aiohttp

from leadd import __version__
from leadd.config import Settings
from leadd.providers.base import Area, Geocoder, Page, Place, Provider, SearchSpec
from leadd.providers.errors import ProviderNotConfigured
from leadd.providers.google_maps import GoogleGeocoder, GoogleMapsClient
from leadd.providers.places_legacy import PlacesLegacyProvider
from leadd.providers.places_new import PlacesNewProvider
from leadd.providers.retry import RetryPolicy

__all__ = ["Area", "Geocoder", "Page", "Place", "Provider", "Providers", "SearchSpec"]

log = logging.getLogger(__name__)



class Providers:
    """The configured providers and geocoders; create with ``await Providers.start(settings)``."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session
        self.retry = RetryPolicy(max_retries=settings.upstream_max_retries, backoff_s=settings.upstream_backoff_s)
        self._providers: dict[str, Provider] = {}
        self._geocoders: dict[str, Geocoder] = {}
        self._google: GoogleMapsClient | None = None
        self._missing: dict[str, str] = {}
        # Dependency name -> state, for providers registered after start.
        self._states: dict[str, str] = {}

        key = settings.google_places_api_key.get_secret_value() if settings.google_places_api_key else None
        if key:
            self._google = GoogleMapsClient(
                api_key=key,
                base_url=settings.google_maps_base_url,
                timeout_s=settings.upstream_timeout_s,
                retry=self.retry,
            )
            geocoder = GoogleGeocoder(self._google)
            self._providers["places_new"] = PlacesNewProvider(
                session,
                api_key=key,
                base_url=settings.google_places_base_url,
                timeout_s=settings.upstream_timeout_s,
                retry=self.retry,
            )
            self._providers["places_legacy"] = PlacesLegacyProvider(
                self._google, page_token_delay_s=settings.google_legacy_page_token_delay_s
            )
            self._geocoders["places_new"] = geocoder
            self._geocoders["places_legacy"] = geocoder
        else:
            self._missing["places_new"] = self._missing["places_legacy"] = "GOOGLE_PLACES_API_KEY"

    @classmethod
    async def start(cls, settings: Settings) -> Providers:
        session = aiohttp.ClientSession(
            headers={"User-Agent": f"leadd/{__version__}"},
            timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s),
            raise_for_status=False,
        )
        return cls(settings, session)

    def register(
        self,
        name: str,
        provider: Provider | None,
        geocoder: Geocoder | None,
        missing: str | None = None,
        states: dict[str, str] | None = None,
    ) -> None:
        """Add a provider (and its geocoder), or record what its configuration lacks.

        ``states`` are its upstreams' dependency states for /health/detailed,
        such as {"overpass": "configured"}.
        """
        self._states.update(states or {})
        if provider is None:
            self._missing[name] = missing or "its settings"
            return
        self._providers[name] = provider
        if geocoder is not None:
            self._geocoders[name] = geocoder

    def ensure_configured(self, name: str) -> None:
        """Raise ProviderNotConfigured when ``name`` cannot run."""
        if name not in self._providers:
            raise ProviderNotConfigured(name, self._missing.get(name, "its settings"))

    def get(self, name: str) -> Provider:
        self.ensure_configured(name)
        return self._providers[name]

    def geocoder_for(self, name: str) -> Geocoder | None:
        return self._geocoders.get(name)

    def configured(self) -> list[str]:
        return sorted(self._providers)

    def dependency_states(self) -> dict[str, str]:
        return {"google_places": "configured" if self._google is not None else "missing", **self._states}

    async def close(self) -> None:
        if self._google is not None:
            self._google.close()
        await self.session.close()

