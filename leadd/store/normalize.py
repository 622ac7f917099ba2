"""Normalisation of contact fields before a lead is stored."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = ["normalize_text", "phone_e164", "text_words", "website_domain"]

_WORD = re.compile(r"\w+")


def phone_e164(international: str | None, national: str | None, region: str | None) -> str | None:
    """Return the number in E.164 (+15125550100), or None when it does not parse.

    The international form needs no region; a national one is read with
    ``region`` (ISO 3166-1 alpha-2), taken from the search or its area.
    """
    for raw, default_region in ((international, None), (national, region)):
        if raw:
            parsed = _parse(raw.strip(), default_region.upper() if default_region else None)
            if parsed is not None:
                return parsed
    return None


@lru_cache(maxsize=4096)
def _parse(raw: str, region: str | None) -> str | None:
    # phonenumbers loads its metadata on first use; imported here so that
    # start-up does not pay for it.
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def website_domain(url: str | None) -> str | None:
    """Return the lower-case host of ``url`` without ``www.``, for deduplication.

    NOTE: this keeps subdomains (shop.example.co.uk); it does not consult the
    public suffix list.
    """
    if not url:
        return None
    candidate = url.strip()
    if "://" not in candidate:
        candidate = "http://" + candidate
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        return None
    if not host or "." not in host:
        return None
    host = host.rstrip(".").lower()
    return host.removeprefix("www.")


def normalize_text(text: str) -> str:
    """Case-fold, drop diacritics and collapse whitespace, so "Café  Engel" matches "cafe engel"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.split())


def text_words(text: str) -> list[str]:
    """Return the words of ``text`` after normalize_text: letters, digits and underscores."""
    return _WORD.findall(normalize_text(text))
