"""Request ids, JSON logs, Prometheus metrics and request-size limits, as one ASGI middleware.

One pure-ASGI layer (not ``BaseHTTPMiddleware``) so streamed downloads are not buffered and the
request id is known to every log line written while the request runs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import time
import uuid
from bisect import bisect_left
from collections import defaultdict
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
log = logging.getLogger("curate.api")

# color_message: uvicorn's copy of a message with ANSI colour codes, for its own console formatter only.
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)  # logs only; never in a response
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for our loggers and uvicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs each request with its id


# --- metrics ------------------------------------------------------------------------------------

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Request counters and latency histograms of this process, in the Prometheus text format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.hist: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(method, route, str(status))] += 1
            h = self.hist.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))  # buckets…, +Inf, sum
            h[bisect_left(BUCKETS, seconds)] += 1
            h[-1] += seconds

    def render(self) -> list[str]:
        lines = [
            "# HELP curate_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE curate_http_requests_total counter",
        ]
        with self.lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'curate_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
            lines += [
                "# HELP curate_http_request_duration_seconds Request latency by method and route template.",
                "# TYPE curate_http_request_duration_seconds histogram",
            ]
            for (method, route), h in sorted(self.hist.items()):
                labels = f'method="{method}",route="{route}"'
                cumulative = 0.0
                for bound, n in zip((*BUCKETS, "+Inf"), h[:-1], strict=True):
                    cumulative += n
                    lines.append(
                        f'curate_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative:g}'
                    )
                lines.append(f"curate_http_request_duration_seconds_sum{{{labels}}} {h[-1]:.6f}")
                lines.append(f"curate_http_request_duration_seconds_count{{{labels}}} {cumulative:g}")
        return lines


# --- middleware ---------------------------------------------------------------------------------


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()


def _route_template(scope) -> str:
    """The matched route with its router prefix (``/v1/jobs/{job_id}``): bounded label cardinality."""
    path = getattr(scope.get("route"), "path", None)
    if not path:
        return "unmatched"
    static = path.split("{", 1)[0]
    at = scope["path"].find(static)
    return (scope["path"][:at] if at > 0 else "") + path


class ObservabilityMiddleware:
    """Request id in and out, a JSON log line and metrics per request, and body-size limits.

    Uploads (``multipart/form-data``) are bounded by ``max_upload_bytes`` and streamed by their route;
    every other body is read here up to ``max_request_bytes`` (413 past it) and replayed.
    """

    def __init__(self, app, settings, metrics: Metrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        rid = given if _VALID_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapped(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            receive = await self._limit_body(scope, headers, receive, send_wrapped)
            if receive is not None:
                await self.app(scope, receive, send_wrapped)
        finally:
            seconds = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.observe(scope["method"], route, status["code"], seconds)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status["code"],
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
            request_id_var.reset(token)

    async def _limit_body(self, scope, headers, receive, send):
        """A ``receive`` to hand on, or None when a 413 was already sent."""
        upload = headers.get("content-type", "").startswith("multipart/form-data")
        limit = self.settings.max_upload_bytes + (1 << 20) if upload else self.settings.max_request_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._too_large(send, limit)
            return None
        if upload or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return receive
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._too_large(send, limit)
                return None
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _too_large(self, send, limit: int) -> None:
        body = _error_body("payload_too_large", f"request body exceeds the limit of {limit} bytes")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
