"""Reports over HTTP from a real ``curate serve``, and the index page and a report in headless
Chromium: no console errors, screenshots saved, and the report renders with the network off.

Browser: Debian ``chromium`` at /usr/bin/chromium driven by the ``playwright`` package (never
``playwright install``). Skips without them, unless CURATE_TEST_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from curate.report import diff
from tests.apiserver import LiveServer, wait_job
from tests.conftest import REPO
from tests.test_report import embedded_data

CHROMIUM = Path(os.environ.get("CURATE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKENS = "rw-secret:read,write;ro-secret:read"


@pytest.fixture(scope="module")
def server(papers_settings):
    env = {"CURATE_API_TOKENS": TOKENS, "CURATE_POOL_ROOTS": str(REPO / "data")}
    srv = LiveServer(papers_settings.root, workers=1, env=env, token="ro-secret").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def manifests(server) -> dict:
    """A targeted selection and a random one, made through the API (so the job names the target)."""
    rw = server.client("rw-secret")
    out = {}
    for name, body in {
        "dsir": {"selector": "dsir", "budget": 40, "target": str(REPO / "data/targets/federated.jsonl")},
        "random": {"selector": "random", "budget": 40},
    }.items():
        r = rw.post("/v1/selections", json={"pool": "papers", "seed": 5, **body})
        assert r.status_code == 202, r.text
        job = wait_job(rw, r.json()["id"])
        assert job["status"] == "succeeded", job
        out[name] = job["result"]
    return out


def test_report_route(server, manifests):
    ro = server.client()
    mid = manifests["dsir"]["manifest_id"]
    r = ro.get(f"/v1/manifests/{mid[:10]}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    data = embedded_data(r.text)
    assert data["header"]["id"] == mid and data["notes"] == []  # target found again through the job
    kl = {m["name"]: m for m in data["metrics"]}["kl_reduction"]
    assert kl["selection"] == pytest.approx(manifests["dsir"]["metrics"]["kl_reduction"], abs=1e-6)
    assert ro.get(f"/v1/manifests/{mid}/report").text == r.text  # rendered once, then served
    assert server.client("nope").get(f"/v1/manifests/{mid}/report").status_code == 401
    missing = ro.get("/v1/manifests/abcdef0123/report")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_diff_route(server, manifests, papers_settings):
    ro = server.client()
    a, b = manifests["dsir"]["manifest_id"], manifests["random"]["manifest_id"]
    got = ro.get(f"/v1/manifests/{a}/diff/{b}").json()
    folder = papers_settings.manifests_dir
    assert got == json.loads(json.dumps(diff(folder / a, folder / b)))
    assert got["a"]["n"] == 40 and got["shared"] + got["only_b"] == 40
    html = ro.get(f"/v1/manifests/{a}/diff/{b}", params={"format": "html"})
    assert html.status_code == 200 and '<section id="diff">' in html.text
    with_diff = ro.get(f"/v1/manifests/{a}/report", params={"diff": b}).text
    assert embedded_data(with_diff)["diff"]["jaccard"] == got["jaccard"]
    assert ro.get(f"/v1/manifests/{a}/diff/zzzz").status_code == 422


def test_index_page(server, manifests):
    assert server.client("nope").get("/").status_code == 401
    r = server.client().get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for result in manifests.values():
        assert f'href="/v1/manifests/{result["manifest_id"]}/report"' in r.text
    assert re.search(r"<td>papers</td>", r.text) and '<section id="jobs">' in r.text


def _browser():
    required = os.environ.get("CURATE_TEST_BROWSER") == "1"
    why = None
    if not CHROMIUM.exists():
        why = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright  # noqa: F401
        except ImportError:
            why = "the playwright package is not installed (pip install playwright; no browser download needed)"
    if why:
        if required:
            pytest.fail(f"CURATE_TEST_BROWSER=1 but {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    return sync_playwright


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return problems


def test_index_and_report_in_chromium(server, manifests, tmp_path):
    sync_playwright = _browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(extra_http_headers={"Authorization": "Bearer ro-secret"})
            page = ctx.new_page()
            problems = _watch(page)
            assert page.goto(server.url + "/").status == 200
            page.screenshot(path=tmp_path / "index.png", full_page=True)
            mid = manifests["dsir"]["manifest_id"]
            with page.expect_navigation():
                page.click(f'a[href="/v1/manifests/{mid}/report"]')
            assert page.title().startswith("curate report") and page.locator("section#map svg").is_visible()
            html = page.content()
            page.screenshot(path=tmp_path / "report-served.png", full_page=True)
            assert problems == []

            saved = tmp_path / "report.html"
            saved.write_text(server.client().get(f"/v1/manifests/{mid}/report").text)
            offline = browser.new_context(offline=True)
            requested: list[str] = []
            offline.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                          else (requested.append(route.request.url), route.abort()))  # fmt: skip
            page = offline.new_page()
            problems = _watch(page)
            page.goto(saved.as_uri())
            svgs = page.locator("svg")
            assert svgs.count() >= 6 and all(svgs.nth(i).bounding_box()["height"] > 50 for i in range(svgs.count()))
            assert page.locator('tr[data-metric="kl_reduction"] td.sel').inner_text() != "—"
            page.screenshot(path=tmp_path / "report-offline.png", full_page=True)
            assert requested == [] and problems == []
            assert (tmp_path / "report-offline.png").stat().st_size > 10_000 and "report-data" in html
        finally:
            browser.close()
