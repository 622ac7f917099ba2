-- Lead scoring: one model assessment per (lead, profile, model), shared by
-- every search with that profile and model, and each search's scoring state.
-- Only additions; nothing here depends on other migrations than 0001.

CREATE TABLE lead_scores (
    id           INTEGER PRIMARY KEY,
    lead_id      INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    profile_hash TEXT NOT NULL,             -- SHA-256 of the whitespace-normalised profile text
    model        TEXT NOT NULL,             -- LEADD_OPENAI_MODEL when it was scored
    score        INTEGER,                   -- 0 to 100; NULL when error is set
    reasons      TEXT NOT NULL DEFAULT '[]',  -- JSON array of at most three strings
    outreach     TEXT,                      -- one line of at most 300 characters
    error        TEXT,                      -- why there is no score: refusal, length, invalid_output...
    error_detail TEXT,
    search_id    TEXT,                      -- the search whose model request wrote this row
    scored_at    TEXT NOT NULL,
    UNIQUE (lead_id, profile_hash, model)
);

CREATE INDEX lead_scores_lead ON lead_scores (lead_id, scored_at);

ALTER TABLE searches ADD COLUMN profile_hash TEXT;
ALTER TABLE searches ADD COLUMN score_model TEXT;
-- NULL until the scoring stage starts; search_to_json shows pending or off then.
ALTER TABLE searches ADD COLUMN scoring_state TEXT;
-- Counts, model usage and the scoring error, JSON.
ALTER TABLE searches ADD COLUMN scoring TEXT NOT NULL DEFAULT '{}';
-- Set once every page is stored, so a resumed search skips the fetch and
-- goes on with the stages after it (scoring).
ALTER TABLE searches ADD COLUMN places_stored_at TEXT;
