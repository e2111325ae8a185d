"""Where eval results live: ``CURATE_HOME/evals/<manifest id>/<key>.json``, one file per (params, target).

Manifests are immutable and the proxy is deterministic given its seed, so a result is computed once
per key and then read back (by the CLI, the REST job and the selection report).
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.config import Settings
from curate.io import atomic_path
from curate.records import canonical_json, sha256_hex

EVAL_VERSION = 2  # 2: delta.seed_interval; better_than_random needs it below 0 too


def eval_key(params: dict, target_fingerprint: str) -> str:
    return sha256_hex(canonical_json({"v": EVAL_VERSION, "params": params, "target": target_fingerprint}))[:16]


def eval_file(settings: Settings, manifest_id: str, key: str) -> Path:
    return settings.root / "evals" / manifest_id / f"{key}.json"


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def save(path: Path, result: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def eval_files(settings: Settings, manifest_id: str) -> list[Path]:
    """A manifest's stored eval files, oldest first."""
    folder = settings.root / "evals" / manifest_id
    return sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)) if folder.is_dir() else []


def saved_evals(settings: Settings, manifest_id: str) -> list[dict]:
    """Every stored eval of a manifest, oldest first (what the report shows)."""
    return [doc for doc in (load(p) for p in eval_files(settings, manifest_id)) if doc]
