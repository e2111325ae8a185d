"""Progress on stderr with rate and ETA, for `ingest`, `select` and `run`; stdout stays parseable JSON."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from curate.progress import ProgressReporter, selection_progress

from .conftest import REPO, write_jsonl


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_interval_with_rate_and_eta() -> None:
    out, clock = io.StringIO(), Clock()
    p = ProgressReporter(out, interval=5.0, tty=False, clock=clock)
    p("embed", 0, 1000)
    for done in range(100, 1000, 100):  # 100 records/s
        clock.now += 1.0
        p("embed", done, 1000)
    clock.now += 1.0
    p("embed", 1000, 1000)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[embed] 500/1,000 records · 50% · 100 records/s · ETA 5s",  # 5 s after the start, then at the end
        "[embed] 1,000/1,000 records · 100% · 100 records/s · done in 10s",
    ]


def test_stage_change_closes_the_last_stage_and_fractions_show_messages() -> None:
    out, clock = io.StringIO(), Clock()
    p = ProgressReporter(out, interval=60.0, tty=False, clock=clock)
    p("read", 0, 0)
    clock.now += 2.0
    p("read", 5000, 0)  # unknown total: count and rate only
    clock.now += 2.0
    report = selection_progress(p, "select tarot")
    report(0.25, "whitening")
    clock.now += 3.0
    report(1.0, "done")
    p.close()
    assert out.getvalue().splitlines() == [  # each stage ended within the interval: one line each
        "[read] 5,000 records · 1,250 records/s · done in 4s",
        "[select tarot] done in 3s · done",
    ]


def test_a_failed_stage_prints_nothing_more_and_a_silent_stage_says_it_is_alive() -> None:
    out, clock = io.StringIO(), Clock()
    with ProgressReporter(out, interval=5.0, tty=False, clock=clock) as p:
        p("embed", 0, 10)
        clock.now += 65
        p("embed", 0, 10)
    assert out.getvalue().splitlines() == [
        "[embed] 0/10 records · 0% · 1m05s so far",
        "[embed] 0/10 records · 0% · done in 1m05s",
    ]
    out = io.StringIO()
    try:
        with ProgressReporter(out, interval=5.0, tty=False, clock=clock) as p:
            p("read", 10, 0)
            raise KeyError("bad input")
    except KeyError:
        pass
    assert out.getvalue() == ""


def test_terminal_redraws_one_line_per_stage() -> None:
    out, clock = io.StringIO(), Clock()
    p = ProgressReporter(out, interval=5.0, tty=True, clock=clock)
    for done in range(0, 11):
        clock.now += 1.0
        p("ngrams", done, 10)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("done in 10s\x1b[K\n") and text.count("\r") > 2


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CURATE_PROGRESS_SECONDS": "0", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "curate.cli", *args, "--home", str(home), "--json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_ingest_without_a_tty_prints_progress_to_stderr_only(tmp_path: Path) -> None:
    rows = [
        {"id": f"r{i}", "text": f"record number {i} about topic {i % 7}", "domain": f"d{i % 3}"} for i in range(3000)
    ]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    proc = _cli("ingest", str(path), "--pool", "p", "--no-embed", home=tmp_path / "h")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pool"]["n_records"] == 3000  # stdout is the JSON document alone
    assert re.search(r"^\[read\] 3,000/3,000 records · 100% · [\d,.]+ records/s · done in", proc.stderr, re.M)
    assert re.search(r"^\[ngrams\] 3,000/3,000 records · 100% · [\d,.]+ records/s · done in", proc.stderr, re.M)


def test_run_shows_each_stage_and_each_selection(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "text": f"short text {i} on subject {i % 5}", "topic": f"t{i % 4}"} for i in range(400)]
    write_jsonl(tmp_path / "pool.jsonl", rows)
    (tmp_path / "pipe.yaml").write_text(
        "name: tiny\ningest: {path: pool.jsonl, pool: tiny, domain_field: topic, embed: false}\n"
        "selections:\n  - {name: r10, selector: random, budget: 10}\n"
        "  - {name: strat, selector: stratified, budget: 40, params: {by: domain}}\n"
    )
    proc = _cli("run", str(tmp_path / "pipe.yaml"), home=tmp_path / "h")
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in json.loads(proc.stdout)["selections"]] == ["r10", "strat"]
    for stage in ("[ingest:read]", "[ingest:ngrams]", "[r10:select]", "[strat:select]"):  # step:stage
        assert re.search(rf"^{re.escape(stage)} .*done in \d+s", proc.stderr, re.M), (stage, proc.stderr)
