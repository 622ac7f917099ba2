"""Rules that pick the OpenStreetMap elements that are businesses, and map their tags to a lead.

An element is a lead when it has a ``name`` and at least one business tag.
Business tags are any ``shop``, ``craft``, ``office`` or ``healthcare``
value, an ``amenity`` or ``tourism`` value that is not street furniture or a
landmark, and a ``leisure`` value that is a commercial facility. Relations
count only when they describe one place (``type=multipolygon`` or
``type=site``), so routes and street relations that carry a stray ``shop``
tag do not.

Every tag is optional. Values with ``;`` (``phone=+358 1;+358 2``) are split
and the parts used in order. Both the plain and the ``contact:`` forms of
phone, website and e-mail are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from leadd.providers.base import Place
from leadd.store.normalize import normalize_text, phone_e164

__all__ = [
    "BUSINESS_KEYS",
    "PLACE_RELATION_TYPES",
    "business_tags",
    "choose_phone",
    "element_address",
    "element_region",
    "is_lead",
    "keywords",
    "lead_tags",
    "normalize_text",
    "place_from_element",
    "split_values",
    "tag_words",
]

# Keys that make an element a business, in the order that picks its main
# category when it has several (amenity=dentist + healthcare=dentist is
# amenity=dentist).
BUSINESS_KEYS = ("shop", "amenity", "craft", "office", "healthcare", "tourism", "leisure")

PLACE_RELATION_TYPES = frozenset({"multipolygon", "site"})

# Values that mark a key as unused rather than as a kind of business.
_NO_BUSINESS_VALUES = frozenset({"no", "none", "vacant", "disused", "abandoned", "closed"})

# Amenities and tourism values that are infrastructure, street furniture or
# sights: named ones exist (a city-bike station, a statue) but they are not
# businesses anyone sells to.
_NOT_BUSINESS = {
    "amenity": frozenset({
        "atm", "bbq", "bench", "bicycle_parking", "bicycle_rental", "bicycle_repair_station",
        "bus_station", "charging_station", "clock", "compressed_air", "dog_toilet",
        "drinking_water", "ferry_terminal", "fire_hydrant", "fountain", "give_box",
        "grit_bin", "hunting_stand", "letter_box", "loading_dock", "lounger",
        "motorcycle_parking", "parcel_locker", "parking", "parking_entrance", "parking_space",
        "photo_booth", "post_box", "public_bookcase", "recycling", "shelter", "smoking_area",
        "taxi", "telephone", "ticket_validator", "toilets", "vending_machine",
        "waste_basket", "waste_disposal", "water_point", "watering_place",
    }),
    "tourism": frozenset({
        "artwork", "attraction", "camp_pitch", "information", "picnic_site", "viewpoint", "yes",
    }),
}

# leisure=* is mostly public space (parks, pitches, playgrounds); these
# values are facilities run as businesses.
_LEISURE_BUSINESSES = frozenset({
    "adult_gaming_centre", "amusement_arcade", "bowling_alley", "dance", "escape_game",
    "fitness_centre", "golf_course", "hackerspace", "horse_riding", "ice_rink", "marina",
    "miniature_golf", "sauna", "sports_centre", "sports_hall", "stadium", "swimming_pool",
    "tanning_salon", "trampoline_park", "water_park",
})

_PHONE_KEYS = ("phone", "contact:phone", "mobile", "contact:mobile")
_WEBSITE_KEYS = ("website", "contact:website", "url")
_EMAIL_KEYS = ("email", "contact:email")

# Name variants that also make a text search match (the main name is indexed
# on its own).
_OTHER_NAME_KEYS = ("alt_name", "official_name", "short_name", "brand")

_MAX_KEYWORDS_CHARS = 1000


def split_values(value: str | None) -> list[str]:
    """Split an OSM multi-value (``a;b; c``) into its non-empty, stripped parts."""
    if not value:
        return []
    return [part.strip() for part in value.split(";") if part.strip()]


def _first_value(tags: Mapping[str, str], keys: Iterable[str]) -> str | None:
    for key in keys:
        for part in split_values(tags.get(key)):
            return part
    return None


def business_tags(tags: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return the (key, value) pairs that make the element a business, main category first."""
    pairs: list[tuple[str, str]] = []
    for key in BUSINESS_KEYS:
        for raw in split_values(tags.get(key)):
            value = raw.lower()
            if value in _NO_BUSINESS_VALUES or value in _NOT_BUSINESS.get(key, ()):
                continue
            if key == "leisure" and value not in _LEISURE_BUSINESSES:
                continue
            if (key, value) not in pairs:
                pairs.append((key, value))
    return pairs


def lead_tags(kind: str, tags: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return the business tags of an element of ``kind`` (node, way, relation), or [] when it is no lead."""
    if not (tags.get("name") or "").strip():
        return []
    if kind == "relation" and tags.get("type") not in PLACE_RELATION_TYPES:
        return []
    return business_tags(tags)


def is_lead(kind: str, tags: Mapping[str, str]) -> bool:
    """Tell whether an element of ``kind`` (node, way, relation) is a business lead."""
    return bool(lead_tags(kind, tags))


def element_address(tags: Mapping[str, str]) -> str | None:
    """Compose "street housenumber, postcode city" from addr:* tags (addr:full wins)."""
    full = (tags.get("addr:full") or "").strip()
    if full:
        return full
    street = (tags.get("addr:street") or tags.get("addr:place") or "").strip()
    number = (tags.get("addr:housenumber") or "").strip()
    postcode = (tags.get("addr:postcode") or "").strip()
    city = (tags.get("addr:city") or "").strip()
    first = " ".join(part for part in (street, number) if part)
    second = " ".join(part for part in (postcode, city) if part)
    return ", ".join(part for part in (first, second) if part) or None


def tag_words(key: str, value: str) -> str:
    """Return the words a key=value pair is indexed under: amenity=fast_food -> "amenity fast food"."""
    return f"{key} {value.replace('_', ' ')}"


def keywords(tags: Mapping[str, str], pairs: list[tuple[str, str]]) -> str | None:
    """Build the text indexed next to the name: tag words, cuisines, other names."""
    words = [tag_words(key, value) for key, value in pairs]
    words += [tag_words("cuisine", value.lower()) for value in split_values(tags.get("cuisine"))]
    names = [tags[key] for key in _OTHER_NAME_KEYS if tags.get(key)]
    names += [value for key, value in sorted(tags.items()) if key.startswith("name:") and value]
    main = tags.get("name")
    for name in names:
        if name != main and name not in words:
            words.append(name)
    text = " ".join(words)[:_MAX_KEYWORDS_CHARS]
    return text or None


def choose_phone(tags: Mapping[str, str], region: str | None) -> tuple[str | None, str | None]:
    """Return (display, E.164) for the first phone value that parses, else (first value, None)."""
    candidates = [part for key in _PHONE_KEYS for part in split_values(tags.get(key))]
    for candidate in candidates:
        international = candidate if candidate.startswith("+") else None
        national = None if international else candidate
        parsed = phone_e164(international, national, region)
        if parsed is not None:
            return candidate, parsed
    return (candidates[0], None) if candidates else (None, None)


def element_region(tags: Mapping[str, str], default: str | None) -> str | None:
    """Return the ISO 3166-1 country for national phone numbers: addr:country, else ``default``."""
    country = (tags.get("addr:country") or "").strip().upper()
    return country if len(country) == 2 and country.isalpha() else default


def place_from_element(
    kind: str,
    element_id: int,
    tags: Mapping[str, str],
    latitude: float | None,
    longitude: float | None,
    region: str | None,
    version: int | None = None,
    pairs: list[tuple[str, str]] | None = None,
) -> Place:
    """Turn an element's tags into a Place with ``source='osm'`` and id ``kind/id``.

    ``region`` reads national phone numbers when the element has no
    addr:country; ``pairs`` are its business tags when the caller has them
    already. ``Place.extra`` carries category, keywords, osm_tags and
    osm_version, which the store writes to their own columns.
    """
    if pairs is None:
        pairs = business_tags(tags)
    category = f"{pairs[0][0]}={pairs[0][1]}" if pairs else None
    types = [f"{key}={value}" for key, value in pairs]
    types += [f"cuisine={value.lower()}" for value in split_values(tags.get("cuisine"))]
    phone_display, _ = choose_phone(tags, element_region(tags, region))
    international = phone_display if phone_display and phone_display.startswith("+") else None
    name = (tags.get("name") or "").strip() or None
    return Place(
        source="osm",
        place_id=f"{kind}/{element_id}",
        name=name,
        address=element_address(tags),
        latitude=latitude,
        longitude=longitude,
        primary_type=pairs[0][1] if pairs else None,
        types=types,
        maps_url=f"https://www.openstreetmap.org/{kind}/{element_id}",
        phone_international=international,
        phone_national=None if international else phone_display,
        website=_first_value(tags, _WEBSITE_KEYS),
        email=_first_value(tags, _EMAIL_KEYS),
        opening_hours=(tags.get("opening_hours") or "").strip() or None,
        extra={
            "category": category,
            "keywords": keywords(tags, pairs),
            "osm_tags": dict(tags),
            "osm_version": version,
        },
    )
