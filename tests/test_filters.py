"""Quality filters against plain-Python reference implementations of their definitions, on real
Debian descriptions plus planted junk; the filter step's manifest explains every drop."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.filters import FilterSpec, decide, measure
from curate.filters.language import identify

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "pipeline"
EDGE = [
    "",
    "one",
    "  leading and trailing  ",
    "tabs\tand\nnew\n\nlines",
    "Ünïcödé wörds hére … and “quotes” — dash",
    "### ... #### ...... …",
    "1234 5678 9999 abc",
    "- a\n- b\n* c\nplain",
    "end with dots...\nand again…\nnot this",
    "the cat sat on the mat the cat sat on the mat the cat sat on the mat",
    "a b c d e f a b c d e f a b c d e f g",
    "same line\nsame line\nother\nsame line",
    "para one\n\npara two\n\n\npara one",
    # adversarial: one word, all repeated, long indents, whitespace-only lines, CRLF, non-ASCII
    "word",
    "spam " * 5000,
    "spam\n" * 300,
    "a b a b a b a b a b a b a b a b a b a b a b",
    " " * 40 + "- deep bullet\n\t\t\t\t\t\t\t\t\t* tabbed\n" + " " * 12 + "\n   \nend...   " + " " * 30,
    "\r\n- crlf line\r\n\r\n- crlf line\r\n",
    "привет мир привет мир привет мир привет мир привет мир",
    "日本語のテキスト 日本語のテキスト … 🙂 🙂 🙂 🙂 🙂 🙂 🙂",
    "• one\n◦ two\n▪ three\n‣ four\n● five",
    "x" * 3000 + " " + "x" * 3000 + " " + "y" * 17,
    "\n\n\n\n",
    "   ",
]
ASCII_SPACE = "\t\n\x0b\x0c\r "  # the filters' whitespace (Unicode spaces inside a word stay in it)


def papers_documents() -> list[str]:
    """Real multi-paragraph documents: each paper's title and abstract, a few papers per document,
    some repeating an earlier paper (duplicate paragraphs and long repeated n-grams)."""
    papers = pl.read_ndjson(REPO / "data" / "papers.jsonl")
    paras = [f"{t}\n{x}" for t, x in zip(papers["title"], papers["text"], strict=True)]
    docs = ["\n\n".join(paras[i : i + 3]) for i in range(0, len(paras), 3)]
    docs += ["\n\n".join([paras[i], paras[i + 1], paras[i]]) for i in range(0, 60, 2)]
    docs.append("\n\n\n".join(paras))  # one very long text (~600k characters)
    return docs


@pytest.fixture(scope="module")
def texts() -> pl.Series:
    real = pl.read_ndjson(DATA / "debian-libs.jsonl")["description"]
    docs = pl.read_parquet(DATA / "docstrings.parquet")["doc"]
    papers = pl.read_ndjson(REPO / "data" / "papers.jsonl")["text"]
    return pl.concat(
        [real, docs, papers, pl.Series(papers_documents()), pl.Series(EDGE), pl.Series([None], dtype=pl.String)]
    )


def ref_words(t: str) -> list[str]:
    return [w for w in re.split(f"[{ASCII_SPACE}]+", t) if w]


def ref_length(t: str) -> tuple[int, int, float]:
    w = ref_words(t)
    return len(t), len(w), (sum(len(x) for x in w) / len(w) if w else 0.0)


def test_length_matches_python(texts):
    values = measure(FilterSpec(length={}), texts)
    for i, t in enumerate(texts.fill_null("").to_list()):
        chars, words, mean = ref_length(t)
        assert values["length.chars"][i] == chars and values["length.words"][i] == words, t
        assert values["length.mean_word_length"][i] == mean, t  # the same division of the same integers


BULLETS = ("-", "*", "•", "‣", "●", "◦", "▪")


def ref_characters(t: str) -> dict:
    words = ref_words(t)
    n = len(words) or 1
    non_space = [c for c in t if c not in ASCII_SPACE] or [""]
    lines = [x for x in t.split("\n") if x]
    symbols = t.count("#") + t.count("...") + t.count("…")
    return {
        "symbol_word_ratio": symbols / n if words else 0.0,
        "alpha_word_fraction": sum(any(c.isalpha() for c in w) for w in words) / n if words else 0.0,
        "digit_ratio": sum(c.isdigit() for c in non_space) / len(non_space) if words else 0.0,
        "non_alpha_ratio": sum(not c.isalpha() for c in non_space) / len(non_space) if words else 0.0,
        "bullet_line_fraction": sum(x.lstrip(ASCII_SPACE).startswith(BULLETS) for x in lines) / len(lines)
        if lines else 0.0,
        "ellipsis_line_fraction": sum(x.rstrip(ASCII_SPACE).endswith(("...", "…")) for x in lines) / len(lines)
        if lines else 0.0,
    }  # fmt: skip


def test_characters_match_python(texts):
    values = measure(FilterSpec(characters={}), texts)
    for i, t in enumerate(texts.fill_null("").to_list()):
        for key, expected in ref_characters(t).items():
            got = values[f"characters.{key}"][i]
            if key == "non_alpha_ratio" and not t.isascii():
                continue  # typographic symbols outside the byte classes' blocks differ from str.isalpha
            assert got == expected, (key, t)


def ref_repetition(t: str) -> dict:
    """datatrove's Gopher repetition definitions (later occurrences are the duplicates), with the top
    n-gram counted only when it repeats."""
    out = {}
    total_chars = len(t)
    for label, parts in (
        ("line", [x for x in t.split("\n") if x]),
        ("paragraph", [x for x in re.split(r"\n{2,}", t) if x]),
    ):
        seen, dup, dup_chars = set(), 0, 0
        for p in parts:
            if p in seen:
                dup += 1
                dup_chars += len(p)
            seen.add(p)
        out[f"dup_{label}_fraction"] = dup / len(parts) if parts else 0.0
        out[f"dup_{label}_char_fraction"] = dup_chars / total_chars if total_chars else 0.0
    words = ref_words(t)
    word_chars = sum(len(w) for w in words)
    for n in (2, 3, 4):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        best = max(((c, sum(map(len, g))) for g, c in counts.items() if c > 1), default=(0, 0))
        out[f"top_{n}gram"] = best[0] * best[1] / word_chars if word_chars else 0.0
    for n in range(5, 11):
        covered = np.zeros(len(words), bool)
        seen = set()
        for i in range(len(words) - n + 1):
            g = tuple(words[i : i + n])
            if g in seen:
                covered[i : i + n] = True
            seen.add(g)
        out[f"dup_{n}gram"] = (
            sum(len(w) for w, c in zip(words, covered, strict=True) if c) / word_chars if word_chars else 0.0
        )
    return out


def test_repetition_matches_python(texts):
    values = measure(FilterSpec(repetition={}), texts)
    checked = 0
    for i, t in enumerate(texts.fill_null("").to_list()):
        for key, expected in ref_repetition(t).items():
            assert values[f"repetition.{key}"][i] == expected, (key, t)  # same integers, same division
        checked += 1
    assert checked == len(texts)
    assert values["repetition.dup_5gram"].max() > 0.3  # the planted repeats are found at all
    assert values["repetition.dup_paragraph_fraction"].max() > 0.3  # ... and the repeated papers
    assert values["repetition.dup_10gram"].max() > 0.999  # "spam " * 5000: every word but the first


def test_values_do_not_depend_on_the_batch(texts):
    """Records are measured in batches of ``BATCH``: a series of several batches, cut at other
    places, gives every record the same values bit for bit as measuring it with its neighbours."""
    from curate.filters import BATCH

    spec = FilterSpec(length={}, characters={}, repetition={})
    alone = measure(spec, texts)
    tiled = pl.concat([texts] * (2 * BATCH // len(texts) + 2)).slice(7)  # batch edges fall mid-series
    many = measure(spec, tiled)
    assert many.height > 2 * BATCH
    expected = pl.concat([alone] * (2 * BATCH // len(texts) + 2)).slice(7)
    assert many.equals(expected)
    one = measure(spec, pl.Series(["a b c d"]))  # nothing repeats anywhere in the batch
    assert one["repetition.top_2gram"][0] == 0.0 and one["repetition.dup_5gram"][0] == 0.0
    assert one["length.words"][0] == 4


def test_language_identifies_real_translations():
    de = pl.Series(["Die Datei konnte nicht geöffnet werden, weil der Zugriff verweigert wurde."])
    fr = pl.Series(["Impossible d'ouvrir le fichier parce que l'accès a été refusé par le système."])
    en = pl.read_ndjson(DATA / "debian-libs.jsonl")["description"].head(50)
    codes, scores = identify(pl.concat([de, fr, en, pl.Series([""])]))
    assert codes[0] == "de" and codes[1] == "fr"
    assert (codes.slice(2, 50) == "en").mean() > 0.9
    assert codes[-1] is None and scores[-1] == 0.0
    assert np.all((scores >= 0) & (scores <= 1))


def test_reason_is_the_first_failed_rule(texts):
    spec = FilterSpec(length={"min_words": 3}, characters={"max_digit_ratio": 0.3}, repetition={})
    values = measure(spec, texts)
    kept, reason = decide(spec, values)
    rules = spec.rules()
    for i in range(len(texts)):
        failing = [r.name for r in rules if not r.passes(values[i])[0]]
        assert kept[i] == (not failing)
        assert reason[i] == (failing[0] if failing else None)
    assert reason.drop_nulls().n_unique() >= 3


def test_filter_manifest_explains_every_drop(settings):
    from curate.filters.run import filter_pool
    from curate.ingest import IngestParams, ingest
    from curate.manifest import verify
    from curate.pool import Pool

    ingest(settings, DATA / "debian-libs.jsonl", "libs",
           IngestParams(text_field="description", id_field="package", embed=False))  # fmt: skip
    pool = Pool.load(settings, "libs")
    relaxed = {"max_top_2gram": 0.3, "max_top_3gram": 0.3, "max_top_4gram": 0.3}  # short texts (see the example)
    spec = FilterSpec(length={"min_words": 5}, characters={}, repetition=relaxed)
    doc, kept = filter_pool(settings, pool, spec)
    assert verify(Path(doc["path"])) == []
    removed = pl.read_parquet(Path(doc["path"]) / "removed.parquet")
    subset = pl.read_parquet(Path(doc["path"]) / "subset.parquet")
    assert removed.height + subset.height == pool.n_records == doc["pool"]["n_records"]
    assert not set(removed["id"]) & set(subset["id"])
    junk = pool.column("id").filter(pool.column("id").str.contains("^planted-(short|symbols|repeated)"))
    assert set(junk) <= set(removed["id"]) and junk.len() >= 5  # every planted junk record in this file goes
    real = ~removed["id"].str.starts_with("planted-")
    assert real.sum() < 0.25 * pool.n_records  # Debian descriptions that repeat their synopsis go too
    by_name = {r.name: r for r in spec.rules()}
    for row in removed.iter_rows(named=True):  # every drop names a rule its stored value breaks
        rule = by_name[row["reason"]]
        assert not rule.passes(pl.DataFrame({rule.value: [row[rule.value]]}))[0]
    assert sum(doc["metrics"]["removed_by"].values()) == removed.height
    again, _ = filter_pool(settings, pool, spec)
    assert again["id"] == doc["id"]
    from curate.report import write_report

    write_report(settings, Path(doc["path"]), settings.root / "report.html")
    html = (settings.root / "report.html").read_text()
    assert "removed_by" in html and all(reason in html for reason in doc["metrics"]["removed_by"])
