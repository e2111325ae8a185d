"""HTTP client for training jobs and pipelines: pools, jobs, selections, manifests.

Every method maps to one REST route; errors come back as :class:`APIError` carrying the server's
``{"error": {code, message, details}}``. Downloads stream to disk and check the manifest's sha256.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx

from curate.io import atomic_path


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def error_from_response(response: httpx.Response, cls: type[APIError] = APIError) -> APIError:
    """The server's ``{"error": {code, message, details}}`` envelope as an exception."""
    try:
        err = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        err = {"code": "http_error", "message": response.text[:500]}
    return cls(response.status_code, err.get("code", "http_error"), err.get("message", ""), err.get("details"))


class JobFailed(APIError):
    """A job ended ``failed`` or ``cancelled``; ``details`` is the job."""


class CurateClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> CurateClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json()

    # --- discovery ----------------------------------------------------------------------------

    def health(self) -> dict:
        return self.request("GET", "/healthz")

    def selectors(self) -> list[dict]:
        return self.request("GET", "/v1/selectors")["selectors"]

    # --- pools --------------------------------------------------------------------------------

    def upload_pool(self, name: str, file: str | Path, **options) -> dict:
        """Stream a local JSONL/Parquet/CSV file to the server as a new pool."""
        file = Path(file)
        data = {"name": name, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}}
        with open(file, "rb") as f:
            return self.request("POST", "/v1/pools", data=data, files={"file": (file.name, f)})

    def pool_from_path(self, name: str, path: str, **options) -> dict:
        """A pool from a file already on the server, under one of its CURATE_POOL_ROOTS."""
        return self.request("POST", "/v1/pools", json={"name": name, "path": path, **options})

    def pools(self) -> list[dict]:
        return self.request("GET", "/v1/pools")["data"]

    def pool(self, name_or_id: str) -> dict:
        return self.request("GET", f"/v1/pools/{name_or_id}")

    def ingest(self, pool: str, *, embed: bool = True, model: str | None = None, clusters: int | None = None) -> dict:
        body = {"embed": embed, "clusters": clusters, **({"model": model} if model else {})}
        return self.request("POST", f"/v1/pools/{pool}/ingest", json=body)

    # --- selections and jobs ------------------------------------------------------------------

    def select(
        self,
        pool: str,
        selector: str,
        budget: int | float | str,
        *,
        target: str | None = None,
        params: dict | None = None,
        seed: int = 0,
    ) -> dict:
        body = {
            "pool": pool,
            "selector": selector,
            "budget": budget,
            "target": target,
            "params": params or {},
            "seed": seed,
        }
        return self.request("POST", "/v1/selections", json=body)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None) -> list[dict]:
        return self.request("GET", "/v1/jobs", params={"status": status} if status else None)["data"]

    def cancel(self, job_id: str) -> dict:
        return self.request("DELETE", f"/v1/jobs/{job_id}")

    def wait(self, job_id: str, timeout: float = 3600.0, poll: float = 0.5) -> dict:
        """Poll until the job ends; returns it when succeeded, raises :class:`JobFailed` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled"):
                err = job.get("error") or {}
                raise JobFailed(200, err.get("code", job["status"]), job.get("message") or job["status"], job)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(poll)

    # --- manifests ----------------------------------------------------------------------------

    def manifests(self, pool: str | None = None, selector: str | None = None) -> list[dict]:
        params = {k: v for k, v in {"pool": pool, "selector": selector}.items() if v}
        return self.request("GET", "/v1/manifests", params=params)["data"]

    def manifest(self, manifest_id: str) -> dict:
        return self.request("GET", f"/v1/manifests/{manifest_id}")

    def download(
        self,
        manifest_id: str,
        dest: str | Path,
        *,
        format: str = "parquet",
        with_text: bool = False,  # noqa: A002
    ) -> Path:
        """Stream the subset to ``dest`` (atomically); the Parquet subset is checked against its sha256."""
        dest = Path(dest)
        params = {"format": format, "with_text": str(with_text).lower()}
        digest = hashlib.sha256()
        with (
            self.http.stream("GET", f"/v1/manifests/{manifest_id}/subset", params=params) as response,
            atomic_path(dest) as tmp,
        ):
            if response.status_code >= 400:
                response.read()
                self.request("GET", f"/v1/manifests/{manifest_id}/subset", params=params)  # raises APIError
            etag = response.headers.get("etag", "").strip('"')
            with open(tmp, "wb") as out:
                for block in response.iter_bytes(1 << 20):
                    digest.update(block)
                    out.write(block)
            if format == "parquet" and not with_text and digest.hexdigest() != etag:
                raise APIError(502, "checksum_mismatch", f"downloaded sha256 {digest.hexdigest()} != ETag {etag}")
        return dest
