-- OpenStreetMap: contact fields and OSM identity on leads, a full-text index
-- over names and category words, the import log and the offline gazetteer.
-- Only additions; nothing here depends on other migrations than 0001.

ALTER TABLE leads ADD COLUMN email TEXT;
ALTER TABLE leads ADD COLUMN opening_hours TEXT;   -- as the source wrote it (OSM opening_hours syntax)
ALTER TABLE leads ADD COLUMN category TEXT;        -- main OSM tag, such as amenity=cafe
-- Words a text search matches besides the name: tag keys and values
-- ("amenity cafe"), cuisine, brand and the name in other languages.
ALTER TABLE leads ADD COLUMN keywords TEXT;
ALTER TABLE leads ADD COLUMN osm_version INTEGER;  -- element version in the last imported extract
ALTER TABLE leads ADD COLUMN osm_tags TEXT;        -- every tag of the element, JSON object
ALTER TABLE leads ADD COLUMN osm_import_id INTEGER;  -- the last osm_imports row that contained it

CREATE INDEX leads_osm_position ON leads (latitude, longitude) WHERE source = 'osm';
CREATE INDEX leads_osm_import ON leads (osm_import_id) WHERE source = 'osm';

-- External-content FTS5 index over leads. The triggers keep it in sync with
-- every write except the importer's: a row the importer inserts or changes
-- gets a new osm_import_id in the same statement, which the WHEN clauses
-- skip, and the importer updates leads_fts itself in bulk (FTS5 writes one
-- index segment per trigger call, several times slower for large imports).
-- Writers that do not set osm_import_id (searches, user edits, the purge,
-- older releases) are always covered by the triggers.
CREATE VIRTUAL TABLE leads_fts USING fts5(
    name,
    keywords,
    content = 'leads',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads WHEN new.osm_import_id IS NULL BEGIN
    INSERT INTO leads_fts (rowid, name, keywords) VALUES (new.id, new.name, new.keywords);
END;

CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, name, keywords) VALUES ('delete', old.id, old.name, old.keywords);
END;

CREATE TRIGGER leads_fts_update AFTER UPDATE OF name, keywords ON leads
WHEN (old.name IS NOT new.name OR old.keywords IS NOT new.keywords)
    AND new.osm_import_id IS old.osm_import_id BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, name, keywords) VALUES ('delete', old.id, old.name, old.keywords);
    INSERT INTO leads_fts (rowid, name, keywords) VALUES (new.id, new.name, new.keywords);
END;

-- Index the leads stored before this migration.
INSERT INTO leads_fts (leads_fts) VALUES ('rebuild');

-- One row per `leadd import-osm` run (and the bundled import on first start).
CREATE TABLE osm_imports (
    id               INTEGER PRIMARY KEY,
    file             TEXT NOT NULL,         -- absolute path as given
    sha256           TEXT NOT NULL,
    header_timestamp TEXT,                  -- osmosis_replication_timestamp or timestamp from the file header
    newest_element_at TEXT,                 -- newest timestamp among the imported elements
    south            REAL,                  -- coverage: the header bbox, else the extent of the imported data
    west             REAL,
    north            REAL,
    east             REAL,
    country_code     TEXT,                  -- ISO 3166-1 alpha-2 used for national phone numbers
    state            TEXT NOT NULL,         -- running, succeeded or failed
    error            TEXT,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    duration_s       REAL,
    counts           TEXT NOT NULL DEFAULT '{}'  -- JSON: elements read, leads inserted/updated/unchanged/missing...
);

CREATE INDEX osm_imports_state ON osm_imports (state, finished_at);

-- Offline gazetteer: named places from imported extracts, one row per name
-- variant, with the area a search near that place covers.
CREATE TABLE osm_places (
    lookup       TEXT NOT NULL,             -- normalised name: case-folded, without diacritics
    osm_id       TEXT NOT NULL,             -- node/1, way/2 or relation/3
    name         TEXT NOT NULL,
    place_type   TEXT NOT NULL,             -- place=* value, or admin_level_N for boundaries
    rank         INTEGER NOT NULL,          -- larger places first when names repeat
    south        REAL NOT NULL,
    west         REAL NOT NULL,
    north        REAL NOT NULL,
    east         REAL NOT NULL,
    country_code TEXT,
    import_id    INTEGER NOT NULL,
    PRIMARY KEY (lookup, osm_id)
);
