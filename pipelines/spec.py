"""The pipeline file schema: the same pydantic models as the CLI and the REST API."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.errors import InputError
from curate.ingest import IngestParams
from curate.selectors.base import get_selector, parse_budget, parse_params
from curate.stages.semdedup import SemDedupParams


class IngestSpec(IngestParams):
    path: str = Field(description="Input file, relative to the pipeline file.")
    pool: str = Field(description="Pool name.")


class DedupSpec(SemDedupParams):
    """Semantic dedup after ingest; the kept records become a pool that every selection runs on."""

    model_config = ConfigDict(extra="forbid")

    pool: str | None = Field(None, description="Name of the deduplicated pool; default '<ingest.pool>-dedup'.")


class SelectionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    selector: str
    budget: int | float | str
    params: dict = Field(default_factory=dict)
    seed: int = 0
    target: str | None = Field(None, description="A file of texts (relative to the pipeline file) or a pool name.")


class PipelineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    ingest: IngestSpec
    dedup: DedupSpec | None = None
    selections: list[SelectionSpec] = Field(default_factory=list)


def load_spec(path: Path) -> PipelineSpec:
    """Parse and validate a pipeline file, resolving relative paths against its folder."""
    if not path.is_file():
        raise InputError("no such pipeline file", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path), line=mark.line + 1 if mark else None
        ) from None
    if not isinstance(raw, dict):
        raise InputError("a pipeline file must be a mapping with 'ingest' and 'selections'", file=str(path))
    try:
        spec = PipelineSpec(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(err["msg"], file=str(path), field=where) from None
    base = path.parent
    spec.ingest.path = str((base / spec.ingest.path).resolve())
    for i, sel in enumerate(spec.selections):
        try:
            parse_params(get_selector(sel.selector), sel.params)
            parse_budget(sel.budget)
        except InputError as exc:
            raise InputError(exc.message, file=str(path), field=f"selections.{i}.{exc.field or 'selector'}") from None
    return spec
