"""Progress of long stages, with rate and ETA, on stderr only (``--json`` output on stdout stays parseable).

On a terminal one line per stage is redrawn in place; otherwise (CI logs, ``| tee``, the demo under a
pipe) a plain line is printed every ``interval`` seconds while a stage runs and one when it ends (a
stage that ends within ``interval`` gets just that line; a failed one, none). One
:class:`ProgressReporter` serves ``ingest`` (``(stage, done, total)`` in records, the shape of every
feature stage) and selections (``(fraction, message)``, via :meth:`ProgressReporter.fraction`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

StageProgress = Callable[[str, int, int], None]  # (stage, done, total); total 0 = unknown
FractionProgress = Callable[[float, str], None]  # (fraction 0..1, message), as selectors report


def _duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class _Stage:
    name: str
    unit: str
    started: float
    done0: float
    done: float = 0.0
    total: float = 0.0
    note: str = ""
    printed: float = 0.0  # when its last line was written (its start: a stage that ends fast gets one line)
    shown: bool = False  # a redrawn line of it is on the terminal

    def line(self, now: float, final: bool = False) -> str:
        elapsed = now - self.started
        rate = (self.done - self.done0) / elapsed if elapsed > 0 else 0.0
        if self.unit == "%":
            parts = [] if final else [f"{self.done:.0f}%"]  # ended by the next stage: done, whatever was said
        else:
            parts = [f"{self.done:,.0f}" + (f"/{self.total:,.0f}" if self.total else "") + f" {self.unit}"]
            if self.total:
                parts.append(f"{min(self.done / self.total, 1.0):.0%}")
            if rate > 0:
                parts.append(f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2g} {self.unit}/s")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        elif elapsed >= 1:  # nothing counted yet (a model loading, a batch encoding): say it is alive
            parts.append(f"{_duration(elapsed)} so far")
        elif self.done == self.done0:
            parts.append("started")
        text = f"[{self.name}] " + " · ".join(parts)
        return f"{text} · {self.note}" if self.note else text


class ProgressReporter:
    """Callable as ``(stage, done, total)``; ``fraction(stage)`` adapts it to ``(fraction, message)``.

    A stage that reports rarely (one encode call can take minutes) still gets a line every
    ``interval`` seconds from a daemon thread, with the time it has run so far.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float = 5.0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = min(interval, 0.5) if self.tty else interval
        self.clock = clock
        self.current: _Stage | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.update(stage, float(done), float(total or 0), "records")

    def fraction(self, stage: str) -> FractionProgress:
        """For ``run_selection(progress=...)``: the selector's fraction and message under ``stage``."""

        def report(fraction: float, message: str) -> None:
            self.update(stage, 100.0 * max(0.0, min(float(fraction), 1.0)), 100.0, "%", message)

        return report

    def update(self, stage: str, done: float, total: float, unit: str, note: str = "") -> None:
        with self._lock:
            now = self.clock()
            cur = self.current
            if cur is None or cur.name != stage:
                self._finish()
                cur = self.current = _Stage(stage, unit, now, done, printed=now)  # first line after `interval`
                self._start_ticker()
            cur.done, cur.total, cur.note = done, total, note or cur.note
            if total and done >= total:
                self._finish()
            elif now - cur.printed >= self.interval:
                self._write(cur, now)

    def finish(self) -> None:
        """End the current stage with its final line (rate over the whole stage, time taken)."""
        with self._lock:
            self._finish()

    def close(self, failed: bool = False) -> None:
        """End reporting; after an error, print no final line (stderr's last line is the error's)."""
        with self._lock:
            if failed:
                cur, self.current = self.current, None
                if cur is not None and cur.shown:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
            else:
                self._finish()
        self._stop.set()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.close(failed=kind is not None)

    def _finish(self) -> None:
        cur, self.current = self.current, None
        if cur is not None:
            self._write(cur, self.clock(), final=True)

    def _start_ticker(self) -> None:
        if self._ticker is None and self.interval > 0:
            self._ticker = threading.Thread(target=self._tick, name="curate-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval / 2):
            with self._lock:
                cur, now = self.current, self.clock()
                if cur is not None and now - cur.printed >= self.interval:
                    self._write(cur, now)

    def _write(self, stage: _Stage, now: float, final: bool = False) -> None:
        stage.printed = now
        text = stage.line(now, final)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
            stage.shown = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def selection_progress(progress: StageProgress | None, stage: str) -> FractionProgress | None:
    """A selection's ``(fraction, message)`` progress from whatever ingest progress a caller passed."""
    if progress is None:
        return None
    if isinstance(progress, ProgressReporter):
        report = progress.fraction(stage)
    else:

        def report(fraction: float, message: str) -> None:
            progress(stage, round(100 * fraction), 100)

    report(0.0, "")  # the selection starts now; many selectors report nothing until they are done
    return report
