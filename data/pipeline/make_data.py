"""Rebuild the three-source example (``pipelines/examples/three_sources.yaml``) from real text on a
Debian machine: ``python data/pipeline/make_data.py`` (needs the repo's .venv; deterministic).

- ``debian-libs.jsonl``  Debian package descriptions of library sections (package, description, section)
- ``debian-apps.csv``    Debian descriptions of application sections (name, about, category)
- ``docstrings.parquet`` first paragraphs of installed Python packages' docstrings (qualname, doc, library)
- ``target-science.jsonl`` Debian science/math descriptions, the DSIR target (none of them in the pool)

Planted so every step visibly acts: junk the filters catch (too short, symbol or digit runs,
repeated phrases, bullet lists, real German/French/Spanish UI strings from /usr/share/locale),
near-copies MinHash catches (one or two words changed, case and punctuation changed, some moved to
another source) and synonym rewrites only the semantic step catches. Planted ids start with
``planted-`` and name what they are.
"""

from __future__ import annotations

import gettext
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from tests.realtext import corpus  # noqa: E402

LIBS = ("libs", "libdevel", "devel")
APPS = ("utils", "net", "admin", "games", "sound", "graphics", "web", "editors")
SCIENCE = ("science", "math")
SYNONYMS = {
    "provides": "offers", "library": "toolkit", "files": "data", "package": "bundle", "program": "tool",
    "contains": "includes", "support": "handling", "application": "app", "simple": "basic", "allows": "lets",
    "development": "dev", "functions": "routines", "tool": "utility", "written": "implemented", "small": "tiny",
}  # fmt: skip


def locale_strings(n: int, rng: np.random.Generator) -> list[str]:
    """Real translated UI strings (≥ 8 words) from the machine's gettext catalogs."""
    out = []
    for lang in ("de", "fr", "es"):
        for mo in sorted(Path(f"/usr/share/locale/{lang}/LC_MESSAGES").glob("*.mo")):
            try:
                with open(mo, "rb") as f:
                    cat = gettext.GNUTranslations(f)
            except Exception:  # noqa: BLE001 — a catalog we cannot read is skipped
                continue
            for msg in cat._catalog.values():  # noqa: SLF001
                text = " ".join(str(msg).split())
                if 8 <= len(text.split()) <= 40 and "%" not in text:
                    out.append(text)
    out = sorted(set(out))
    return [out[i] for i in rng.choice(len(out), n, replace=False)]


def edit(text: str, rng: np.random.Generator, k: int) -> str:
    words = text.split()
    for _ in range(k):
        i = int(rng.integers(len(words)))
        words[i] = words[i].upper() if rng.random() < 0.5 else words[i] + ","
    if rng.random() < 0.5:
        words[int(rng.integers(len(words)))] = "really"
    return " ".join(words)


def rewrite(text: str) -> str:
    return " ".join(SYNONYMS.get(w.lower(), w) for w in text.split())


def main() -> None:
    rng = np.random.default_rng(14)
    deb = corpus("debian", n_domains=60, per_domain=60, seed=14)
    deb = deb.filter(pl.col("text").str.split(" ").list.len() >= 8)
    libs = deb.filter(pl.col("domain").is_in(LIBS)).head(280)
    apps = deb.filter(pl.col("domain").is_in(APPS)).head(280)
    target = deb.filter(pl.col("domain").is_in(SCIENCE)).head(80)
    docs = corpus("docstrings", n_domains=16, per_domain=20, seed=14)
    docs = docs.filter(pl.col("text").str.split(" ").list.len() >= 8).head(200)

    planted: list[dict] = []

    def plant(kind: str, text: str, into: str, domain: str) -> None:
        planted.append({"id": f"planted-{kind}-{len(planted)}", "text": text, "into": into, "domain": domain})

    for i, t in enumerate(locale_strings(24, rng)):
        plant("foreign", t, ("libs", "apps", "docs")[i % 3], "l10n")
    for i in range(8):
        plant("short", ["TODO", "see above", "n/a", "Dummy package.", "tbd", "FIXME later", "-", "empty"][i],
              ("libs", "apps", "docs")[i % 3], "junk")  # fmt: skip
    for i in range(8):
        plant("symbols", " ".join(["###", "...", "#", "…"][(i + j) % 4] + w for j, w in
                                  enumerate(apps["text"][i].split()[:10])), "apps", "junk")  # fmt: skip
    for _ in range(8):
        plant("digits", " ".join(f"{int(x)}" for x in rng.integers(0, 99999, 14)) + " units", "docs", "junk")
    for i in range(8):
        phrase = " ".join(libs["text"][i].split()[:4])
        plant("repeated", " ".join([phrase] * 6), "libs", "junk")
    for i in range(6):
        items = apps["text"][20 + i].split(". ")[:1][0].split()[:12]
        plant("bullets", "\n".join(f"- {w}" for w in items), "apps", "junk")
    pick = lambda frame, n, start: frame.slice(start, n).iter_rows(named=True)  # noqa: E731
    for i, row in enumerate(pick(libs, 18, 100)):
        plant("near", edit(row["text"], rng, 1 + i % 2), "libs" if i % 3 else "apps", row["domain"])
    for i, row in enumerate(pick(apps, 18, 100)):
        plant("near", edit(row["text"], rng, 1 + i % 2), "apps" if i % 3 else "libs", row["domain"])
    for row in pick(docs, 8, 100):
        plant("near", edit(row["text"], rng, 1), "docs", row["domain"])
    for frame, into in ((libs, "libs"), (apps, "apps"), (docs, "docs")):
        for row in pick(frame, 10, 150):
            new = rewrite(row["text"])
            if new != row["text"]:
                plant("synonyms", new, into, row["domain"])
    extra = pl.DataFrame(planted)

    def part(frame: pl.DataFrame, into: str) -> pl.DataFrame:
        add = extra.filter(pl.col("into") == into).drop("into")
        both = pl.concat([frame.select("id", "text", "domain"), add])
        return both.with_columns(pl.Series("_r", rng.random(both.height))).sort("_r").drop("_r")

    part(libs, "libs").rename({"id": "package", "text": "description", "domain": "section"}).write_ndjson(
        HERE / "debian-libs.jsonl"
    )
    apps_out = part(apps, "apps").rename({"id": "name", "text": "about", "domain": "category"})
    apps_out.write_csv(HERE / "debian-apps.csv")
    part(docs, "docs").rename({"id": "qualname", "text": "doc", "domain": "library"}).write_parquet(
        HERE / "docstrings.parquet"
    )
    target.select("text", "domain").write_ndjson(HERE / "target-science.jsonl")
    counts = extra.group_by("id").len().height
    print(f"libs {libs.height}, apps {apps.height}, docs {docs.height}, planted {counts}, target {target.height}")


if __name__ == "__main__":
    main()
