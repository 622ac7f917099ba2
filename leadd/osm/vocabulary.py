"""Search words mapped to OpenStreetMap tags, and the parsed form of a search query.

OSM names a dentist ``amenity=dentist`` or ``healthcare=dentist`` and a gym
``leisure=fitness_centre``; users type "dentists" or "gym". ``parse_query``
splits a query into normalised words (case-folded, without diacritics, plural
"s"/"es"/"ies" removed), looks words and multi-word phrases up in
``VOCABULARY``, and returns both, so that the local full-text search and the
Overpass query can match names and tags alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from leadd.osm.tags import normalize_text, tag_words

__all__ = ["VOCABULARY", "QueryTerms", "fts_expression", "parse_query", "singular"]

_DENTIST = ("amenity=dentist", "healthcare=dentist")
_DOCTOR = ("amenity=doctors", "healthcare=doctor")
_CLINIC = ("amenity=clinic", "healthcare=clinic")
_PHARMACY = ("amenity=pharmacy", "healthcare=pharmacy", "shop=chemist")
_CAFE = ("amenity=cafe",)
_COFFEE = ("amenity=cafe", "shop=coffee")
_RESTAURANT = ("amenity=restaurant",)
_BAR = ("amenity=bar", "amenity=pub")
_HOTEL = ("tourism=hotel", "tourism=guest_house", "tourism=hostel")
_GYM = ("leisure=fitness_centre", "leisure=sports_centre")
_HAIR = ("shop=hairdresser",)
_BEAUTY = ("shop=beauty", "shop=cosmetics")
_LAWYER = ("office=lawyer",)
_ESTATE = ("office=estate_agent",)
_GROCERY = ("shop=supermarket", "shop=convenience", "shop=greengrocer")
_BOOKS = ("shop=books",)
_CLOTHES = ("shop=clothes", "shop=boutique")
_JEWELRY = ("shop=jewelry", "craft=jeweller")
_OPTICIAN = ("shop=optician", "healthcare=optometrist")
_VET = ("amenity=veterinary",)
_CAR_REPAIR = ("shop=car_repair",)
_TRAVEL = ("shop=travel_agency", "office=travel_agent")
_BAKERY = ("shop=bakery",)
_FLORIST = ("shop=florist",)
_ALCOHOL = ("shop=alcohol", "shop=wine")

# Normalised word or phrase -> tags. English, plus common Finnish and Swedish
# words, because the bundled extract is Helsinki. Words that equal an OSM
# value ("bakery", "museum") need no entry: the index has the tag words too.
VOCABULARY: dict[str, tuple[str, ...]] = {
    # Food and drink
    "cafe": _CAFE, "cafeteria": _CAFE, "coffee": _COFFEE, "coffee shop": _COFFEE,
    "espresso bar": _COFFEE, "kahvila": _CAFE, "kafe": _CAFE, "kafeteria": _CAFE,
    "restaurant": _RESTAURANT, "diner": _RESTAURANT, "bistro": _RESTAURANT,
    "eatery": _RESTAURANT, "ravintola": _RESTAURANT, "restaurang": _RESTAURANT,
    "fast food": ("amenity=fast_food",), "takeaway": ("amenity=fast_food",),
    "bar": _BAR, "pub": _BAR, "baari": _BAR, "nightclub": ("amenity=nightclub",),
    "club": ("amenity=nightclub",), "ice cream": ("amenity=ice_cream", "shop=ice_cream"),
    "bakery": _BAKERY, "baker": _BAKERY, "leipomo": _BAKERY, "bageri": _BAKERY,
    "butcher": ("shop=butcher",), "grocery": _GROCERY, "groceries": _GROCERY,
    "grocery store": _GROCERY, "supermarket": ("shop=supermarket",),
    "convenience store": ("shop=convenience",), "kiosk": ("shop=kiosk",),
    "liquor store": _ALCOHOL, "alcohol": _ALCOHOL, "wine": _ALCOHOL,
    "deli": ("shop=deli",), "tea": ("shop=tea",),
    # Health
    "dentist": _DENTIST, "dental": _DENTIST, "dental clinic": _DENTIST,
    "orthodontist": _DENTIST, "hammaslaakari": _DENTIST, "tandlakare": _DENTIST,
    "doctor": _DOCTOR, "physician": _DOCTOR, "gp": _DOCTOR, "laakari": _DOCTOR,
    "clinic": _CLINIC, "medical centre": _CLINIC, "medical center": _CLINIC,
    "pharmacy": _PHARMACY, "chemist": _PHARMACY, "drugstore": _PHARMACY,
    "apteekki": _PHARMACY, "apotek": _PHARMACY,
    "physiotherapist": ("healthcare=physiotherapist",), "physiotherapy": ("healthcare=physiotherapist",),
    "physio": ("healthcare=physiotherapist",), "optician": _OPTICIAN, "optometrist": _OPTICIAN,
    "eyewear": _OPTICIAN, "vet": _VET, "veterinarian": _VET, "veterinary": _VET,
    "massage": ("shop=massage", "healthcare=massage"),
    # Personal services
    "hairdresser": _HAIR, "hair salon": _HAIR, "barber": _HAIR, "barbershop": _HAIR,
    "kampaamo": _HAIR, "parturi": _HAIR, "frisor": _HAIR,
    "beauty": _BEAUTY, "beauty salon": _BEAUTY, "nail salon": _BEAUTY, "nails": _BEAUTY,
    "cosmetics": _BEAUTY, "tattoo": ("shop=tattoo",), "laundry": ("shop=laundry", "shop=dry_cleaning"),
    "dry cleaner": ("shop=dry_cleaning",), "tailor": ("shop=tailor", "craft=tailor"),
    "gym": _GYM, "fitness": _GYM, "fitness centre": _GYM, "fitness center": _GYM,
    "kuntosali": _GYM, "spa": ("leisure=sauna", "shop=beauty"), "sauna": ("leisure=sauna",),
    # Lodging and leisure
    "hotel": _HOTEL, "hotelli": _HOTEL, "motel": ("tourism=motel",), "hostel": ("tourism=hostel",),
    "guest house": ("tourism=guest_house",), "bed and breakfast": ("tourism=guest_house",),
    "museum": ("tourism=museum",), "gallery": ("tourism=gallery", "shop=art"),
    "art gallery": ("tourism=gallery", "shop=art"), "cinema": ("amenity=cinema",),
    "movie theater": ("amenity=cinema",), "theatre": ("amenity=theatre",), "theater": ("amenity=theatre",),
    # Professional services
    "lawyer": _LAWYER, "attorney": _LAWYER, "law firm": _LAWYER, "solicitor": _LAWYER,
    "asianajotoimisto": _LAWYER, "accountant": ("office=accountant",),
    "accounting": ("office=accountant",), "bookkeeping": ("office=accountant",),
    "tax advisor": ("office=tax_advisor",), "real estate": _ESTATE, "real estate agent": _ESTATE,
    "estate agent": _ESTATE, "realtor": _ESTATE, "kiinteistonvalitys": _ESTATE,
    "insurance": ("office=insurance",), "architect": ("office=architect",),
    "software": ("office=it", "office=company"), "it company": ("office=it",),
    "consultant": ("office=consulting",), "consulting": ("office=consulting",),
    "advertising": ("office=advertising_agency",), "marketing agency": ("office=advertising_agency",),
    "travel agency": _TRAVEL, "travel agent": _TRAVEL, "coworking": ("amenity=coworking_space",),
    "bank": ("amenity=bank",), "embassy": ("amenity=embassy", "office=diplomatic"),
    "ngo": ("office=ngo", "office=association"), "company": ("office=company",),
    "school": ("amenity=school",), "kindergarten": ("amenity=kindergarten",),
    "driving school": ("amenity=driving_school",), "language school": ("amenity=language_school",),
    # Trades and shops
    "plumber": ("craft=plumber",), "plumbing": ("craft=plumber",), "electrician": ("craft=electrician",),
    "roofer": ("craft=roofer",), "roofing": ("craft=roofer",), "roofing contractor": ("craft=roofer",),
    "carpenter": ("craft=carpenter",), "painter": ("craft=painter",), "locksmith": ("shop=locksmith", "craft=locksmith"),
    "photographer": ("craft=photographer", "shop=photo"), "mechanic": _CAR_REPAIR,
    "car repair": _CAR_REPAIR, "auto repair": _CAR_REPAIR, "garage": _CAR_REPAIR,
    "car dealer": ("shop=car",), "bike shop": ("shop=bicycle",), "bicycle shop": ("shop=bicycle",),
    "florist": _FLORIST, "flowers": _FLORIST, "flower shop": _FLORIST, "kukkakauppa": _FLORIST,
    "bookshop": _BOOKS, "bookstore": _BOOKS, "books": _BOOKS, "kirjakauppa": _BOOKS,
    "clothes": _CLOTHES, "clothing": _CLOTHES, "fashion": _CLOTHES, "boutique": _CLOTHES,
    "shoes": ("shop=shoes",), "shoe store": ("shop=shoes",), "jeweller": _JEWELRY,
    "jeweler": _JEWELRY, "jewelry": _JEWELRY, "jewellery": _JEWELRY,
    "furniture": ("shop=furniture",), "electronics": ("shop=electronics",),
    "hardware": ("shop=hardware", "shop=doityourself"), "hardware store": ("shop=hardware", "shop=doityourself"),
    "toys": ("shop=toys",), "toy store": ("shop=toys",), "pet shop": ("shop=pet",), "pet store": ("shop=pet",),
    "gift shop": ("shop=gift",), "souvenirs": ("shop=gift",), "antiques": ("shop=antiques",),
    "mobile phone": ("shop=mobile_phone",), "phone shop": ("shop=mobile_phone",),
    "mall": ("shop=mall",), "shopping centre": ("shop=mall",), "shopping center": ("shop=mall",),
    "department store": ("shop=department_store",), "second hand": ("shop=second_hand",),
    "thrift store": ("shop=second_hand", "shop=charity"),
}

_STOPWORDS = frozenset({"a", "an", "and", "around", "at", "by", "for", "in", "near", "of", "the", "with"})
_WORD = re.compile(r"[^\W_]+")
_MAX_PHRASE_WORDS = max(len(phrase.split()) for phrase in VOCABULARY)


@dataclass(frozen=True)
class QueryTerms:
    """A search query split into words, each with the tags it maps to."""

    words: tuple[str, ...]  # normalised, singular, stopwords removed
    word_tags: tuple[tuple[str, ...], ...]  # tags per word, aligned with ``words``
    phrase_tags: tuple[str, ...]  # tags of multi-word phrases found in the query

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag the query maps to, without repeats, in the order found."""
        seen: dict[str, None] = {}
        for tag in self.phrase_tags + tuple(tag for tags in self.word_tags for tag in tags):
            seen.setdefault(tag)
        return tuple(seen)


def singular(word: str) -> str:
    """Strip an English plural ending: cafes -> cafe, bakeries -> bakery, glasses -> glass."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def parse_query(text: str) -> QueryTerms:
    """Split ``text`` into normalised words and the OSM tags its words and phrases map to."""
    raw = _WORD.findall(normalize_text(text))
    content_words = [word for word in raw if word not in _STOPWORDS] or raw
    words = [singular(word) for word in content_words]
    word_tags = [VOCABULARY.get(original) or VOCABULARY.get(word) or () for original, word in zip(content_words, words)]

    phrase_tags: list[str] = []
    for size in range(2, _MAX_PHRASE_WORDS + 1):
        for start in range(len(words) - size + 1):
            phrase = " ".join(words[start : start + size])
            for tag in VOCABULARY.get(phrase) or VOCABULARY.get(" ".join(content_words[start : start + size])) or ():
                if tag not in phrase_tags:
                    phrase_tags.append(tag)
    return QueryTerms(tuple(words), tuple(word_tags), tuple(phrase_tags))


def _tag_phrase(tag: str) -> str:
    key, _, value = tag.partition("=")
    return 'keywords : "' + tag_words(key, value).replace('"', '""') + '"'


def fts_expression(terms: QueryTerms) -> str | None:
    """Build an FTS5 MATCH expression over leads_fts, or None when the query has no words.

    Every word must match the name or keywords, as a whole word, as a prefix
    or through one of its tags. A phrase's tags also match on their own.
    """
    if not terms.words:
        return None
    clauses = []
    for word, tags in zip(terms.words, terms.word_tags):
        # The exact word as well as the prefix, so that BM25 ranks "pho" -> "Phở" above "Phoenix".
        options = [f'"{word}"', f'"{word}" *'] + [_tag_phrase(tag) for tag in tags]
        clauses.append("(" + " OR ".join(options) + ")")
    expression = " AND ".join(clauses)
    if terms.phrase_tags:
        expression = f"({expression}) OR " + " OR ".join(_tag_phrase(tag) for tag in terms.phrase_tags)
    return expression
