"""`leadd import-osm`: the bundled Helsinki extract into a store on disk, re-imports, bad files."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import osmium
import pytest

from leadd.osm import bundled_extract_path, importer

EXTRACT = bundled_extract_path()

# From an independent pyosmium scan of the extract: named elements with a
# business tag (leadd.osm.tags.lead_tags), and among them those with a phone
# that phonenumbers parses (FI for national numbers) or a website:
# 744 nodes, 24 ways and 2 relations.
LEADS = 1309
LEADS_BY_KIND = {"node": 1269, "way": 37, "relation": 3}
LEADS_WITH_PHONE_OR_WEBSITE = 770

CAFE_ENGEL = "node/307465178"
HOTELLI_TORNI = "way/123525580"
MARSKI = "relation/5608"
BIO_REX = "node/1381017800"


def import_osm(state_dir: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(state_dir.parent),
        "LEADD_STATE_DIR": str(state_dir),
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "leadd", "import-osm", *map(str, args)],
        env=env,
        cwd=state_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def connect(state_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(state_dir / "leadd.sqlite3")
    conn.row_factory = sqlite3.Row
    return conn


def lead(conn: sqlite3.Connection, place_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM leads WHERE source = 'osm' AND place_id = ?", (place_id,)).fetchone()
    assert row is not None, f"{place_id} was not imported"
    return row


def fts_ids(conn: sqlite3.Connection, match: str) -> set[int]:
    return {row[0] for row in conn.execute("SELECT rowid FROM leads_fts WHERE leads_fts MATCH ?", (match,))}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A store with the bundled extract imported once; tests here only read it."""
    state_dir = tmp_path_factory.mktemp("imported") / "state"
    result = import_osm(state_dir, EXTRACT)
    return state_dir, result


def test_import_bundled_extract_counts(imported):
    state_dir, result = imported

    assert result.returncode == 0, result.stderr
    assert f"imported {LEADS} leads ({LEADS} new, 0 changed, 0 unchanged" in result.stdout
    with connect(state_dir) as conn:
        assert conn.execute("SELECT COUNT(*) FROM leads WHERE source = 'osm'").fetchone()[0] == LEADS
        by_kind = dict(
            conn.execute("SELECT substr(place_id, 1, instr(place_id, '/') - 1), COUNT(*) FROM leads GROUP BY 1").fetchall()
        )
        assert by_kind == LEADS_BY_KIND
        reachable = conn.execute("SELECT COUNT(*) FROM leads WHERE phone IS NOT NULL OR website IS NOT NULL").fetchone()[0]
        assert reachable == LEADS_WITH_PHONE_OR_WEBSITE
        record = conn.execute("SELECT * FROM osm_imports").fetchone()
    assert record["state"] == "succeeded"
    assert record["sha256"] == hashlib.sha256(EXTRACT.read_bytes()).hexdigest()
    assert (record["south"], record["west"], record["north"], record["east"]) == (60.164155, 24.9351762, 60.179113, 24.9534145)
    assert record["newest_element_at"] == "2019-04-21T09:50:14Z"
    assert record["country_code"] == "FI"
    assert json.loads(record["counts"])["inserted"] == LEADS


def test_import_file_index_same_leads(imported, tmp_path, monkeypatch):
    """Extracts above the small-file limit keep node locations in a file; the leads are the same."""
    state_dir, _ = imported
    database = tmp_path / "file-index.sqlite3"
    monkeypatch.setattr(importer, "MEMORY_INDEX_MAX_BYTES", 0)
    created = []
    create_map = osmium.index.create_map
    monkeypatch.setattr(osmium.index, "create_map", lambda spec: created.append(spec) or create_map(spec))

    importer.import_extract(database, EXTRACT)

    assert [spec.split(",")[0] for spec in created] == ["sparse_file_array"]
    query = "SELECT place_id, latitude, longitude FROM leads ORDER BY place_id"
    with sqlite3.connect(database) as by_file, connect(state_dir) as by_memory:
        assert by_file.execute(query).fetchall() == [tuple(row) for row in by_memory.execute(query)]


def test_import_node_way_relation(imported):
    state_dir, _ = imported

    with connect(state_dir) as conn:
        engel = lead(conn, CAFE_ENGEL)
        torni = lead(conn, HOTELLI_TORNI)
        marski = lead(conn, MARSKI)

    assert engel["name"] == "Cafe Engel"
    assert engel["category"] == "amenity=cafe"
    assert engel["address"] == "Aleksanterinkatu 26, 00170 Helsinki"
    assert (engel["latitude"], engel["longitude"]) == (60.168913, 24.951745)
    assert engel["phone"] == "+3589652776"
    assert engel["opening_hours"] == "Mo-Fr 08:00-21:00; Sa 09:00-21:00; Su 10:00-19:00"
    assert engel["maps_url"] == "https://www.openstreetmap.org/node/307465178"
    assert engel["osm_version"] == 7
    assert json.loads(engel["osm_tags"])["amenity"] == "cafe"

    assert torni["name"] == "Hotelli Torni"
    assert torni["category"] == "tourism=hotel"
    assert torni["website"] == "https://www.sokoshotels.fi/en/helsinki/sokos-hotel-torni"
    assert 60.1676 < torni["latitude"] < 60.1680
    assert 24.9383 < torni["longitude"] < 24.9390

    # A multipolygon: placed at the centre of its member ways.
    assert marski["name"] == "Marski by Scandic"
    assert marski["category"] == "tourism=hotel"
    assert marski["phone"] == "+358968061"
    assert marski["phone_display"] == "+358 9 68 061"
    assert 60.1641550 < marski["latitude"] < 60.1791130
    assert 24.9351762 < marski["longitude"] < 24.9534145


def test_import_splits_multivalued_tags(imported):
    state_dir, _ = imported

    with connect(state_dir) as conn:
        aventura = lead(conn, "node/4753386021")  # phone=+358401351001;+358207435100
        sofia = lead(conn, "node/3139499046")  # phone=0404640095, contact:phone=09 627161;0404640095
        kiinteistomaailma = lead(conn, "node/1405850870")  # phone=+358105812470; +358503871887

    assert aventura["phone"] == "+358401351001"
    assert aventura["phone_display"] == "+358401351001"
    assert sofia["phone"] == "+358404640095"
    assert sofia["phone_display"] == "0404640095"
    assert kiinteistomaailma["phone"] == "+358105812470"
    assert ";" not in (kiinteistomaailma["phone_display"] or "")


def test_import_contact_tags_any_script(imported):
    state_dir, _ = imported

    with connect(state_dir) as conn:
        bio_rex = lead(conn, BIO_REX)  # only contact:email and contact:website
        pho = lead(conn, "node/1371747504")
        pho_hits = fts_ids(conn, '"pho"')

    assert bio_rex["email"] == "kino@korjaamo.fi"
    assert bio_rex["website"] == "https://www.korjaamokino.fi/"
    assert bio_rex["website_domain"] == "korjaamokino.fi"
    assert pho["name"] == "Asian Wok And Grill Phở Việt"
    assert pho["id"] in pho_hits  # the index drops diacritics, the stored name keeps them


def test_import_fills_gazetteer(imported):
    state_dir, _ = imported

    with connect(state_dir) as conn:
        helsinki = conn.execute("SELECT * FROM osm_places WHERE lookup = 'helsinki' ORDER BY rank DESC").fetchone()
        swedish = conn.execute("SELECT osm_id FROM osm_places WHERE lookup = 'helsingfors' ORDER BY rank DESC").fetchone()

    assert helsinki["osm_id"] == "node/1372477580"
    assert helsinki["place_type"] == "city"
    assert helsinki["south"] < 60.1674098 < helsinki["north"]
    assert helsinki["west"] < 24.9425769 < helsinki["east"]
    assert helsinki["country_code"] == "FI"
    assert swedish["osm_id"] == "node/1372477580"


def test_reimport_same_file_is_idempotent(tmp_path):
    state_dir = tmp_path / "state"
    assert import_osm(state_dir, EXTRACT).returncode == 0
    with connect(state_dir) as conn:
        engel_id = lead(conn, CAFE_ENGEL)["id"]
        conn.execute(
            "UPDATE leads SET status = 'contacted', notes = 'called on Monday', tags = '[\"vip\"]' WHERE id = ?",
            (engel_id,),
        )
        before = conn.execute("SELECT id, place_id, name, phone, website, keywords FROM leads ORDER BY id").fetchall()

    again = import_osm(state_dir, EXTRACT)

    assert again.returncode == 0, again.stderr
    assert f"imported {LEADS} leads (0 new, 0 changed, {LEADS} unchanged, 0 no longer in the extract)" in again.stdout
    with connect(state_dir) as conn:
        after = conn.execute("SELECT id, place_id, name, phone, website, keywords FROM leads ORDER BY id").fetchall()
        engel = lead(conn, CAFE_ENGEL)
        imports = conn.execute("SELECT id, state FROM osm_imports ORDER BY id").fetchall()
        conn.execute("INSERT INTO leads_fts (leads_fts) VALUES ('integrity-check')")
        indexed = conn.execute("SELECT COUNT(*) FROM leads_fts_docsize").fetchone()[0]
    assert [tuple(row) for row in after] == [tuple(row) for row in before]
    assert engel["status"] == "contacted"
    assert engel["notes"] == "called on Monday"
    assert json.loads(engel["tags"]) == ["vip"]
    assert engel["osm_import_id"] == imports[-1]["id"]
    assert [row["state"] for row in imports] == ["succeeded", "succeeded"]
    assert indexed == LEADS


def _newer_extract(path: Path) -> Path:
    """Write the extract with Cafe Engel's phone and Hotelli Torni's name changed and Bio Rex deleted."""
    header = osmium.io.Header()
    header.add_box(osmium.FileProcessor(str(EXTRACT)).header.box())
    with osmium.SimpleWriter(str(path), header=header) as writer:
        for element in osmium.FileProcessor(str(EXTRACT)):
            kind = element.type_str()
            if kind == "n" and element.id == 1381017800:
                continue
            if kind == "n" and element.id == 307465178:
                element = element.replace(version=element.version + 1, tags=dict(element.tags, phone="+358 9 123 4567"))
            if kind == "w" and element.id == 123525580:
                element = element.replace(version=element.version + 1, tags=dict(element.tags, name="Sokos Hotel Torni"))
            writer.add(element)
    return path


def test_reimport_newer_extract_updates_changed(tmp_path):
    state_dir = tmp_path / "state"
    assert import_osm(state_dir, EXTRACT).returncode == 0
    with connect(state_dir) as conn:
        conn.execute("UPDATE leads SET notes = 'met at a fair' WHERE place_id = ?", (CAFE_ENGEL,))
        torni_id = lead(conn, HOTELLI_TORNI)["id"]
        first_seen = lead(conn, CAFE_ENGEL)["first_seen_at"]
        bio_rex_seen = lead(conn, BIO_REX)["last_seen_at"]
    newer = _newer_extract(tmp_path / "helsinki-newer.osm.pbf")

    result = import_osm(state_dir, newer)

    assert result.returncode == 0, result.stderr
    assert f"imported {LEADS - 1} leads (0 new, 2 changed, {LEADS - 3} unchanged, 1 no longer in the extract)" in result.stdout
    with connect(state_dir) as conn:
        engel = lead(conn, CAFE_ENGEL)
        torni = lead(conn, HOTELLI_TORNI)
        bio_rex = lead(conn, BIO_REX)
        sokos_hits = fts_ids(conn, '"sokos"')
        hotelli_hits = fts_ids(conn, 'name : "hotelli"')
        conn.execute("INSERT INTO leads_fts (leads_fts) VALUES ('integrity-check')")
    assert engel["phone"] == "+35891234567"
    assert engel["osm_version"] == 8
    assert engel["notes"] == "met at a fair"
    assert engel["first_seen_at"] == first_seen
    assert torni["id"] == torni_id
    assert torni["name"] == "Sokos Hotel Torni"
    assert torni_id in sokos_hits
    assert torni_id not in hotelli_hits
    assert bio_rex["last_seen_at"] == bio_rex_seen  # kept, not seen again


def test_import_missing_file_exits_66(tmp_path):
    result = import_osm(tmp_path / "state", tmp_path / "nowhere.osm.pbf")

    assert result.returncode == 66
    assert "nowhere.osm.pbf does not exist" in result.stderr


def test_import_corrupt_file_exits_65(tmp_path):
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(bytes(range(256)) * 40)

    result = import_osm(tmp_path / "state", garbage)

    assert result.returncode == 65
    assert "cannot read" in result.stderr
    assert "garbage.osm.pbf" in result.stderr
    assert "PBF error" in result.stderr


def test_import_truncated_file_writes_nothing(tmp_path):
    truncated = tmp_path / "truncated.osm.pbf"
    truncated.write_bytes(EXTRACT.read_bytes()[:300_000])
    state_dir = tmp_path / "state"

    result = import_osm(state_dir, truncated)

    assert result.returncode == 65
    assert "unexpected EOF" in result.stderr
    with connect(state_dir) as conn:
        assert conn.execute("SELECT COUNT(*) FROM leads").fetchone()[0] == 0
        record = conn.execute("SELECT state, error FROM osm_imports").fetchone()
    assert record["state"] == "failed"
    assert "unexpected EOF" in record["error"]


def test_import_unknown_format_exits_65(tmp_path):
    notes = tmp_path / "helsinki.txt"
    notes.write_text("not an extract\n")

    result = import_osm(tmp_path / "state", notes)

    assert result.returncode == 65
    assert "Could not detect file format" in result.stderr


def test_import_invalid_region_is_usage_error(tmp_path):
    result = import_osm(tmp_path / "state", EXTRACT, "--region", "Finland")

    assert result.returncode == 2
    assert "ISO 3166-1 alpha-2" in result.stderr
