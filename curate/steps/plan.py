"""Check a whole pipeline before anything runs: every ``from`` names an earlier step, every step's
needs (embeddings, clusters, a target) can be met by the pool it reads, and each pool's features
are decided once from what the steps reading it need (issue 16 item 7: a pipeline must not fail
half-way on something knowable up front)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from curate.config import Settings
from curate.errors import InputError
from curate.selectors.base import SelectorParams, get_selector, parse_budget, parse_params
from curate.steps.spec import (
    IngestStep,
    PipelineSpec,
    ReadsStep,
    SelectStep,
    SemanticDedupStep,
    Step,
    labelled_steps,
)
from curate.target import locate_target


def selector_needs(name: str, params: SelectorParams) -> set[str]:
    """Pool features a selector reads: 'embed', 'cluster'. n-grams are always there; a selector
    may declare more with a ``needs(params)`` classmethod."""
    cls = get_selector(name)
    hook = getattr(cls, "needs", None)
    if callable(hook):
        return set(hook(params))
    by = getattr(params, "by", None)
    needs = {"cluster"} if by == "cluster" else set()
    if name == "tarot" or name == "smart":
        needs.add("embed")
    elif name == "coverage":
        score = getattr(params, "score", None)
        needs |= {"embed", "cluster"} if score == "auto" else set()  # auto picks by the pool's domains
        needs |= {"cluster"} if score == "prototypicality" else {"embed"} if score == "el2n_probe" else set()
    return needs


def step_needs(step: Step) -> set[str]:
    if isinstance(step, SemanticDedupStep):
        return {"embed", "cluster"}
    if isinstance(step, SelectStep):
        return selector_needs(step.selector, parse_params(get_selector(step.selector), step.params))
    return set()


@dataclass
class PlannedStep:
    label: str  # steps.N (or ingest / dedup / selections.N in the older form)
    step: Step
    parent: int | None  # index of the step it reads
    readers: list[int] = field(default_factory=list)
    embed: bool = False  # features of the pool this step's output becomes (when read)
    clusters: int | None = None  # k (None = sqrt(n)); 0 = none
    target: str | None = None  # resolved target (pool id or absolute path)

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def makes_pool(self) -> bool:
        return isinstance(self.step, IngestStep) or bool(self.readers)


def plan(
    settings: Settings, spec: PipelineSpec, *, file: str | None = None, check_target=None
) -> tuple[list[PlannedStep], IngestStep]:
    """Resolved steps in order, with parents, readers and each output pool's features; raises
    ``InputError`` naming ``steps.N.<field>`` for the first problem found."""
    steps = labelled_steps(spec)
    index: dict[str, int] = {}
    planned: list[PlannedStep] = []
    ingest: IngestStep | None = None
    for i, (label, step) in enumerate(steps):
        if step.name in index:
            raise InputError(f"step name '{step.name}' is used twice", file=file, field=f"{label}.name")
        parent = None
        if isinstance(step, IngestStep):
            if ingest is not None:
                raise InputError("one ingest step per pipeline (give it several 'sources')", file=file, field=label)
            ingest = step
            _check_inputs(step, label, file)
        elif isinstance(step, ReadsStep):
            if i == 0:
                raise InputError("the first step must be an ingest step", file=file, field=label)
            if step.from_ not in index:
                earlier = ", ".join(index) or "(none)"
                raise InputError(
                    f"'from: {step.from_}' names no earlier step; earlier steps: {earlier}",
                    file=file,
                    field=f"{label}.from",
                )
            parent = index[step.from_]
            planned[parent].readers.append(i)
        index[step.name] = i
        planned.append(PlannedStep(label, step, parent))
    if ingest is None:
        raise InputError("a pipeline needs an ingest step", file=file, field="steps")
    base = ingest.ingest_params()
    for p in planned:
        needs = set().union(*(step_needs(planned[r].step) for r in p.readers)) if p.readers else set()
        wants = ingest.embed if p.step is ingest else None
        p.embed = bool(wants) or bool(needs)
        p.clusters = base.clusters if p.embed else 0
        if "cluster" in needs and base.clusters == 0:
            reader = next(planned[r] for r in p.readers if "cluster" in step_needs(planned[r].step))
            raise InputError(
                f"'{reader.name}' needs clusters, but the ingest step sets clusters: 0; give clusters > 0 "
                "(or leave it out for sqrt(n))",
                file=file,
                field=reader.label,
            )
        if needs and base.embedding_field and p.step is not ingest:
            reader = planned[p.readers[0]]
            raise InputError(
                "a derived pool cannot carry vectors brought with --embedding-field; use a model",
                file=file,
                field=reader.label,
            )
    for p in planned:
        if isinstance(p.step, SelectStep):
            p.target = _check_selection(settings, p, file, check_target)
    return planned, ingest


def _check_inputs(step: IngestStep, label: str, file: str | None) -> None:
    """Every input file exists (a missing one would otherwise fail after earlier sources were read)."""
    where = (
        [("path", step.path)]
        if step.path is not None
        else [(f"sources.{k}.path", s.path) for k, s in enumerate(step.sources)]
    )
    for name, path in where:
        if not Path(path).is_file():
            raise InputError(f"no such file: {path}", file=file, field=f"{label}.{name}")


def _check_selection(settings: Settings, p: PlannedStep, file: str | None, check_target) -> str | None:
    step = p.step
    cls = get_selector(step.selector)
    requested = parse_budget(step.budget)
    try:
        target = locate_target(settings, step.target, check_path=check_target)
    except InputError as exc:
        raise InputError(exc.message, file=file, field=f"{p.label}.target") from None
    if target is not None and not cls.uses_target:
        raise InputError(f"selector '{cls.name}' does not use a target", file=file, field=f"{p.label}.target")
    if target is None and cls.requires_target:
        raise InputError(
            f"selector '{cls.name}' needs a target (a file of texts or a pool name)",
            file=file,
            field=f"{p.label}.target",
        )
    if requested == "auto" and not cls.supports_auto_budget:
        raise InputError(f"selector '{cls.name}' cannot choose its own budget", file=file, field=f"{p.label}.budget")
    return target


def beside(path: str | Path):
    """Resolve relative paths against a pipeline file's folder."""
    base = Path(path).resolve().parent
    return lambda raw: (base / raw).expanduser().resolve()


def with_resolved_targets(spec: PipelineSpec, planned: list[PlannedStep]) -> PipelineSpec:
    """The spec with each selection's target as the plan resolved it (a pool id or an absolute path),
    so a job that runs it later, elsewhere, needs no path rules of its own."""
    targets = {p.label: p.target for p in planned if isinstance(p.step, SelectStep)}
    if spec.steps is not None:
        steps = [
            s.model_copy(update={"target": targets[f"steps.{i}"]}) if f"steps.{i}" in targets else s
            for i, s in enumerate(spec.steps)
        ]
        return spec.model_copy(update={"steps": steps})
    selections = [s.model_copy(update={"target": targets[f"selections.{i}"]}) for i, s in enumerate(spec.selections)]
    return spec.model_copy(update={"selections": selections})
