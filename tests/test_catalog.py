"""The catalog on SQLite (default) and on the real Postgres (docker-compose's database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate import catalog
from curate.config import Settings
from curate.ingest import IngestParams, ingest
from curate.select import run_selection


def _exercise(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(f'{{"id": "{i}", "text": "text {i}", "domain": "d{i % 3}"}}\n' for i in range(30)))
    ingest(settings, path, "p", IngestParams(embed=False))
    ingest(settings, path, "p", IngestParams(embed=False))  # idempotent: still one row
    doc = run_selection(settings, pool="p", selector="stratified", budget=9, seed=1)
    pools = catalog.list_pools(settings)
    assert [(p.name, p.n_records) for p in pools] == [("p", 30)]
    assert pools[0].info["fields"]["domain"] == "domain"
    rows = catalog.list_manifests(settings, pool_id=pools[0].id, selector="stratified")
    assert [(r.id, r.selected) for r in rows] == [(doc["id"], 9)]
    assert catalog.list_manifests(settings, selector="random") == []
    with pytest.raises(Exception, match="no pool named 'q'; known pools: p"):
        catalog.get_pool(settings, "q")


def test_catalog_on_sqlite(settings: Settings, tmp_path: Path) -> None:
    _exercise(settings, tmp_path)
    assert (settings.root / "catalog.db").is_file()


def test_catalog_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    _exercise(settings, tmp_path)
    assert not (settings.root / "catalog.db").exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_catalog_from_an_older_curate_gains_the_new_columns(backend: str, tmp_path: Path, request) -> None:
    """A session-1 catalog: mixing_steps without issued_at / expired_at. Opening it adds them, and
    online mixing (which writes them) works on it."""
    from sqlalchemy import MetaData, Table, create_engine, inspect

    from curate import mixing
    from tests.conftest import write_jsonl
    from tests.odm_support import synthetic_rows

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    settings = Settings(home=tmp_path / "home", database_url=url)
    settings.root.mkdir(parents=True)
    new = {"issued_at", "expired_at"}
    old = Table(
        "mixing_steps",
        MetaData(),
        *[c._copy() for c in mixing.MixingStepRow.__table__.columns if c.name not in new],
    )
    engine = create_engine(settings.catalog_url)
    old.create(engine)
    assert not new & {c["name"] for c in inspect(engine).get_columns("mixing_steps")}
    engine.dispose()

    ingest(settings, write_jsonl(tmp_path / "s.jsonl", synthetic_rows()), "synth", IngestParams(embed=False))
    sid = mixing.create_session(settings, pool="synth", params={"warmup_steps": 0})["id"]
    batch = mixing.next_batch(settings, sid, 4, with_text=False)
    done = mixing.feedback(settings, sid, batch["step"], {m["group"]: 1.0 for m in batch["micro_batches"]})
    assert done["updated"] and not done["expired"]
    engine = create_engine(settings.catalog_url)
    assert new <= {c["name"] for c in inspect(engine).get_columns("mixing_steps")}
    engine.dispose()
