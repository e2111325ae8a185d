"""The selector contract: parameters as a pydantic model, one ``select`` method, a registry.

A new selector is one file that subclasses :class:`Selector` and decorates it with ``@register``;
the CLI, pipeline files and the REST schema all read its ``Params`` model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from curate.errors import InputError

if TYPE_CHECKING:
    from curate.pool import Pool
    from curate.target import Target


class SelectorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class Selection:
    """What a selector returns; the manifest writer turns it into subset.parquet."""

    indices: np.ndarray  # int64 row ids, in rank order (rank 0 first)
    weights: np.ndarray | None = None  # ≥ 0, any scale; normalised to mean 1 when written
    scores: np.ndarray | None = None  # per selected record, the selector's own score
    mixture: dict[str, float] | None = None
    metrics: dict = field(default_factory=dict)


@dataclass
class SelectionContext:
    pool: Pool
    budget: int  # resolved record count, already clipped to the pool size
    seed: int
    target: Target | None = None
    progress: Callable[[float, str], None] = lambda fraction, message: None
    budget_auto: bool = False  # budget "auto": the selector picks the size; ``budget`` is the pool size

    def rng(self, stream: int = 0) -> np.random.Generator:
        """Independent generator per ``stream``, so adding a random step never shifts the others."""
        return np.random.default_rng(np.random.SeedSequence(self.seed).spawn(stream + 1)[stream])


class Selector(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Params: ClassVar[type[SelectorParams]] = SelectorParams
    uses_target: ClassVar[bool] = False
    online: ClassVar[bool] = False  # driven step by step by a training run, not run as one batch
    requires_target: ClassVar[bool] = False
    supports_auto_budget: ClassVar[bool] = False  # may choose its own size (budget "auto")

    def __init__(self, params: SelectorParams) -> None:
        self.params = params

    @abstractmethod
    def select(self, ctx: SelectionContext) -> Selection:
        """Pick ``ctx.budget`` records of ``ctx.pool``."""


REGISTRY: dict[str, type[Selector]] = {}


def register(cls: type[Selector]) -> type[Selector]:
    REGISTRY[cls.name] = cls
    return cls


def get_selector(name: str, *, online_ok: bool = False) -> type[Selector]:
    """The selector class to run; an online selector is refused unless the caller drives it."""
    from curate import selectors  # noqa: F401  (imports every selector module, filling the registry)

    if name not in REGISTRY:
        raise InputError(f"unknown selector '{name}'; available: {', '.join(sorted(REGISTRY))}", field="selector")
    cls = REGISTRY[name]
    if cls.online and not online_ok:
        raise InputError(
            f"selector '{name}' runs online, driven by a training job: open a session with "
            "POST /v1/mixing/sessions (or curate.client.MixingSession) and freeze it as a manifest",
            field="selector",
        )
    return cls


def parse_params(cls: type[Selector], raw: dict | SelectorParams | None) -> SelectorParams:
    """Validate user parameters; errors list the valid names or say what is wrong with a value."""
    if isinstance(raw, cls.Params):
        return raw
    try:
        return cls.Params(**(raw or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "params"
        valid = ", ".join(cls.Params.model_fields) or "(none)"
        if err["type"] == "extra_forbidden":
            msg = f"unknown parameter '{name}' for selector '{cls.name}'; valid parameters: {valid}"
        else:
            msg = f"invalid value for parameter '{name}' of selector '{cls.name}': {err['msg']}"
        raise InputError(msg, field=name) from None


def describe(cls: type[Selector]) -> dict:
    schema = cls.Params.model_json_schema()
    defaults = {k: f.get_default(call_default_factory=True) for k, f in cls.Params.model_fields.items()}
    return {
        "name": cls.name,
        "version": cls.version,
        "description": cls.description,
        "uses_target": cls.uses_target,
        "online": cls.online,
        "requires_target": cls.requires_target,
        "defaults": {k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for k, v in defaults.items()},
        "params_schema": schema,
    }


def parse_budget(text: str | int | float) -> int | float | str:
    """'100' → 100 records; '0.1' → 10 % of the pool; 'auto' → the selector estimates the size
    (only selectors with ``supports_auto_budget``); anything else is the caller's mistake."""
    if isinstance(text, bool):
        raise InputError("budget must be a count or a fraction", field="budget")
    if isinstance(text, int | float):
        value: int | float = text
    else:
        s = str(text).strip()
        if s.lower() == "auto":
            return "auto"
        try:
            value = int(s)
        except ValueError:
            try:
                value = float(s)
            except ValueError:
                raise InputError(f"budget '{text}' is neither a count nor a fraction", field="budget") from None
    if isinstance(value, float):
        if not (0.0 < value <= 1.0) or math.isnan(value):
            raise InputError(f"fractional budget must be in (0, 1], got {value}", field="budget")
    elif value < 0:
        raise InputError(f"budget must be ≥ 0, got {value}", field="budget")
    return value


def resolve_budget(requested: int | float | str, n: int) -> tuple[int, bool]:
    """(records to select, clipped?) — a fraction of the pool is floored, like the references;
    "auto" allows up to the whole pool."""
    if requested == "auto":
        return n, False
    k = math.floor(requested * n) if isinstance(requested, float) else int(requested)
    return min(k, n), k > n


def describe_budget(requested: int | float | str, n: int, k: int) -> str:
    """The budget rule, said back to the caller: an int is a count, a float a fraction of the pool."""
    if requested == "auto":
        return f"budget auto: the selector chooses how many of the {n} records to keep"
    if isinstance(requested, float):
        return (
            f"budget {requested!r} is a fraction of the pool: floor({requested!r} × {n}) = {k} records"
            f" (an integer is a count: 1 means one record, 1.0 the whole pool)"
        )
    return f"budget {requested} is a count of records (a fraction needs a decimal point: 1.0 is the whole pool)"


def budget_warnings(requested: int | float | str, n: int, k: int, selected: int) -> list[str]:
    """What a caller should hear about a budget that did not mean what it probably meant."""
    out = []
    if isinstance(requested, int) and requested > n:
        out.append(f"budget {requested} exceeds the pool's {n} records: the whole pool was selected")
    if requested == 0:
        out.append("budget 0 selects nothing: the manifest is empty")
    elif isinstance(requested, float) and k == 0:
        out.append(f"budget {requested!r} of {n} records rounds down to 0: the manifest is empty")
    elif k > 0 and selected < k:
        out.append(
            f"the selector returned {selected} of the {k} records asked for"
            + (" (the manifest is empty)" if selected == 0 else "")
        )
    return out
