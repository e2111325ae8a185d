"""Labelled real short-text corpora built from what is on the machine at test time, not templates.

- ``debian``: Debian package descriptions (the synopsis plus the first paragraph of the long
  description, one to three sentences), labelled by the package's archive Section. Real, short,
  written by thousands of people, with overlapping vocabularies across sections ("libs",
  "libdevel", "python", "devel" share most words): the kind of text a user brings.
- ``docstrings``: the first paragraph of public docstrings of the Python packages installed next
  to curate, labelled by top-level package (numpy, scipy, sklearn, torch, ...).

Shared by the quality harness (benchmarks/quality.py), the downstream eval, the embedding backend
benchmarks and their slimmer tests. Building a corpus takes seconds (debian) to a minute
(docstrings); each is cached per process and on disk (``CURATE_CORPUS_CACHE``, default
``~/.cache/curate/corpora``), keyed by the size and mtime of every file it was built from. Texts that occur in several
packages are kept once (first label wins) so a selection cannot score by matching exact copies.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

APT_LISTS = Path("/var/lib/apt/lists")
_WS = re.compile(r"\s+")


class CorpusUnavailable(RuntimeError):
    """The machine lacks what a corpus is built from; the message says what to install or run."""


def _translation_files() -> list[Path]:
    return sorted(APT_LISTS.glob("*_main_i18n_Translation-en*"))


def ensure_debian_descriptions() -> list[Path]:
    """Debian's long descriptions live in Translation-en, which Docker images skip
    (Acquire::Languages "none"); one `apt-get update` with English on fetches them (~13 MB)."""
    files = _translation_files()
    if files:
        return files
    if shutil.which("apt-get") is None:
        raise CorpusUnavailable("no apt-get: the debian corpus needs a Debian machine")
    cmd = ["apt-get", "-qq", "-o", "Acquire::Languages=en", "update"]
    if os.geteuid() != 0:
        cmd.insert(0, "sudo")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    files = _translation_files()
    if not files:
        raise CorpusUnavailable(f"`{' '.join(cmd)}` fetched no Translation-en: {proc.stderr.strip()[-500:]}")
    return files


def _read_compressed(path: Path) -> str:
    if path.suffix == ".lz4":
        return subprocess.run(["lz4cat", str(path)], capture_output=True, check=True).stdout.decode("utf-8", "replace")
    if path.suffix in {".gz", ".xz", ".bz2"}:
        import bz2
        import gzip
        import lzma

        opener = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}[path.suffix]
        with opener(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    return path.read_text("utf-8", "replace")


def _stanzas(text: str):
    for block in text.split("\n\n"):
        if block.strip():
            yield block


def _sections() -> dict[str, str]:
    """Package → its Section (the part after any 'contrib/'/'non-free/' prefix)."""
    out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, check=True).stdout.decode("utf-8", "replace")
    sections: dict[str, str] = {}
    for block in _stanzas(out):
        pkg = sec = None
        for line in block.splitlines():
            if line.startswith("Package: "):
                pkg = line[9:].strip()
            elif line.startswith("Section: "):
                sec = line[9:].strip().rsplit("/", 1)[-1]
        if pkg and sec:
            sections.setdefault(pkg, sec)
    return sections


def _description(block: str) -> tuple[str | None, str | None]:
    pkg, lines, in_desc = None, [], False
    for line in block.splitlines():
        if line.startswith("Package: "):
            pkg = line[9:].strip()
        elif line.startswith("Description-en: "):
            lines, in_desc = [line[16:].strip().rstrip(".") + "."], True
        elif in_desc and line.startswith(" "):
            if line.strip() == ".":  # paragraph break: keep synopsis + first paragraph only
                break
            lines.append(line.strip())
        elif in_desc:
            break
    return pkg, (_WS.sub(" ", " ".join(lines)).strip() if lines else None)


def _cached(name: str, sources: list[Path], build) -> pl.DataFrame:
    """``build()`` once per set of source files (their paths, sizes and mtimes), kept as Parquet."""
    h = hashlib.sha256(name.encode())
    for path in sources:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    root = Path(os.environ.get("CURATE_CORPUS_CACHE", Path.home() / ".cache" / "curate" / "corpora"))
    path = root / f"{name}-{h.hexdigest()[:16]}.parquet"
    if path.exists():
        return pl.read_parquet(path)
    df = build()
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    df.write_parquet(tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    return df


@lru_cache(maxsize=1)
def _debian_frame() -> pl.DataFrame:
    sources = sorted(APT_LISTS.glob("*_Packages*")) + ensure_debian_descriptions()
    return _cached("debian", sources, _build_debian)


def _build_debian() -> pl.DataFrame:
    sections = _sections()
    rows: dict[str, tuple[str, str]] = {}
    for path in ensure_debian_descriptions():
        for block in _stanzas(_read_compressed(path)):
            pkg, text = _description(block)
            if pkg and text and pkg in sections:
                rows.setdefault(pkg, (text, sections[pkg]))
    df = pl.DataFrame(
        {"pkg": list(rows), "text": [t for t, _ in rows.values()], "domain": [d for _, d in rows.values()]}
    )
    return df.sort("pkg").unique(subset="text", keep="first", maintain_order=True)


def _first_paragraph(doc: str) -> str:
    para = doc.strip().split("\n\n", 1)[0]
    return _WS.sub(" ", para).strip()


def _site() -> Path:
    return Path(np.__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def _docstring_frame() -> pl.DataFrame:
    sources = sorted(p for p in _site().glob("*.dist-info") if p.name.split("-")[0].lower() in _DIST_NAMES)
    return _cached("docstrings", sources, _build_docstrings)


def _build_docstrings() -> pl.DataFrame:
    site = _site()
    texts, domains, ids = [], [], []
    for pkg in sorted(DOCSTRING_PACKAGES):
        root = site / pkg
        if not root.is_dir():
            continue
        for file in sorted(root.rglob("*.py")):
            if "tests" in file.parts or "test" in file.parts:
                continue
            try:
                tree = ast.parse(file.read_text("utf-8", "replace"))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef | ast.Module):
                    doc = ast.get_docstring(node, clean=True)
                    name = getattr(node, "name", "")
                    if doc and not name.startswith("_"):
                        text = _first_paragraph(doc)
                        if 40 <= len(text) <= 600:
                            texts.append(text)
                            domains.append(pkg)
                            ids.append(f"{file.relative_to(site)}:{getattr(node, 'lineno', 0)}")
    df = pl.DataFrame({"pkg": ids, "text": texts, "domain": domains})
    return df.unique(subset="text", keep="first", maintain_order=True)


DOCSTRING_PACKAGES = {
    "numpy", "scipy", "sklearn", "torch", "polars", "sqlalchemy", "pydantic", "fastapi",
    "transformers", "matplotlib", "ray", "faiss", "ot", "httpx", "click", "yaml",
}  # fmt: skip
_DIST_NAMES = {"numpy", "scipy", "scikit_learn", "torch", "polars", "sqlalchemy", "pydantic", "fastapi",
               "transformers", "matplotlib", "ray", "faiss_cpu", "pot", "httpx", "click", "pyyaml"}  # fmt: skip


def corpus(
    name: str = "debian",
    *,
    n_domains: int = 12,
    per_domain: int | None = None,
    min_chars: int = 30,
    seed: int = 0,
) -> pl.DataFrame:
    """A labelled corpus: columns id, text, domain. Keeps the `n_domains` largest labels (by
    count after filtering); with `per_domain`, a seeded sample of at most that many per label
    (label sizes otherwise stay as they are in the source: real imbalance)."""
    if name == "debian":
        df = _debian_frame()
    elif name == "docstrings":
        df = _docstring_frame()
    else:
        raise ValueError(f"unknown corpus {name!r}: debian or docstrings")
    df = df.filter(pl.col("text").str.len_chars() >= min_chars)
    top = df.group_by("domain").len().sort(["len", "domain"], descending=[True, False]).head(n_domains)["domain"]
    df = df.filter(pl.col("domain").is_in(top.to_list()))
    if per_domain is not None:
        rng = np.random.default_rng(seed)
        df = df.with_columns(pl.Series("_r", rng.random(df.height))).sort("_r")
        df = df.filter(pl.int_range(pl.len()).over("domain") < per_domain).drop("_r")
    df = df.sort("pkg")
    return df.select(pl.concat_str([pl.lit(f"{name}:"), pl.col("pkg")]).alias("id"), "text", "domain")


def hold_out(
    df: pl.DataFrame, reserve: dict[str, int], per_domain: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pool, spare): shuffle with ``seed``, keep the first ``reserve[d]`` records of each section d
    out of the pool (``spare``, in shuffled order) and at most ``per_domain`` of the rest per section
    as the pool (sorted by id). Raises when a reserved section is not in ``df``."""
    missing = set(reserve) - set(df["domain"].unique())
    if missing:
        raise ValueError(f"sections {sorted(missing)} are not among the corpus's {df['domain'].n_unique()} labels")
    rng = np.random.default_rng(seed)
    df = df.with_columns(pl.Series("_r", rng.random(df.height))).sort("_r").drop("_r")
    rank = pl.int_range(pl.len()).over("domain")
    spare = df.filter(rank < pl.col("domain").replace_strict(reserve, default=0))
    pool = df.join(spare.select("id"), on="id", how="anti").filter(rank < per_domain).sort("id")
    return pool, spare


def write_jsonl(df: pl.DataFrame, path: Path) -> Path:
    """The corpus as a pool file curate ingests (id, text, domain)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_ndjson(path)
    return path


if __name__ == "__main__":  # quick look: python -m tests.realtext [debian|docstrings]
    which = sys.argv[1] if len(sys.argv) > 1 else "debian"
    df = corpus(which, n_domains=40)
    print(df.group_by("domain").len().sort("len", descending=True))
    lens = df["text"].str.split(" ").list.len()
    print(f"{df.height} records, words/record median {lens.median()}, mean {lens.mean():.1f}")
    for row in df.sample(5, seed=1).iter_rows(named=True):
        print(row["domain"], "|", row["text"][:200])
