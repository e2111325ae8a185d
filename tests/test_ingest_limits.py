"""Non-UTF-8 input and oversized input: exit 2 / a LimitExceeded naming file:line, decided while streaming."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
import zstandard

from curate.config import Settings
from curate.errors import InputError
from curate.ingest import IngestParams, ingest
from curate.pool import Pool
from curate.readers import read_chunks
from curate.streams import LimitExceeded, ReadLimits

from .conftest import run_cli

LATIN1_JSONL = '{"id": "a", "text": "plain"}\n{"id": "b", "text": "café crème"}\n'.encode("latin-1")
LATIN1_CSV = "id,text\na,plain\nb,déjà vu\n".encode("latin-1")


@pytest.mark.parametrize(("name", "content", "line"), [("l1.jsonl", LATIN1_JSONL, 2), ("l1.csv", LATIN1_CSV, 3)])
def test_latin1_is_exit_2_naming_the_line_and_reads_with_encoding(tmp_path: Path, name, content, line) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    home = tmp_path / "home"
    proc = run_cli("ingest", str(path), "--pool", "p", "--no-embed", "--json", home=home)
    assert proc.returncode == 2, proc.stderr
    body = json.loads(proc.stdout)
    assert body["error"]["details"]["line"] == line and body["error"]["details"]["file"] == str(path)
    assert "UTF-8" in body["error"]["message"] and "--encoding" in body["error"]["message"]
    assert f"{name}:{line}" in proc.stderr and "panick" not in proc.stderr and "Traceback" not in proc.stderr
    ok = run_cli("ingest", str(path), "--pool", "p", "--no-embed", "--encoding", "latin-1", "--json", home=home)
    assert ok.returncode == 0, ok.stderr
    pool = Pool.load(Settings(home=home), "p")
    texts = pl.read_parquet(pool.records_path, columns=["text"])["text"].to_list()
    assert texts[1] in ("café crème", "déjà vu")


def test_unknown_encoding_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "x"}\n')
    proc = run_cli("ingest", str(path), "--pool", "p", "--no-embed", "--encoding", "klingon", home=tmp_path / "h")
    assert proc.returncode == 2 and "klingon" in proc.stderr
    for name in ("base64", "rot13", "a\x00b"):
        with pytest.raises(ValueError, match="encoding"):
            IngestParams(encoding=name)
    utf16 = tmp_path / "u16.jsonl"
    utf16.write_bytes('{"text": "ünï"}\n{"text": "two"}\n'.encode("utf-16"))  # with a BOM
    assert [c.frame["text"].to_list() for c in read_chunks(utf16, encoding="utf-16")] == [["ünï", "two"]]


def test_invalid_utf8_after_many_lines_names_that_line(tmp_path: Path) -> None:
    """The bad byte sits past the first read block and in a multi-byte neighbourhood."""
    rows = [json.dumps({"text": f"ok é {i}"}, ensure_ascii=False) for i in range(60_000)]
    data = ("\n".join(rows) + "\n").encode() + b'{"text": "bad \xff"}\n'
    path = tmp_path / "late.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(data))
    with pytest.raises(InputError) as err:
        list(read_chunks(path, chunk_bytes=1 << 16))
    assert err.value.line == 60_001 and "0xff" in str(err.value)


def _gzip_members(head: bytes, body_mib: bytes, repeat: int, tail: bytes) -> bytes:
    """A gzip of ``head + body_mib * repeat + tail`` built from repeated members (fast, ~1000:1)."""
    return gzip.compress(head) + gzip.compress(body_mib, 9) * repeat + gzip.compress(tail)


def test_one_huge_line_stops_at_the_record_limit(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl.gz"
    path.write_bytes(_gzip_members(b'{"text": "ok"}\n{"text": "', b"a" * (1 << 20), 64, b'"}\n'))
    with pytest.raises(LimitExceeded) as err:
        list(read_chunks(path, limits=ReadLimits(max_record_bytes=4 << 20)))
    assert err.value.line == 2 and err.value.details["limit"] == "max_record_bytes"
    assert sum(c.frame.height for c in read_chunks(path, limits=ReadLimits(max_record_bytes=80 << 20))) == 2


def test_many_lines_stop_at_the_expanded_limit(tmp_path: Path) -> None:
    line = b'{"text": "the same record"}\n'
    path = tmp_path / "many.jsonl.gz"
    path.write_bytes(_gzip_members(b"", line * ((1 << 20) // len(line)), 64, b""))
    with pytest.raises(LimitExceeded) as err:
        for _ in read_chunks(path, chunk_bytes=1 << 20, limits=ReadLimits(max_expanded_bytes=8 << 20)):
            pass
    assert err.value.details == {"limit": "max_expanded_bytes", "limit_bytes": 8 << 20}


def test_csv_zst_limits_and_a_line_inside_a_block(tmp_path: Path) -> None:
    """A long line in the middle of a read block (not at its edge) is caught too, with its line number."""
    rows = [f"r{i},short text {i}" for i in range(100)]
    rows[50] = "r50," + "x" * 5000
    path = tmp_path / "t.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(("id,text\n" + "\n".join(rows) + "\n").encode()))
    with pytest.raises(LimitExceeded) as err:
        list(read_chunks(path, limits=ReadLimits(max_record_bytes=1000)))
    assert err.value.line == 52
    assert sum(c.frame.height for c in read_chunks(path, limits=ReadLimits(max_record_bytes=6000))) == 100
    with pytest.raises(LimitExceeded):
        list(read_chunks(path, limits=ReadLimits(max_expanded_bytes=2000)))


def test_csv_quoted_record_spanning_lines_is_bounded(tmp_path: Path) -> None:
    """No physical line is long, but one quoted value spans 8 MiB of lines: refused as one record."""
    value = ("word " * 20 + "\n") * ((8 << 20) // 101)
    path = tmp_path / "q.csv.gz"
    path.write_bytes(gzip.compress(f'id,text\na,fine\nb,"{value}"\nc,end\n'.encode(), 1))
    with pytest.raises(LimitExceeded) as err:
        list(read_chunks(path, chunk_bytes=1 << 20, limits=ReadLimits(max_record_bytes=2 << 20)))
    assert err.value.details["limit"] == "max_record_bytes"
    roomy = ReadLimits(max_record_bytes=9 << 20)
    assert sum(c.frame.height for c in read_chunks(path, chunk_bytes=1 << 20, limits=roomy)) == 3


def test_parquet_limits(tmp_path: Path) -> None:

    path = tmp_path / "p.parquet"
    pl.DataFrame({"text": ["short", "y" * 10_000]}).write_parquet(path)
    with pytest.raises(LimitExceeded) as err:
        list(read_chunks(path, limits=ReadLimits(max_record_bytes=1000)))
    assert err.value.line == 2
    with pytest.raises(LimitExceeded):
        list(read_chunks(path, limits=ReadLimits(max_expanded_bytes=100)))


def test_cli_flags_apply_and_server_settings_do_not(tmp_path: Path, monkeypatch) -> None:
    """A local ingest is unlimited unless asked: the server's CURATE_MAX_* settings do not reach it."""
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": "z" * 5000}) + "\n" + json.dumps({"text": "ok"}) + "\n")
    monkeypatch.setenv("CURATE_MAX_RECORD_BYTES", "100")
    monkeypatch.setenv("CURATE_MAX_UPLOAD_EXPANDED_BYTES", "100")
    assert run_cli("ingest", str(path), "--pool", "a", "--no-embed", home=tmp_path / "h").returncode == 0
    proc = run_cli("ingest", str(path), "--pool", "b", "--no-embed", "--max-record-bytes", "1000", home=tmp_path / "h")
    assert proc.returncode == 2 and "long.jsonl:1" in proc.stderr and "--max-record-bytes" in proc.stderr


def test_limit_error_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl.gz"
    path.write_bytes(_gzip_members(b'{"text": "', b"a" * (1 << 20), 8, b'"}\n'))
    with pytest.raises(LimitExceeded):
        ingest(settings, path, "p", IngestParams(embed=False, max_record_bytes=1 << 20))
    assert [p.name for p in settings.pools_dir.iterdir()] == []
