"""Stream a ``multipart/form-data`` upload straight to disk, counting bytes as they arrive.

Starlette's ``request.form()`` spools files to the system temp dir with no size limit; a pool upload
can be gigabytes, so we parse the stream ourselves and stop at ``max_bytes`` with a 413.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from curate.errors import CurateError, InputError
from curate.streams import LimitExceeded

MAX_FIELD_BYTES = 64 << 10
MAX_FIELDS = 32
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PayloadTooLarge(LimitExceeded):
    """The compressed upload (or a form field) is over its limit; decompressed limits raise LimitExceeded."""


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None  # where the file part was written
    filename: str | None = None  # as the client named it (sanitised)
    size: int = 0


def safe_filename(name: str) -> str:
    """The base name with anything but ``[A-Za-z0-9._-]`` replaced: never a path, never hidden."""
    base = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).lstrip(".")
    return base[:200] or "upload"


class _Parser:
    def __init__(self, dest_dir: Path, max_bytes: int) -> None:
        self.dest_dir, self.max_bytes = dest_dir, max_bytes
        self.upload = Upload()
        self.headers: dict[str, bytes] = {}
        self._hname = self._hvalue = b""
        self._name: str | None = None
        self._buf: bytearray | None = None
        self._file = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: setattr(self, "_hname", self._hname + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_hvalue", self._hvalue + d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self._name, self._buf = {}, None, None

    def header_end(self) -> None:
        self.headers[self._hname.decode("latin-1").lower()] = self._hvalue
        self._hname = self._hvalue = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if not name:
            raise InputError("multipart part without a name", field="multipart")
        self._name = name
        if b"filename" in options:
            if self.upload.path is not None:
                raise InputError("upload exactly one file (the 'file' part)", field=name)
            self.upload.filename = safe_filename(options[b"filename"].decode("utf-8", "replace"))
            self.upload.path = self.dest_dir / self.upload.filename
            self._file = open(self.upload.path, "wb")  # noqa: SIM115 — closed in part_end / close
        else:
            if len(self.upload.fields) >= MAX_FIELDS:
                raise InputError(f"more than {MAX_FIELDS} form fields", field=name)
            self._buf = bytearray()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None:
            self.upload.size += len(chunk)
            if self.upload.size > self.max_bytes:
                raise PayloadTooLarge(f"upload exceeds the limit of {self.max_bytes} bytes", field=self._name)
            self._file.write(chunk)
        elif self._buf is not None:
            self._buf += chunk
            if len(self._buf) > MAX_FIELD_BYTES:
                raise PayloadTooLarge(f"form field longer than {MAX_FIELD_BYTES} bytes", field=self._name)

    def part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._buf is not None and self._name is not None:
            try:
                self.upload.fields[self._name] = self._buf.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError("form field is not UTF-8", field=self._name) from None
            self._buf = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_upload(request: Request, dest_dir: Path, max_bytes: int) -> Upload:
    """Parse the request body into ``dest_dir``; the caller removes ``dest_dir`` on any error."""
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise InputError("expected multipart/form-data with a boundary", field="content-type")
    state = _Parser(dest_dir, max_bytes)
    parser = MultipartParser(boundary, state.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except CurateError:
        raise
    except Exception as exc:  # noqa: BLE001 — the multipart library's own errors are the caller's bad body
        raise InputError(f"malformed multipart body: {exc}", field="multipart") from None
    finally:
        state.close()
    return state.upload
