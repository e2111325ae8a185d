"""Pipeline files: YAML read into curate's one pipeline model (``curate.steps.spec``), with relative
paths resolved against the file's folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from curate.errors import InputError
from curate.steps.plan import beside
from curate.steps.spec import (  # noqa: F401 — re-exported: the models a pipeline file is read into
    DedupSpec,
    IngestSpec,
    PipelineSpec,
    SelectionSpec,
    parse_spec,
    resolve_paths,
)


def load_spec(path: Path) -> PipelineSpec:
    """Parse and validate a pipeline file, resolving relative paths against its folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such pipeline file", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path), line=mark.line + 1 if mark else None
        ) from None
    return resolve_paths(parse_spec(raw, file=str(path)), beside(path))
