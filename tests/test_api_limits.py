"""Compression bombs and non-UTF-8 files against a real ``curate serve``: 413 / 422, bounded server memory.

The server runs with a 4 MB upload limit, so its decompressed limit is the default 10x = 40 MB, and the
default record limit of 16 MiB. Each bomb expands 128-1024x; the server's peak RSS (VmHWM) may grow by
at most RSS_BOUND over its resident size before the upload (today's code: +4.4 GB for the 1 GB line).
"""

from __future__ import annotations

import json

import pytest
import zstandard

from tests.apiserver import LiveServer
from tests.bombs import many_lines_gz, one_line_csv_zst, one_line_gz, proc_bytes, reset_peak

RSS_BOUND = 300 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    (root / "shared").mkdir()
    env = {"CURATE_POOL_ROOTS": str(root / "shared"), "CURATE_MAX_UPLOAD_BYTES": str(4_000_000)}
    srv = LiveServer(root / "home", workers=0, env=env).start()
    srv.root = root
    http = srv.client()
    warm = b"".join(json.dumps({"text": f"warm up record {i}"}).encode() + b"\n" for i in range(2000))
    assert http.post("/v1/pools", data={"name": "warm"}, files={"file": ("w.jsonl", warm)}).status_code == 201
    yield srv
    srv.stop()


def _post_bomb(server, name: str, data: bytes) -> tuple[dict, int]:
    """Upload; return the error body and how far the server's peak RSS rose over its RSS before."""
    assert len(data) < 4_000_000  # the compressed upload itself is within the limit
    reset_peak(server.proc.pid)  # else VmHWM keeps an earlier peak: still an upper bound, a looser one
    before = proc_bytes(server.proc.pid, "VmRSS")
    r = server.client().post("/v1/pools", data={"name": "bomb"}, files={"file": (name, data)})
    grown = proc_bytes(server.proc.pid, "VmHWM") - before
    assert r.status_code == 413, r.text
    return r.json()["error"], grown


@pytest.mark.parametrize(
    ("name", "make", "limit"),
    [
        ("line.jsonl.gz", lambda: one_line_gz(1024), "max_record_bytes"),  # 1 MB → 1 GiB in one line
        ("many.jsonl.gz", lambda: many_lines_gz(512), "max_expanded_bytes"),  # 1.6 MB → 512 MiB of lines
        ("line.csv.zst", lambda: one_line_csv_zst(1024), "max_record_bytes"),
    ],
)
def test_bomb_upload_is_413_with_bounded_memory(server, name, make, limit):
    err, grown = _post_bomb(server, name, make())
    assert err["code"] == "payload_too_large" and err["details"]["limit"] == limit
    assert limit in err["message"] and err["details"]["file"] == name
    assert grown < RSS_BOUND, f"server peak RSS grew by {grown >> 20} MiB"
    assert list((server.home / "uploads").glob(".tmp-*")) == []
    names = [p["name"] for p in server.client().get("/v1/pools").json()["data"]]
    assert "bomb" not in names


def test_server_side_path_bomb_is_413(server):
    (server.root / "shared" / "bomb.jsonl.gz").write_bytes(one_line_gz(256))
    r = server.client().post("/v1/pools", json={"name": "bomb", "path": "bomb.jsonl.gz"})
    assert r.status_code == 413 and r.json()["error"]["details"]["limit"] == "max_record_bytes"


def test_latin1_upload_is_422_naming_the_line_and_accepted_with_encoding(server):
    data = '{"text": "plain"}\n{"text": "naïve café"}\n'.encode("latin-1")
    http = server.client()
    r = http.post("/v1/pools", data={"name": "l1"}, files={"file": ("l1.jsonl", data)})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["details"]["line"] == 2 and err["details"]["file"] == "l1.jsonl" and "--encoding" in err["message"]
    r = http.post("/v1/pools", data={"name": "l1", "encoding": "latin-1"}, files={"file": ("l1.jsonl", data)})
    assert r.status_code == 201 and r.json()["n_records"] == 2
    r = http.post("/v1/pools", data={"name": "l2", "encoding": "klingon"}, files={"file": ("l1.jsonl", data)})
    assert r.status_code == 422 and "klingon" in r.text


def test_many_lines_csv_bomb_is_413_with_bounded_memory(server):
    row = b"the same short record again and again\n"
    data = zstandard.ZstdCompressor(level=3).compress(b"text\n" + row * ((256 << 20) // len(row)))
    err, grown = _post_bomb(server, "many.csv.zst", data)
    assert err["details"]["limit"] == "max_expanded_bytes"
    assert grown < RSS_BOUND, f"server peak RSS grew by {grown >> 20} MiB"
