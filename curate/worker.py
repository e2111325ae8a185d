"""Workers: processes that claim jobs from the catalog and run them with the library's own functions.

A worker runs one job at a time in its main thread; a heartbeat thread keeps the row fresh and
picks up cancel requests. Cancellation is cooperative: the next progress report raises
:class:`JobCancelled`, and the atomic writes of ingest and manifests leave nothing half-written.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from curate import jobs
from curate.config import Settings
from curate.errors import CurateError

log = logging.getLogger("curate.worker")


class JobCancelled(BaseException):  # noqa: N818 — BaseException so no ``except Exception`` can swallow it
    """Raised inside a job when its cancel flag is set."""


class JobInterrupted(BaseException):  # noqa: N818
    """Raised inside a job when its worker is asked to stop (the job goes back to the queue)."""


class Reporter:
    """Throttled progress writes and the cancel flag, shared by the job and the heartbeat thread."""

    def __init__(self, settings: Settings, job_id: str, worker: str, min_interval: float = 0.5) -> None:
        self.settings, self.job_id, self.worker = settings, job_id, worker
        self.min_interval = min_interval
        self.cancelled = threading.Event()
        self.interrupted = threading.Event()
        self._stage: str | None = None
        self._last = 0.0

    def check(self) -> None:
        if self.interrupted.is_set():
            raise JobInterrupted
        if self.cancelled.is_set():
            raise JobCancelled

    def __call__(self, progress: float, stage: str, message: str | None = None) -> None:
        self.check()
        now = time.monotonic()
        if stage == self._stage and now - self._last < self.min_interval:
            return
        self._stage, self._last = stage, now
        if jobs.report(self.settings, self.job_id, self.worker, progress=progress, stage=stage, message=message):
            self.cancelled.set()
        self.check()

    def beat(self) -> None:
        if jobs.report(self.settings, self.job_id, self.worker):
            self.cancelled.set()


# --- job kinds ----------------------------------------------------------------------------------

# Share of the overall progress bar per ingest stage (read has no known total, so it only moves on).
_INGEST_SPANS = {"read": (0.0, 0.2), "ngrams": (0.2, 0.35), "embed": (0.35, 0.9), "cluster": (0.9, 1.0)}


def run_ingest_job(settings: Settings, params: dict, report: Reporter) -> dict:
    from curate.ingest import IngestParams, ingest

    def progress(stage: str, done: int, total: int) -> None:
        lo, hi = _INGEST_SPANS.get(stage, (0.0, 1.0))
        fraction = lo + (hi - lo) * (done / total if total else 0.0)
        report(fraction, stage, f"{stage}: {done}" + (f"/{total}" if total else "") + " records")

    out = ingest(settings, params["source"], params["name"], IngestParams(**params["ingest"]), progress=progress)
    stages = {k: {"cached": bool(v.get("cached"))} for k, v in out.get("stages", {}).items()}
    pool = {k: v for k, v in out["pool"].items() if k != "path"}  # job results never show server paths
    return {"pool": pool, "stages": stages, "warnings": out.get("warnings", [])}


def run_selection_job(settings: Settings, params: dict, report: Reporter) -> dict:
    from curate.executors import ExecutorSpec, use_executor
    from curate.select import run_selection

    report(0.0, "select", f"selector {params['selector']}")
    with use_executor(ExecutorSpec(**params.get("executor") or {})):
        doc = run_selection(
            settings,
            pool=params["pool"],
            selector=params["selector"],
            budget=params["budget"],
            params=params.get("params") or {},
            seed=params.get("seed", 0),
            target=params.get("target"),
            lineage={"job": report.job_id},
            progress=lambda fraction, message: report(0.95 * fraction, "select", message),
        )
    report.check()
    return {
        "manifest_id": doc["id"],
        "selected": doc["budget"]["selected"],
        "pool": doc["pool"]["id"],
        "selector": doc["selector"]["name"],
        "metrics": doc["metrics"],
        "warnings": doc.get("warnings", []),
        "executor": params.get("executor") or {"kind": "local"},
    }


def run_pipeline_job(settings: Settings, params: dict, report: Reporter) -> dict:
    """A pipeline body (paths already checked against the allowed roots) on its executor."""
    from curate.steps.run import run_spec
    from curate.steps.spec import PipelineSpec, labelled_steps

    spec = PipelineSpec(**params["spec"])
    names = [step.name for _, step in labelled_steps(spec)]

    def progress(stage: str, done: int, total: int) -> None:
        step, _, what = stage.partition(":")
        i = names.index(step) if step in names else 0
        fraction = (i + (done / total if total else 0.0)) / len(names)
        report(
            0.99 * fraction, stage, f"step {i + 1}/{len(names)} {step}: {what} {done}" + (f"/{total}" if total else "")
        )

    report(0.0, "plan", f"{len(names)} steps")
    out = run_spec(settings, spec, name=params.get("name") or "pipeline", progress=progress)
    report.check()
    out["steps"] = [{k: v for k, v in row.items() if k != "path"} for row in out["steps"]]  # no server paths
    out.pop("ingest", None)
    return out


def run_eval_job(settings: Settings, params: dict, report: Reporter) -> dict:
    """A manifest's downstream eval (the target already located and vetted by the route)."""
    from curate.eval import EvalParams, evaluate
    from curate.manifest import locate

    report(0.0, "eval", "loading the manifest")
    result = evaluate(
        settings,
        locate(settings, params["manifest"]),
        target=params.get("target"),
        params=EvalParams(**params["eval"]),
        progress=lambda f, m: report(0.99 * f, "eval", m),
    )
    report.check()
    target = {k: v for k, v in result["target"].items() if k not in ("source", "copy")}  # no server paths
    return {**result, "target": target}


JOB_KINDS: dict[str, Callable[[Settings, dict, Reporter], dict]] = {
    "ingest": run_ingest_job,
    "selection": run_selection_job,
    "pipeline": run_pipeline_job,
    "eval": run_eval_job,
}


# --- the loop -----------------------------------------------------------------------------------


def execute(settings: Settings, job, worker: str, stop: threading.Event | None = None) -> str:
    """Run one claimed job to a terminal state (or back to the queue); returns its new status."""
    report = Reporter(settings, job.id, worker)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(settings.job_heartbeat_seconds):
            try:
                report.beat()
            except Exception:  # noqa: BLE001 — a missed beat is retried; recovery tolerates a few
                log.warning("heartbeat failed", extra={"job_id": job.id})
            if stop is not None and stop.is_set():
                report.interrupted.set()

    beater = threading.Thread(target=heartbeat, name=f"heartbeat-{job.id[:8]}", daemon=True)
    beater.start()
    log.info("job started", extra={"job_id": job.id, "kind": job.kind, "attempt": job.attempts})
    status = "failed"
    try:
        fn = JOB_KINDS.get(job.kind)
        if fn is None:
            raise CurateError(f"unknown job kind '{job.kind}'")
        result = fn(settings, job.params, report)
        status = "succeeded"
        jobs.finish(settings, job.id, worker, status, result=result, message="done")
    except JobCancelled:
        status = "cancelled"
        jobs.finish(settings, job.id, worker, status, message="cancelled while running; nothing was kept half-written")
    except JobInterrupted:
        status = "queued"
        jobs.requeue(settings, job.id, worker, "re-queued: its worker was stopped")
    except CurateError as exc:
        jobs.finish(settings, job.id, worker, status, error=exc.to_dict(), message=str(exc))
    except Exception as exc:  # noqa: BLE001 — a job's bug must not take the worker down
        log.exception("job crashed", extra={"job_id": job.id})
        error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "details": {}}
        jobs.finish(settings, job.id, worker, status, error=error, message=error["message"])
    finally:
        done.set()
        beater.join()
    log.info("job finished", extra={"job_id": job.id, "status": status})
    return status


def run_worker(settings: Settings, *, stop: threading.Event | None = None, max_jobs: int | None = None) -> int:
    """Claim and run jobs until ``stop`` is set (SIGTERM/SIGINT) or ``max_jobs`` ran; returns jobs run."""
    stop = stop or threading.Event()
    name = jobs.worker_name()
    parent = os.getppid()
    ran = 0
    log.info("worker started", extra={"worker": name})
    jobs.sweep_home(settings)
    while not stop.is_set() and (max_jobs is None or ran < max_jobs):
        if os.environ.get("CURATE_WORKER_EXIT_WITH_PARENT") and os.getppid() != parent:
            break  # the serving process died: recovery on its restart re-queues whatever we held
        for job_id, status in jobs.recover(settings):
            log.warning("recovered job", extra={"job_id": job_id, "status": status})
        job = jobs.claim(settings, name)
        if job is None:
            stop.wait(settings.job_poll_seconds)
            continue
        execute(settings, job, name, stop)
        ran += 1
    log.info("worker stopped", extra={"worker": name})
    return ran


def install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# --- processes ----------------------------------------------------------------------------------


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = dict(os.environ)
    for name, info in type(settings).model_fields.items():
        key, value = info.alias or f"CURATE_{name.upper()}", getattr(settings, name)
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    env["CURATE_HOME"] = str(settings.root)
    return env


def _die_with_parent() -> None:  # pragma: no cover — runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn_workers(settings: Settings, n: int) -> list[subprocess.Popen]:
    """``n`` worker processes that die with this one (kill -9 included)."""
    env = settings_env(settings)
    env["CURATE_WORKER_EXIT_WITH_PARENT"] = "1"
    cmd = [sys.executable, "-m", "curate.cli", "worker", "--processes", "1"]
    return [subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent) for _ in range(n)]  # noqa: PLW1509


class Supervisor:
    """Keeps ``n`` worker processes alive until stopped (used by ``curate serve`` and ``curate worker -p N``)."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.settings, self.n = settings, n
        self.procs: list[subprocess.Popen] = []
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Supervisor:
        self.procs = spawn_workers(self.settings, self.n)
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self.stop.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None and not self.stop.is_set():
                    log.warning("worker exited; restarting", extra={"returncode": proc.returncode})
                    self.procs[i] = spawn_workers(self.settings, 1)[0]

    def wait(self) -> None:
        self.stop.wait()

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
