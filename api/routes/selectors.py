from __future__ import annotations

from fastapi import APIRouter

from api.deps import READ
from curate.selectors.base import REGISTRY, describe, get_selector

router = APIRouter(tags=["selectors"])


@router.get("/selectors", dependencies=[READ])
def list_selectors() -> dict:
    """Every registered selector with its description, defaults and the JSON schema of its params."""
    get_selector("random")  # fills the registry
    return {"selectors": [describe(REGISTRY[name]) for name in sorted(REGISTRY)]}
