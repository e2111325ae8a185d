"""The Ray executor on a real local cluster (num_cpus=2) gives the local executor's exact artifacts and
manifests. Unit sizes are shrunk so 120 papers records are cut into several units per stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate.config import Settings
from curate.embedders.transformer import TorchEmbedder
from curate.errors import InputError
from curate.executors import ExecutorSpec, make_executor, read_row_range, use_executor
from curate.ingest import IngestParams, ingest
from curate.pool import Pool
from curate.select import run_selection
from curate.stages import cluster, ngrams
from pipelines.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
PAPERS = REPO / "data" / "papers.jsonl"
TARGET = REPO / "data" / "targets" / "federated.jsonl"


@pytest.fixture(scope="module")
def ray_cluster():
    """One real local Ray cluster for the module, shut down afterwards."""
    import ray  # the `ray` extra; scripts/bootstrap.sh installs it for the suite

    executor = make_executor(ExecutorSpec(kind="ray", num_cpus=2))
    yield executor
    ray.shutdown()


@pytest.fixture(scope="module")
def homes(ray_cluster, tmp_path_factory):
    """The papers pool ingested twice, local and ray, each with its own embedding cache (so both encode)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(ngrams, "_ROWS_PER_PART", 30)  # 4 n-gram units
    mp.setattr(TorchEmbedder, "unit_rows", 32)  # 4 encode units
    mp.setattr(cluster, "_ASSIGN_ROWS", 50)  # 3 assignment units
    records = tmp_path_factory.mktemp("data") / "papers.jsonl"
    records.write_text("".join(PAPERS.read_text().splitlines(keepends=True)[:120]))  # keeps encoding short
    out = {}
    for kind in ("local", "ray"):
        root = tmp_path_factory.mktemp(kind)
        s = Settings(home=root / "home", cache_dir_override=root / "cache")
        params = IngestParams(id_field="id", domain_field="topic", clusters=6, executor=kind)
        out[kind] = (s, ingest(s, records, "papers", params))
    mp.undo()
    return out


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_feature_artifacts_are_identical(homes):
    (ls, lrep), (rs, rrep) = homes["local"], homes["ray"]
    assert lrep["pool"]["fingerprint"] == rrep["pool"]["fingerprint"]
    assert lrep["pool"]["id"] == rrep["pool"]["id"]
    for stage in ("ngrams", "embed", "cluster"):
        assert Path(lrep["stages"][stage]["path"]).name == Path(rrep["stages"][stage]["path"]).name
    local_ng, ray_ng = (_files(Path(r["stages"]["ngrams"]["path"])) for r in (lrep, rrep))
    local_ng.pop("stage.json"), ray_ng.pop("stage.json")  # holds timings
    assert len([k for k in local_ng if k.startswith("parts/")]) == 4
    assert local_ng == ray_ng
    assert rrep["stages"]["embed"]["encoded"] == 120  # the ray side really encoded, no cache hits
    lp, rp = Pool.load(ls, "papers"), Pool.load(rs, "papers")
    assert np.array_equal(lp.embeddings(), rp.embeddings())
    assert np.array_equal(lp.clusters(), rp.clusters())
    assert np.array_equal(lp.cluster_distance(), rp.cluster_distance())


@pytest.mark.parametrize(
    ("selector", "params", "target"),
    [("dsir", {}, TARGET), ("dsir", {"mode": "topk"}, TARGET), ("coverage", {}, None)],
)
def test_manifests_are_identical(homes, selector, params, target):
    docs = {}
    for kind, (s, _) in homes.items():
        with use_executor(kind):
            docs[kind] = run_selection(
                s, pool="papers", selector=selector, budget=30, params=params, seed=7, target=str(target or "") or None
            )
    local, ray_doc = docs["local"], docs["ray"]
    assert local["id"] == ray_doc["id"]
    assert local["budget"]["selected"] == 30
    assert local["files"] == ray_doc["files"]  # sha256 of subset.parquet
    subset = "subset.parquet"
    assert (Path(local["path"]) / subset).read_bytes() == (Path(ray_doc["path"]) / subset).read_bytes()


def test_pipeline_executor_forms(tmp_path):
    (tmp_path / "p.yaml").write_text("ingest: {path: x.jsonl, pool: p, executor: ray}\n")
    assert load_spec(tmp_path / "p.yaml").ingest.executor == "ray"
    (tmp_path / "p.yaml").write_text("ingest: {path: x.jsonl, pool: p, executor: {kind: ray, address: 'auto'}}\n")
    assert load_spec(tmp_path / "p.yaml").ingest.executor == ExecutorSpec(kind="ray", address="auto")
    (tmp_path / "p.yaml").write_text("ingest: {path: x.jsonl, pool: p, executor: {kind: spark}}\n")
    with pytest.raises(InputError) as err:
        load_spec(tmp_path / "p.yaml")
    assert "executor" in (err.value.field or "")


def test_read_row_range_crosses_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "r.parquet"
    with pq.ParquetWriter(path, pa.schema([("row_id", pa.int64())])) as w:
        for start in range(0, 100, 30):  # row groups of 30, 30, 30, 10
            w.write_table(pa.table({"row_id": np.arange(start, min(start + 30, 100))}))
    assert read_row_range(path, ["row_id"], 25, 95)["row_id"].to_list() == list(range(25, 95))
    assert read_row_range(path, ["row_id"], 90, 100)["row_id"].to_list() == list(range(90, 100))


def test_compose_ray_profile():
    import yaml

    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    head, worker = services["ray-head"], services["ray-worker"]
    assert head["profiles"] == worker["profiles"] == ["ray"]
    assert head["image"] == worker["image"] and head["build"]["args"]["EXTRAS"] == "ray"
    port = next(a.split("=")[1] for a in head["command"] if a.startswith("--port="))
    assert worker["command"][:2] == ["ray", "start"] and f"--address=ray-head:{port}" in worker["command"]
    assert head["environment"]["RAY_ADDRESS"] == worker["environment"]["RAY_ADDRESS"] == f"ray-head:{port}"
    home = head["environment"]["CURATE_HOME"]  # workers read pool files: the same volume at CURATE_HOME
    api_home = next(v for v in services["api"]["volumes"] if v.endswith(":" + home))
    assert api_home in head["volumes"] and api_home in worker["volumes"]
    assert 'pip install ".[${EXTRAS}]"' in (REPO / "Dockerfile").read_text()
