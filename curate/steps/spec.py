"""The pipeline spec: one pydantic model read by pipeline files (YAML), the REST API (JSON) and Python.

A pipeline is a list of ``steps``; each reads the output of the step named in ``from`` (default:
the step before it) and writes a manifest and, when a later step reads it, a pool:

- ``ingest``: one file (``path``) or several (``sources``, each with its own field mapping and a
  ``source`` label kept per record) into one pool;
- ``filter``: quality filters (``curate.filters``);
- ``dedup``: ``method: exact | minhash | semantic`` (``curate.dedup``);
- ``select``: any selector; its selected records become the pool of a step that reads it.

The older form, one ``ingest``, an optional semantic ``dedup`` and a flat list of ``selections``
all run on the same pool, is still accepted and runs as the equivalent steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from curate.dedup.exact import ExactDedupParams
from curate.dedup.minhash import MinHashParams
from curate.errors import InputError
from curate.executors import ExecutorSpec
from curate.filters import FilterSpec
from curate.ingest import IngestParams
from curate.selectors.base import get_selector, parse_budget, parse_params
from curate.stages.semdedup import SemDedupParams

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class StepBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME, description="Unique within the pipeline.")
    pool: str | None = Field(
        None,
        max_length=200,
        pattern=NAME,
        description="Name of the pool this step's output becomes; default '<pipeline>-<step>'.",
    )


class ReadsStep(StepBase):
    from_: str | None = Field(
        None, alias="from", description="The step whose output this one reads (default: previous)."
    )


class SourceSpec(BaseModel):
    """One input file of an ingest step."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Input file (relative to the pipeline file).")
    source: str | None = Field(None, pattern=NAME, description="Label kept per record; default the file's stem.")
    text_field: str = "text"
    id_field: str | None = None
    domain_field: str | None = Field(None, description="Default: 'domain' if present, else the source label.")

    @property
    def label(self) -> str:
        return self.source or Path(self.path).stem.split(".")[0]


class IngestStep(StepBase, IngestParams):
    step: Literal["ingest"] = "ingest"
    path: str | None = Field(None, description="One input file; or give 'sources'.")
    sources: list[SourceSpec] | None = Field(None, min_length=1, description="Several input files, one pool.")
    prefix_ids: bool = Field(True, description="With sources: ids become '<source>:<id>', unique across files.")
    embed: bool | None = Field(None, description="Embed this pool; default: when a step reading it needs it.")

    @model_validator(mode="after")
    def _one_input(self) -> IngestStep:
        if (self.path is None) == (self.sources is None):
            raise ValueError("an ingest step takes either 'path' or 'sources'")
        if self.sources is not None:
            labels = [s.label for s in self.sources]
            if len(set(labels)) != len(labels):
                raise ValueError(f"source labels must be unique, got {labels}")
        return self

    def ingest_params(self) -> IngestParams:
        return IngestParams(**self.model_dump(include=set(IngestParams.model_fields), exclude={"embed"}))


class FilterStep(ReadsStep, FilterSpec):
    step: Literal["filter"] = "filter"

    def filter_spec(self) -> FilterSpec:
        return FilterSpec(**self.model_dump(include=set(FilterSpec.model_fields)))


class ExactDedupStep(ReadsStep, ExactDedupParams):
    step: Literal["dedup"] = "dedup"
    method: Literal["exact"] = "exact"

    def params(self) -> ExactDedupParams:
        return ExactDedupParams(**self.model_dump(include=set(ExactDedupParams.model_fields)))


class MinHashDedupStep(ReadsStep, MinHashParams):
    step: Literal["dedup"] = "dedup"
    method: Literal["minhash"] = "minhash"

    def params(self) -> MinHashParams:
        return MinHashParams(**self.model_dump(include=set(MinHashParams.model_fields)))


class SemanticDedupStep(ReadsStep, SemDedupParams):
    step: Literal["dedup"] = "dedup"
    method: Literal["semantic"] = "semantic"

    def params(self) -> SemDedupParams:
        return SemDedupParams(**self.model_dump(include=set(SemDedupParams.model_fields)))


class SelectStep(ReadsStep):
    step: Literal["select"] = "select"
    selector: str
    budget: int | float | str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    target: str | None = Field(None, description="A file of texts (relative to the pipeline file) or a pool name.")


def _tag(value: Any) -> str | None:
    step = value.get("step") if isinstance(value, dict) else getattr(value, "step", None)
    if step == "dedup":
        method = value.get("method", "minhash") if isinstance(value, dict) else value.method
        return f"dedup:{method}"
    return step


Step = Annotated[
    Annotated[IngestStep, Tag("ingest")]
    | Annotated[FilterStep, Tag("filter")]
    | Annotated[ExactDedupStep, Tag("dedup:exact")]
    | Annotated[MinHashDedupStep, Tag("dedup:minhash")]
    | Annotated[SemanticDedupStep, Tag("dedup:semantic")]
    | Annotated[SelectStep, Tag("select")],
    Discriminator(
        _tag,
        custom_error_type="step_kind",
        custom_error_message="each step needs 'step': ingest, filter, dedup (method exact, minhash or "
        "semantic) or select",
    ),
]
TAGS = ("ingest", "filter", "dedup:exact", "dedup:minhash", "dedup:semantic", "select")


# --- the older form -------------------------------------------------------------------------------


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
    """A pipeline file (or the body of ``POST /v1/pipelines``): ``steps``, or the older
    ``ingest`` + ``dedup`` + ``selections``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, pattern=NAME, max_length=100)
    executor: Literal["local", "ray"] | ExecutorSpec | None = Field(
        None, description="Where every step's per-record work runs (default: the ingest step's, else local)."
    )
    steps: list[Step] | None = Field(None, min_length=1)
    ingest: IngestSpec | None = None
    dedup: DedupSpec | None = None
    selections: list[SelectionSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_form(self) -> PipelineSpec:
        if self.steps is not None and (self.ingest is not None or self.dedup is not None or self.selections):
            raise ValueError("give either 'steps' or the older 'ingest' / 'dedup' / 'selections', not both")
        if self.steps is None and self.ingest is None:
            raise ValueError("a pipeline needs 'steps' (or an 'ingest' section)")
        return self


def error_location(err: dict) -> str:
    """``steps.2.threshold`` from pydantic's loc (the union tag it inserts is dropped)."""
    return ".".join(str(p) for p in err["loc"] if p not in TAGS and not str(p).startswith("function-"))


def parse_spec(raw: Any, *, file: str | None = None) -> PipelineSpec:
    """Validate a mapping as a pipeline; errors name the file and the field (``steps.N.field``)."""
    if not isinstance(raw, dict):
        raise InputError("a pipeline must be a mapping with 'steps' (or 'ingest' and 'selections')", file=file)
    try:
        spec = PipelineSpec(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(err["msg"], file=file, field=error_location(err) or None) from None
    check_selectors(spec, file)
    return spec


def check_selectors(spec: PipelineSpec, file: str | None = None) -> None:
    """Every select step names a selector, with valid parameters and budget."""
    for label, step in labelled_steps(spec):
        if isinstance(step, SelectStep):
            try:
                parse_params(get_selector(step.selector), step.params)
                parse_budget(step.budget)
            except InputError as exc:
                raise InputError(exc.message, file=file, field=f"{label}.{exc.field or 'selector'}") from None


def labelled_steps(spec: PipelineSpec) -> list[tuple[str, Step]]:
    """(label for error messages, step): ``steps.N`` — or, for the older form, ``ingest``, ``dedup``
    and ``selections.N`` — with every ``from`` filled in."""
    if spec.steps is not None:
        out = []
        for i, step in enumerate(spec.steps):
            if i > 0 and isinstance(step, ReadsStep) and step.from_ is None:
                step = step.model_copy(update={"from_": spec.steps[i - 1].name})
            out.append((f"steps.{i}", step))
        return out
    ing = spec.ingest
    fields = ing.model_dump(exclude={"path", "pool"})
    # user strings of the older form (pool and selection names) were never restricted: set, not validated
    out = [("ingest", IngestStep(name="ingest", path=ing.path, **fields).model_copy(update={"pool": ing.pool}))]
    source = "ingest"
    if spec.dedup is not None:
        params = spec.dedup.model_dump(exclude={"pool"})
        dedup_pool = spec.dedup.pool or f"{ing.pool}-dedup"
        step = SemanticDedupStep(name="dedup", from_="ingest", **params).model_copy(update={"pool": dedup_pool})
        out.append(("dedup", step))
        source = "dedup"
    for i, sel in enumerate(spec.selections):
        step = SelectStep(
            name=f"selections.{i}",
            from_=source,
            selector=sel.selector,
            budget=sel.budget,
            params=sel.params,
            seed=sel.seed,
            target=sel.target,
        )
        out.append((f"selections.{i}", step.model_copy(update={"name": sel.name or sel.selector})))
    return out


def resolve_paths(spec: PipelineSpec, resolve) -> PipelineSpec:
    """The same spec with every input file path passed through ``resolve`` (targets are resolved
    later, since a target may also be a pool name)."""
    if spec.ingest is not None:
        return spec.model_copy(
            update={"ingest": spec.ingest.model_copy(update={"path": str(resolve(spec.ingest.path))})}
        )
    steps = []
    for step in spec.steps:
        if isinstance(step, IngestStep):
            if step.path is not None:
                step = step.model_copy(update={"path": str(resolve(step.path))})
            else:
                sources = [s.model_copy(update={"path": str(resolve(s.path))}) for s in step.sources]
                step = step.model_copy(update={"sources": sources})
        steps.append(step)
    return spec.model_copy(update={"steps": steps})
