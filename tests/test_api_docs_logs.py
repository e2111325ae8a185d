"""``/docs`` works offline (Swagger UI from package data), JSON logs carry no ANSI colour codes, and
``curate pools`` lists what ``GET /v1/pools`` lists."""

from __future__ import annotations

import json
import re

import pytest

from tests.apiserver import LiveServer
from tests.conftest import run_cli
from tests.test_report_api import CHROMIUM, CHROMIUM_ARGS, _browser, _watch


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("docs") / "home", workers=0).start()
    yield srv
    srv.stop()


def test_docs_page_and_its_assets_are_served_locally(server):
    http = server.client()
    page = http.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "://" not in page.text  # no CDN, no absolute URL of any host
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"} <= set(assets)
    for asset in assets:
        r = http.get(asset)
        assert r.status_code == 200, asset
    assert len(http.get("/docs/static/swagger-ui-bundle.js").content) > 500_000  # the real bundle
    assert http.get("/redoc").status_code == 404  # redoc exists only on a CDN: not offered
    assert "/docs" not in http.get("/openapi.json").json()["paths"]


def test_docs_render_in_chromium_with_no_network_but_loopback(server, tmp_path):
    sync_playwright = _browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context()
            outside: list[str] = []
            ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url)
                      else (outside.append(route.request.url), route.abort()))  # fmt: skip
            page = ctx.new_page()
            problems = _watch(page)
            assert page.goto(server.url + "/docs").status == 200
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() >= 10  # the operations of /openapi.json are rendered
            page.screenshot(path=tmp_path / "docs.png", full_page=True)
            assert outside == [] and problems == []
        finally:
            browser.close()


def test_json_logs_have_no_ansi_colour_copy(server):
    server.client().get("/healthz")
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    assert any("Uvicorn running" in line["msg"] for line in lines)  # the uvicorn record that carried it
    assert all("color_message" not in line for line in lines)
    assert "\x1b[" not in server.log.read_text()


def test_curate_pools_lists_pools_like_the_api(tmp_path, papers_settings):
    home = papers_settings.root
    proc = run_cli("pools", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    papers = [p for p in body["pools"] if p["name"] == "papers"]
    assert body["count"] == len(body["pools"]) and papers
    assert papers[0]["n_records"] == 427 and set(papers[0]["features"]) == {"ngrams", "embed", "cluster"}
    assert papers[0]["fields"]["domain"] == "topic" and "path" not in papers[0]["source"]
    human = run_cli("pools", home=home).stdout.splitlines()
    assert human[0].split() == ["name", "id", "records", "features", "domain", "created"]
    assert any(line.split()[:3] == ["papers", papers[0]["id"], "427"] for line in human[1:])
    empty = run_cli("pools", "--json", home=tmp_path / "empty")
    assert json.loads(empty.stdout) == {"count": 0, "pools": []}
