-- Searches (jobs), leads, the link between them, and the geocode cache.
-- No CHECK constraints on enumerated values: a later release must be able
-- to add a state without rebuilding a table.

CREATE TABLE searches (
    id              TEXT PRIMARY KEY,
    state           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    query           TEXT NOT NULL,
    location        TEXT,
    request         TEXT NOT NULL,          -- the validated request, JSON
    idempotency_key TEXT,
    request_hash    TEXT,                   -- SHA-256 of the request, to spot a reused key
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    pages_fetched   INTEGER NOT NULL DEFAULT 0,
    places_found    INTEGER NOT NULL DEFAULT 0,
    leads_stored    INTEGER NOT NULL DEFAULT 0,
    usage           TEXT NOT NULL DEFAULT '{}',  -- upstream calls by kind, JSON
    checkpoint      TEXT,                   -- where a resumed run continues, JSON
    warnings        TEXT NOT NULL DEFAULT '[]',
    error_code      TEXT,
    error_message   TEXT
);

CREATE UNIQUE INDEX searches_idempotency_key ON searches (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX searches_state ON searches (state, created_at);
CREATE INDEX searches_created ON searches (created_at);

CREATE TABLE leads (
    id                 INTEGER PRIMARY KEY,
    source             TEXT NOT NULL,       -- 'google' or 'osm': the namespace of place_id
    place_id           TEXT NOT NULL,
    name               TEXT,
    address            TEXT,
    latitude           REAL,
    longitude          REAL,
    primary_type       TEXT,
    types              TEXT,                -- JSON array
    business_status    TEXT,
    maps_url           TEXT,
    phone              TEXT,                -- E.164 when it parses
    phone_display      TEXT,                -- as the source wrote it
    website            TEXT,
    website_domain     TEXT,                -- registrable host without www., for deduplication
    rating             REAL,
    user_rating_count  INTEGER,
    content_fetched_at TEXT,                -- when the source's content was last written
    content_purged_at  TEXT,                -- set when the retention purge cleared it
    first_seen_at      TEXT NOT NULL,
    last_seen_at       TEXT NOT NULL,
    -- Added by the user; never touched by a search, import or purge.
    status             TEXT NOT NULL DEFAULT 'new',
    notes              TEXT,
    tags               TEXT NOT NULL DEFAULT '[]',
    UNIQUE (source, place_id)
);

CREATE INDEX leads_website_domain ON leads (website_domain);
CREATE INDEX leads_phone ON leads (phone);
CREATE INDEX leads_content_fetched ON leads (source, content_fetched_at);
CREATE INDEX leads_last_seen ON leads (last_seen_at);

CREATE TABLE search_leads (
    search_id TEXT NOT NULL REFERENCES searches (id) ON DELETE CASCADE,
    lead_id   INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,             -- order in which the source returned it
    found_at  TEXT NOT NULL,
    PRIMARY KEY (search_id, lead_id)
);

CREATE INDEX search_leads_lead ON search_leads (lead_id);

CREATE TABLE geocode_cache (
    provider   TEXT NOT NULL,
    query      TEXT NOT NULL,               -- normalised location text
    result     TEXT,                        -- JSON area, NULL when nothing matched
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (provider, query)
);

-- One row, rewritten by the self-check: proves the file still takes writes.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL
);
