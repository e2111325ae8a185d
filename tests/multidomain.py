"""A small real-text pool of clearly distinct domains and a multimodal target drawn from a few of
them: the issue-5 comparison of `tarot` with random, `dsir` and nearest-neighbour top-k.

Shared by tests/test_tarot_vs_baselines.py and benchmarks/tarot_baselines.py. Texts come from
per-domain templates with per-domain slot vocabularies (so domains differ in words and in syntax,
and records of one domain still vary among themselves), are embedded by the pool's own ingest
(the real model), and every selection is scored by the OT distance to a held-out part of the
target under TAROT's own metric: chord cost between whitened, normalised embeddings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOMAINS: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "cooking": (
        [
            "Whisk the {a} with the {b}, then bake at {n}0 degrees for {m} minutes until {r}.",
            "Simmer {a} and {b} in a heavy pan; season with {s} and serve {r}.",
            "For the dough, knead {a} with a pinch of {s} and rest it {m} minutes before adding {b}.",
        ],
        {
            "a": ["butter", "flour", "eggs", "garlic", "onions", "cream", "sugar", "rice", "lentils", "shallots"],
            "b": ["thyme", "chopped parsley", "grated cheese", "chicken stock", "tomatoes", "mushrooms", "honey"],
            "s": ["sea salt", "black pepper", "nutmeg", "paprika", "cumin", "lemon zest"],
            "r": ["golden brown", "warm with crusty bread", "the sauce thickens", "tender", "with a green salad"],
        },
    ),
    "football": (
        [
            "{a} beat {b} {n}-{m} after a late {r} from their {s} in stoppage time.",
            "The {s} of {a} was sent off as {b} came back from two goals down to draw {n}-{n}.",
            "{a} coach praised the {s} after the {r} sealed a {n}-{m} away win at {b}.",
        ],
        {
            "a": ["United", "Rovers", "Athletic", "City", "Wanderers", "Albion", "Rangers", "Town"],
            "b": ["the league leaders", "their local rivals", "the visitors", "the cup holders", "Dynamo"],
            "s": ["striker", "goalkeeper", "left back", "captain", "midfielder", "young winger"],
            "r": ["header", "penalty", "free kick", "volley", "counter attack", "own goal"],
        },
    ),
    "weather": (
        [
            "Tomorrow {a} with {b} in the {s}; highs near {n}{m} degrees and {r}.",
            "A cold front brings {b} to the {s} tonight, followed by {a} and {r}.",
            "Forecast for the weekend: {a}, {b} over the {s}, temperatures around {n} degrees.",
        ],
        {
            "a": ["sunny spells", "scattered showers", "heavy rain", "thick fog", "clear skies", "light snow"],
            "b": ["gusty winds", "thunderstorms", "drizzle", "hail", "freezing rain", "a gentle breeze"],
            "s": ["north", "coastal areas", "the mountains", "the valleys", "the south east", "the islands"],
            "r": ["humidity falling", "a risk of frost", "winds easing", "pollen levels high", "poor visibility"],
        },
    ),
    "software": (
        [
            "Calling {a}() raises {b} when the {s} is empty; stack trace attached, fails on version {n}.{m}.",
            "After upgrading to {n}.{m} the {s} throws {b} inside {a}(); reverting the commit fixes it.",
            "Steps to reproduce: configure the {s}, run {a}() twice, observe {b} and {r}.",
        ],
        {
            "a": ["parse_config", "load_model", "connect", "flush_buffer", "serialize", "resolve_path"],
            "b": ["a NullPointerException", "KeyError", "a segmentation fault", "TypeError", "a timeout"],
            "s": ["cache directory", "request header", "config file", "thread pool", "database pool"],
            "r": ["a memory leak", "a hung worker", "corrupted output", "100% CPU usage", "a failing CI job"],
        },
    ),
    "medical": (
        [
            "Patient, {n}{m} years old, presents with {a} and {b}; prescribed {s} and follow-up in {m} weeks.",
            "Admitted with {a}; labs show {r}. Started on {s}, {b} improving.",
            "History of {b}. Reports {a} for {m} days; examination {r}; plan: {s}.",
        ],
        {
            "a": ["chest pain", "persistent cough", "fever", "shortness of breath", "abdominal pain", "headache"],
            "b": ["hypertension", "type 2 diabetes", "asthma", "mild dehydration", "atrial fibrillation"],
            "s": ["amoxicillin", "ibuprofen", "metformin", "an inhaler", "intravenous fluids", "bed rest"],
            "r": ["elevated white cell count", "normal troponin", "low potassium", "clear lungs", "mild anaemia"],
        },
    ),
    "legal": (
        [
            "The {a} shall indemnify the {b} against any {r} arising from a breach of clause {n}.{m}.",
            "This agreement may be terminated by the {a} on {m}0 days written notice to the {b}, subject to {s}.",
            "Notwithstanding clause {n}, the {b} shall not be liable for {r} except as required by {s}.",
        ],
        {
            "a": ["Licensee", "Supplier", "Tenant", "Contractor", "Purchaser", "Employer"],
            "b": ["Licensor", "Customer", "Landlord", "Company", "Vendor", "Employee"],
            "s": ["applicable law", "the governing statute", "the arbitration rules", "clause 14"],
            "r": ["losses", "consequential damages", "claims of third parties", "costs and expenses", "penalties"],
        },
    ),
    "astronomy": (
        [
            "Spectra of the {a} show {b} with a redshift of 0.{n}{m}, consistent with {r}.",
            "We observed the {a} for {m} nights with the {s}; the light curve reveals {b}.",
            "New {s} images resolve {b} around the {a}, suggesting {r}.",
        ],
        {
            "a": ["spiral galaxy", "quasar", "binary star", "white dwarf", "globular cluster", "supernova remnant"],
            "b": ["strong emission lines", "periodic dimming", "a dusty disk", "relativistic jets", "a transit"],
            "s": ["radio telescope", "space telescope", "infrared camera", "spectrograph", "X-ray observatory"],
            "r": ["an active nucleus", "a hidden companion", "ongoing star formation", "dark matter halos"],
        },
    ),
    "finance": (
        [
            "Shares of {a} fell {n}.{m}% after {b}, while the {s} index closed {r}.",
            "{a} reported quarterly revenue up {n}{m}% on {b}; analysts expect {r}.",
            "Bond yields rose as {b}; the {s} slipped and {a} stock ended {r}.",
        ],
        {
            "a": ["the bank", "the retailer", "the chipmaker", "the airline", "the carmaker", "the insurer"],
            "b": ["weak guidance", "an interest rate hike", "strong holiday sales", "a profit warning"],
            "s": ["technology", "energy", "small cap", "blue chip", "European", "emerging markets"],
            "r": ["slightly higher", "at a record", "lower on the day", "a dividend increase", "flat"],
        },
    ),
}


def _texts(domain: str, n: int, rng: np.random.Generator) -> list[str]:
    templates, slots = DOMAINS[domain]
    out = []
    for _ in range(n):
        fill = {k: v[rng.integers(len(v))] for k, v in slots.items()}
        fill |= {"n": int(rng.integers(1, 10)), "m": int(rng.integers(1, 10))}
        out.append(templates[rng.integers(len(templates))].format(**fill))
    return out


@dataclass
class Fixture:
    """Pool file, target files (fit part = ``--target``, held-out part) and their domain labels."""

    pool_path: Path
    target_path: Path
    held_texts: list[str]
    pool_domains: np.ndarray
    target_domains: list[str]
    shares: dict[str, float]


def write_fixture(
    directory: Path,
    per_domain: int = 30,
    shares: dict[str, float] | None = None,
    n_fit: int = 30,
    n_held: int = 60,
    seed: int = 0,
) -> Fixture:
    """``per_domain`` pool records in each of the 8 domains; a target mixing ``shares`` (default
    software 60 %, medical 30 %, astronomy 10 %) with ``n_fit`` records to select with and ``n_held``
    held out. Pool and target are drawn independently (distinct texts, same generator)."""
    shares = shares or {"software": 0.6, "medical": 0.3, "astronomy": 0.1}
    rng = np.random.default_rng(seed)
    rows, labels, seen = [], [], set()
    for d in DOMAINS:
        for t in _texts(d, per_domain * 3, rng):  # oversample, keep distinct texts
            if t not in seen and sum(lab == d for lab in labels) < per_domain:
                seen.add(t)
                rows.append({"id": f"p{len(rows)}", "text": t, "domain": d})
                labels.append(d)

    def target(n: int) -> list[tuple[str, str]]:
        counts = {d: round(s * n) for d, s in shares.items()}
        out = []
        for d, c in counts.items():
            fresh = [t for t in _texts(d, c * 10, rng) if t not in seen]
            fresh = list(dict.fromkeys(fresh))[:c]
            seen.update(fresh)
            out += [(t, d) for t in fresh]
        return out

    fit, held = target(n_fit), target(n_held)
    directory.mkdir(parents=True, exist_ok=True)
    pool_path, target_path = directory / "pool.jsonl", directory / "target.jsonl"
    pool_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target_path.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in fit))
    return Fixture(pool_path, target_path, [t for t, _ in held], np.asarray(labels), [d for _, d in fit], shares)


def nn_round_robin(cand: np.ndarray, tgt: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour baseline 1: target examples take turns (in file order) to claim their
    nearest not-yet-taken candidate by cosine, until ``k`` are taken."""
    order = np.argsort(-(tgt @ cand.T), axis=1, kind="stable")
    taken: list[int] = []
    used = np.zeros(len(cand), bool)
    pointer = np.zeros(len(tgt), np.int64)
    while len(taken) < k:
        for j in range(len(tgt)):
            while used[order[j, pointer[j]]]:
                pointer[j] += 1
            used[order[j, pointer[j]]] = True
            taken.append(int(order[j, pointer[j]]))
            if len(taken) == k:
                break
    return np.asarray(taken, np.int64)


def nn_max_sim(cand: np.ndarray, tgt: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour baseline 2: the ``k`` candidates most similar to any one target example."""
    best = (cand @ tgt.T).max(axis=1)
    return np.argsort(-best, kind="stable")[:k]


def compare(
    settings,
    fixture: Fixture,
    budgets: list[int],
    seed: int = 0,
    pool: str = "multidomain",
    tarot_variants: dict[str, dict] | None = None,
) -> dict:
    """For each budget, select with tarot, random, dsir and both NN top-k baselines from an ingested
    pool of ``fixture``; OT distance of each to the held-out target, and domain counts.

    The metric is TAROT's (whitener fitted, as the selector fits it, on pool ∪ fit target; chord
    cost; exact EMD). ``ot_raw`` is the same in raw MiniLM cosine space, reported for context.
    NN baselines use raw cosine (what one would do without TAROT); ``*_whitened`` variants the
    whitened one, to separate the effect of whitening from that of the OT-guided layers.
    ``tarot_variants`` adds tarot runs with other parameters (name → params), for ablations.
    """
    import polars as pl

    from curate.algorithms.transport import fit_whitener, ot_distance
    from curate.pool import Pool
    from curate.select import run_selection
    from curate.selectors.tarot import TarotParams
    from curate.stages.embed import EmbedParams, encode

    the_pool = Pool.load(settings, pool)
    raw = np.asarray(the_pool.embeddings(), np.float32)
    row_of = dict(the_pool.scan().select("id", "row_id").collect().iter_rows())
    fit_texts = [json.loads(line)["text"] for line in fixture.target_path.read_text().splitlines()]
    fit, held = encode(fit_texts, EmbedParams()), encode(fixture.held_texts, EmbedParams())
    r = TarotParams().resolved()  # the metric stays the paper's full whitening (Ledoit-Wolf), whatever tarot chooses
    white = fit_whitener([raw, fit], "cholesky", "auto", r["ridge"], r["relative_ridge"])
    cand_w, fit_w, held_w = white.transform(raw), white.transform(fit), white.transform(held)
    names = sorted(fixture.shares)

    def chosen(selector: str, budget: int, params: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        target = str(fixture.target_path) if selector != "random" else None
        doc = run_selection(settings, pool=pool, selector=selector, budget=budget, seed=seed, target=target,
                            params=params)  # fmt: skip
        subset = pl.read_parquet(f"{doc['path']}/subset.parquet")
        idx = np.asarray([row_of[i] for i in subset["id"].to_list()], np.int64)
        return idx, subset["weight"].to_numpy()

    def score(idx: np.ndarray, weights: np.ndarray | None = None) -> dict:
        """``ot`` treats the selection as a set (uniform mass); ``ot_weighted`` as the training job
        samples it, by the manifest's weights (NN baselines have none: uniform)."""
        doms = fixture.pool_domains[idx]
        return {
            "n": int(len(idx)),
            "ot": round(ot_distance(cand_w[idx], held_w, "emd"), 6),
            "ot_weighted": round(ot_distance(cand_w[idx], held_w, "emd", a_weights=weights), 6),
            "ot_raw": round(ot_distance(raw[idx], held, "emd"), 6),
            "target_domains": {d: int((doms == d).sum()) for d in names},
            "off_target": int((~np.isin(doms, names)).sum()),
        }

    out: dict = {
        "fit_target_as_selection": {  # a fresh sample of the target itself: what "as close as it gets" means
            "ot": round(ot_distance(fit_w, held_w, "emd"), 6),
            "ot_raw": round(ot_distance(fit, held, "emd"), 6),
        }
    }
    for k in budgets:
        picks = {
            "tarot": chosen("tarot", k, {"estimate_ratio": False}),
            **{name: chosen("tarot", k, {"estimate_ratio": False, **v}) for name, v in (tarot_variants or {}).items()},
            "random": chosen("random", k),
            "dsir": chosen("dsir", k),
            "nn_round_robin": (nn_round_robin(raw, fit, k), None),
            "nn_max_sim": (nn_max_sim(raw, fit, k), None),
            "nn_round_robin_whitened": (nn_round_robin(cand_w, fit_w, k), None),
            "nn_max_sim_whitened": (nn_max_sim(cand_w, fit_w, k), None),
        }
        out[str(k)] = {name: score(*pick) for name, pick in picks.items()}
    return out
