"""Bad input: one line naming file, line and field; exit 2; nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.config import Settings
from curate.errors import InputError
from curate.ingest import IngestParams, ingest

from .conftest import run_cli


def _leftovers(home: Path) -> list[str]:
    """Anything an aborted ingest could have left: pool folders, temp folders, feature dirs."""
    found = []
    for sub in ("pools", "features", "manifests"):
        root = home / sub
        if root.exists():
            found += [str(p.relative_to(home)) for p in root.rglob("*")]
    return found


def _no_pool_rows(settings: Settings) -> bool:
    from curate.catalog import list_pools

    return list_pools(settings) == []


CASES = [
    # (file content, extra CLI args, expected fragments of the one-line message)
    ('{"id": "a", "text": "ok"}\n{"id": "b", "text": "broken\n', [], ["bad.jsonl:2", "invalid JSON"]),
    (
        '{"id": "a", "body": "x"}\n{"id": "b", "body": "y"}\n',
        [],
        ["bad.jsonl:1", "'text'", "fields present: body, id"],
    ),
    ('{"id": "a", "text": "ok"}\n{"id": "b", "text": "   "}\n', [], ["bad.jsonl:2", "id 'b'", "empty text"]),
    ('{"id": "a", "text": "ok"}\n\n{"id": "b", "text": 42}\n', [], ["bad.jsonl:3", "'text'", "must be a string"]),
    ('{"id": "a", "text": "ok"}\n{"id": "b"}\n', [], ["bad.jsonl:2", "'text'", "missing or null"]),
    (
        '{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n{"id": "a", "text": "three"}\n',
        [],
        ["bad.jsonl:3", "duplicate id 'a'", "first at line 1", "keep-first"],
    ),
    ('{"id": "a", "text": "x"}\n', ["--domain-field", "topic"], ["bad.jsonl:1", "'topic'", "not found"]),
    ("[1, 2]\n", [], ["bad.jsonl:1", "expected a JSON object"]),
]


@pytest.mark.parametrize(("content", "args", "fragments"), CASES)
def test_bad_jsonl_is_rejected_with_location(tmp_path: Path, content: str, args: list[str], fragments: list[str]):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(InputError) as err:
        ingest(settings, path, "p", IngestParams(embed=False, domain_field=args[1] if args else None))
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    assert _leftovers(settings.root) == []
    assert _no_pool_rows(settings)


def test_cli_exit_code_two_and_one_line_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": "broken\n')
    proc = run_cli("ingest", str(path), "--pool", "p", "--no-embed", home=tmp_path / "home")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.jsonl:2" in lines[0] and "Traceback" not in proc.stderr
    assert _leftovers(tmp_path / "home") == []
    as_json = run_cli("ingest", str(path), "--pool", "p", "--no-embed", "--json", home=tmp_path / "home")
    body = json.loads(as_json.stdout)
    assert as_json.returncode == 2
    assert body["error"]["details"]["line"] == 2 and body["error"]["code"] == "invalid_input"


def test_keep_first_allows_duplicate_ids(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n{"id": "a", "text": "three"}\n')
    report = ingest(settings, path, "p", IngestParams(embed=False, on_duplicate_id="keep-first", chunk_bytes=1024))
    assert report["duplicates"]["dropped_duplicate_ids"] == 1
    from curate.pool import Pool

    assert Pool.load(settings, "p").column("text").to_list() == ["one", "two"]


def test_duplicate_id_across_chunks_names_both_lines(settings: Settings, tmp_path: Path) -> None:
    rows = [json.dumps({"id": f"r{i}", "text": f"text {i} " + "pad " * 30}) for i in range(300)]
    rows.append(json.dumps({"id": "r5", "text": "late copy"}))
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"late.jsonl:301: field 'id': duplicate id 'r5' \(first at line 6\)"):
        ingest(settings, path, "p", IngestParams(embed=False, chunk_bytes=2048))
    assert _leftovers(settings.root) == []


def test_malformed_csv_and_parquet_and_unknown_suffix(settings: Settings, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text('id,text\n1,"fine"\n2,"two",extra\n')
    with pytest.raises(InputError, match=r"bad.csv:3: malformed CSV"):
        ingest(settings, csv, "p", IngestParams(embed=False))
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputError, match="bad.parquet: not a readable Parquet file"):
        ingest(settings, pq, "p", IngestParams(embed=False))
    txt = tmp_path / "data.txt"
    txt.write_text("hello\n")
    with pytest.raises(InputError, match="unsupported file type"):
        ingest(settings, txt, "p", IngestParams(embed=False))
    assert _leftovers(settings.root) == []


def test_missing_model_fails_before_reading(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "fine"}\n')
    with pytest.raises(InputError, match="model 'no/such-model'"):
        ingest(settings, path, "p", IngestParams(model="no/such-model"))
    assert _leftovers(settings.root) == []


def test_interrupt_mid_ingest_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    rows = [json.dumps({"id": str(i), "text": f"record {i} " + "word " * 40}) for i in range(400)]
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(rows) + "\n")

    def interrupt(stage: str, done: int, total: int) -> None:
        if stage == "read" and done > 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(settings, path, "p", IngestParams(embed=False, chunk_bytes=4096), progress=interrupt)
    assert _leftovers(settings.root) == []
    assert _no_pool_rows(settings)


def test_interrupt_during_a_stage_keeps_pool_and_no_half_feature(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": f"text {i}"}) + "\n" for i in range(50)))

    def interrupt(stage: str, done: int, total: int) -> None:
        if stage == "ngrams":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(settings, path, "p", IngestParams(embed=False), progress=interrupt)
    features = settings.features_dir
    assert not any(features.rglob("stage.json")) and not any(p.name.startswith(".tmp") for p in features.rglob("*"))
    # the next ingest completes the missing stage
    report = ingest(settings, path, "p", IngestParams(embed=False))
    assert report["stages"]["ngrams"]["cached"] is False
