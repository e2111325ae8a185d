"""The CLI contract (names, --json, exit codes) and batch pipeline files, through real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from curate.config import Settings
from curate.selectors.base import REGISTRY, get_selector

from .conftest import PAPERS, REPO, run_cli


def test_selectors_lists_every_registered_selector_with_defaults(tmp_path: Path) -> None:
    proc = run_cli("selectors", "--json", home=tmp_path / "h", check=True)
    listed = {s["name"]: s for s in json.loads(proc.stdout)["selectors"]}
    get_selector("random")
    assert set(listed) == set(REGISTRY)
    assert listed["stratified"]["defaults"] == {"by": "auto"}
    assert "properties" in listed["stratified"]["params_schema"]


def test_select_and_manifest_commands(papers_settings: Settings, tmp_path: Path) -> None:
    home = papers_settings.root
    proc = run_cli(
        "select",
        "--pool",
        "papers",
        "--selector",
        "stratified",
        "--budget",
        "0.1",
        "--param",
        "by=cluster",
        "--seed",
        "4",
        "--json",
        home=home,
        check=True,
    )
    doc = json.loads(proc.stdout)
    assert doc["selector"]["params"] == {"by": "cluster"} and doc["budget"]["selected"] == 42
    shown = json.loads(run_cli("manifest", "show", doc["id"][:10], "--json", home=home, check=True).stdout)
    assert shown["id"] == doc["id"]
    out = tmp_path / "subset.jsonl"
    run_cli(
        "manifest", "export", doc["id"], "--format", "jsonl", "--with-text", "--out", str(out), home=home, check=True
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 42 and all(r["text"] for r in rows) and [r["rank"] for r in rows] == list(range(42))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["select", "--pool", "papers", "--selector", "nope", "--budget", "5"], "available: "),
        (
            ["select", "--pool", "papers", "--selector", "random", "--budget", "5", "--param", "x=1"],
            "unknown parameter 'x'",
        ),
        (["select", "--pool", "papers", "--selector", "random", "--budget", "5", "--param", "novalue"], "key=value"),
        (["select", "--pool", "papers", "--selector", "random", "--budget", "2.5"], "fractional budget"),
        (["select", "--pool", "ghost", "--selector", "random", "--budget", "5"], "no pool named 'ghost'"),
        (["manifest", "show", "0123456789abcdef"], "no manifest"),
        (["ingest", "/no/such/file.jsonl", "--pool", "x", "--no-embed"], "no such file"),
    ],
)
def test_bad_input_exits_two(papers_settings: Settings, args: list[str], fragment: str) -> None:
    proc = run_cli(*args, home=papers_settings.root)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_quickstart_covers_every_batch_selector() -> None:
    spec = yaml.safe_load((REPO / "pipelines" / "examples" / "quickstart.yaml").read_text())
    get_selector("random")
    assert {s["selector"] for s in spec["selections"]} >= {n for n, c in REGISTRY.items() if not c.online}


def test_online_selector_is_listed_but_not_run_as_a_batch(papers_settings: Settings) -> None:
    proc = run_cli("selectors", "--json", home=papers_settings.root, check=True)
    odm = {s["name"]: s for s in json.loads(proc.stdout)["selectors"]}["odm"]
    assert odm["online"] is True and odm["defaults"]["variant"] == "paper"
    proc = run_cli("select", "--pool", "papers", "--selector", "odm", "--budget", "5", home=papers_settings.root)
    assert proc.returncode == 2 and "POST /v1/mixing/sessions" in proc.stderr


def test_quickstart_pipeline_end_to_end(tmp_path: Path) -> None:
    """What the README's first command runs, in a fresh home, as a subprocess."""
    home = tmp_path / "home"
    proc = run_cli("run", str(REPO / "pipelines" / "examples" / "quickstart.yaml"), "--json", home=home, check=True)
    result = json.loads(proc.stdout)
    assert result["ingest"]["pool"]["n_records"] == 427
    assert {"ngrams", "embed", "cluster"} <= set(result["ingest"]["stages"])
    assert len(result["selections"]) >= 3
    targeted = [r for r in result["selections"] if r["selector"] in ("dsir", "tarot")]
    assert targeted and all(any(k.endswith("_random") for k in r["metrics"]) for r in targeted)
    for row in result["selections"]:
        assert run_cli("manifest", "verify", row["manifest"], home=home).returncode == 0
    again = run_cli("run", str(REPO / "pipelines" / "examples" / "quickstart.yaml"), home=home, check=True)
    assert "cached" in again.stdout and "selection" in again.stdout  # human summary table, stages skipped


def test_pipeline_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("ingest:\n  path: x.jsonl\n  pool: [unclosed\n")
    proc = run_cli("run", str(bad_yaml), home=tmp_path / "h")
    assert proc.returncode == 2 and "bad.yaml:" in proc.stderr and "invalid YAML" in proc.stderr
    bad_sel = tmp_path / "sel.yaml"
    bad_sel.write_text(
        yaml.safe_dump(
            {
                "ingest": {"path": str(PAPERS), "pool": "p"},
                "selections": [
                    {"selector": "random", "budget": 5},
                    {"selector": "stratified", "budget": 5, "params": {"nope": 1}},
                ],
            }
        )
    )
    proc = run_cli("run", str(bad_sel), home=tmp_path / "h")
    assert proc.returncode == 2 and "selections.1.nope" in proc.stderr
    assert not (tmp_path / "h" / "pools").exists()  # validated before anything ran
    no_target = tmp_path / "target.yaml"
    no_target.write_text(
        yaml.safe_dump(
            {
                "ingest": {"path": str(PAPERS), "pool": "p"},
                "selections": [{"selector": "dsir", "budget": 5, "target": "missing.jsonl"}],
            }
        )
    )
    proc = run_cli("run", str(no_target), home=tmp_path / "h")
    assert proc.returncode == 2 and "target.yaml" in proc.stderr and "selections.0.target" in proc.stderr
    assert "missing.jsonl" in proc.stderr and not (tmp_path / "h" / "pools").exists()
