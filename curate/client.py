"""HTTP client for training jobs: open an online-mixing session, pull batches, report losses.

Retries are safe by construction: every ``next`` carries a fresh ``request_id`` that the server
remembers (a retried call returns the same step, never a new one), and feedback is idempotent
per step on the server (a repeated report is answered, not applied again). So a dropped
connection can be retried blindly without skipping a step or double-applying a loss.

    session = MixingSession.create("http://127.0.0.1:8000", pool="pile", params={"warmup_steps": 100})
    for batch in session.batches(256, steps=10_000):
        loss_by_group = train_step(batch.texts, batch.groups)      # your code
        session.feedback(loss_by_group)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

_RETRY_STATUS = {502, 503, 504}


class MixingError(Exception):
    """The server refused a call; ``status``/``code``/``details`` come from its error envelope."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


@dataclass
class Batch:
    step: int
    weights: dict[str, float]
    records: list[dict]
    micro_batches: list[dict] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    @property
    def groups(self) -> list[str]:
        return [r["group"] for r in self.records]

    @property
    def texts(self) -> list[str]:
        return [r.get("text", "") for r in self.records]


class MixingSession:
    """One session on a curate server; cheap to create, safe to share across threads."""

    def __init__(
        self,
        base_url: str,
        session_id: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.2,
        wait_for_turn: float = 60.0,
        batch_size: int = 32,
        client: httpx.Client | None = None,
    ) -> None:
        self.id = session_id
        self.batch_size = batch_size  # used by iter(session)
        self.retries = retries
        self.backoff = backoff
        self.wait_for_turn = wait_for_turn  # seconds to wait while other workers' earlier steps are pending
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self._last_step: int | None = None
        self.sleep: Callable[[float], None] = time.sleep

    @classmethod
    def create(
        cls,
        base_url: str,
        pool: str,
        *,
        group_by: str = "domain",
        params: dict | None = None,
        seed: int = 0,
        **kwargs,
    ) -> MixingSession:
        probe = cls(base_url, "", **kwargs)
        body = {"pool": pool, "group_by": group_by, "params": params or {}, "seed": seed}
        # Not retried on a lost response: a blind retry would open a second session.
        info = probe._call("POST", "/v1/mixing/sessions", body, retry=False)
        probe.id = info["id"]
        return probe

    # --- HTTP --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None, *, retry: bool = True) -> dict:
        attempt = 0
        while True:
            try:
                resp = self._http.request(method, path, json=body)
            except httpx.TransportError:
                if not retry or attempt >= self.retries:
                    raise
            else:
                if resp.status_code < 400:
                    return resp.json()
                if resp.status_code not in _RETRY_STATUS or not retry or attempt >= self.retries:
                    raise _error(resp)
            self.sleep(self.backoff * 2**attempt)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MixingSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the session -------------------------------------------------------------------------

    def next(self, batch_size: int, *, with_text: bool = True) -> Batch:
        """The next step's records (retried with the same request id, so never a skipped step)."""
        body = {"batch_size": batch_size, "request_id": uuid.uuid4().hex, "with_text": with_text}
        out = self._call("POST", f"/v1/mixing/sessions/{self.id}/next", body)
        self._last_step = out["step"]
        return Batch(out["step"], out["weights"], out["records"], out.get("micro_batches", []))

    def feedback(self, losses: dict[str, float], step: int | None = None) -> dict:
        """Report the mean loss per group of ``step`` (default: the last batch this object fetched).

        When other workers' earlier steps are still pending (409 with an earlier ``expected_step``),
        waits for them up to ``wait_for_turn`` seconds instead of failing.
        """
        step = self._last_step if step is None else step
        if step is None:
            raise ValueError("no batch fetched yet: pass step= explicitly")
        body = {"step": step, "losses": {g: float(v) for g, v in losses.items()}}
        deadline = time.monotonic() + self.wait_for_turn
        delay = 0.005
        while True:
            try:
                return self._call("POST", f"/v1/mixing/sessions/{self.id}/feedback", body)
            except MixingError as exc:
                expected = exc.details.get("expected_step")
                waiting = exc.status == 409 and expected is not None and expected < step
                if not waiting or time.monotonic() > deadline:
                    raise
            self.sleep(delay)
            delay = min(delay * 2, 0.5)

    def state(self, since: int | None = None, limit: int = 1000) -> dict:
        """Weights, counters, epoch positions and history (the latest ``limit`` steps, or after ``since``)."""
        query = f"limit={limit}" + (f"&since={since}" if since is not None else "")
        return self._call("GET", f"/v1/mixing/sessions/{self.id}?{query}")

    def freeze(self) -> dict:
        """Freeze the records served so far as a manifest (returns manifest.json)."""
        return self._call("POST", f"/v1/mixing/sessions/{self.id}/manifest")

    def batches(self, batch_size: int, steps: int | None = None, *, with_text: bool = True) -> Iterator[Batch]:
        """``steps`` batches (forever when None); call :meth:`feedback` between them."""
        n = 0
        while steps is None or n < steps:
            yield self.next(batch_size, with_text=with_text)
            n += 1

    def __iter__(self) -> Iterator[Batch]:
        return self.batches(self.batch_size)

    def torch_dataset(self, batch_size: int, steps: int | None = None, *, with_text: bool = True):
        """A ``torch.utils.data.IterableDataset`` yielding one :class:`Batch` per step.

        Use it with ``DataLoader(ds, batch_size=None, num_workers=0)``: the batch is already
        formed by the server, and loader worker processes would reorder steps.
        """
        return _torch_dataset(self, batch_size, steps, with_text)


def _error(resp: httpx.Response) -> MixingError:
    try:
        err = resp.json().get("error", {})
    except ValueError:
        err = {}
    code, message = err.get("code", "http_error"), err.get("message", resp.text)
    return MixingError(resp.status_code, code, message, err.get("details"))


def _torch_dataset(session: MixingSession, batch_size: int, steps: int | None, with_text: bool):
    try:
        from torch.utils.data import IterableDataset, get_worker_info
    except ImportError as exc:  # torch is optional for a client-only install
        raise ImportError("MixingSession.torch_dataset needs torch installed") from exc

    class MixingIterableDataset(IterableDataset):
        def __iter__(self) -> Iterator[Batch]:
            info = get_worker_info()
            if info is not None and info.num_workers > 1:
                raise RuntimeError("use num_workers=0 or 1: several loader workers would reorder session steps")
            return session.batches(batch_size, steps, with_text=with_text)

    return MixingIterableDataset()
