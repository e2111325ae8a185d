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
