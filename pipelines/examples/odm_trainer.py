"""Train the tiny proxy LM with batches from a curate online-mixing session (ODM) over REST.

Against a running server (``curate serve``) that holds a pool with a domain field:

    curate ingest corpus.jsonl --pool corpus --domain-field domain
    curate serve &
    python pipelines/examples/odm_trainer.py --url http://127.0.0.1:8000 --pool corpus \\
        --vocab-texts corpus.jsonl --validation held_out.jsonl --method odm --steps 300

Each step: ``next`` (a batch with texts) → one AdamW step of the proxy LM → the batch's mean token
loss per domain → ``feedback``. ``--method uniform|proportional`` run the same loop on a session whose
warm-up outlasts the run, so its initial mixture (uniform, or each domain's pool share) never moves.
``--vocab-texts`` fixes the tokenizer's vocabulary before training (the most frequent WordPiece
tokens of those texts; typically the file the pool was ingested from). ``--validation`` is a JSONL of
held-out ``text`` + ``domain`` rows, none of them in the pool; the validation loss is the mean over
domains of each domain's token loss. Prints the validation curve and the final weights as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from curate.client import MixingSession  # noqa: E402
from curate.eval.mixing_trainer import (  # noqa: E402
    METHODS,
    ProxyTrainer,
    TokenMap,
    TrainerParams,
    Validation,
    session_params,
    train_with_session,
)


def read_texts(path: Path, field: str = "text") -> pl.DataFrame:
    df = pl.read_ndjson(path)
    if field not in df.columns:
        raise SystemExit(f"{path}: no '{field}' field in its rows")
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--vocab-texts", type=Path, required=True, help="JSONL with 'text': the vocabulary's source.")
    ap.add_argument("--validation", type=Path, required=True, help="JSONL with 'text' and 'domain', held out.")
    ap.add_argument("--method", choices=METHODS, default="odm")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--micro-batches", type=int, default=1, help="Domains per step (1 = the paper's Algorithm 1).")
    ap.add_argument("--warmup", type=int, default=None, help="odm warm-up steps (default 2 %% of --steps).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--token", default=os.environ.get("CURATE_TOKEN"))
    args = ap.parse_args()

    params = TrainerParams(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    tokens = TokenMap(read_texts(args.vocab_texts)["text"].to_list(), params.vocab_size, params.max_tokens)
    held = read_texts(args.validation)
    if "domain" not in held.columns:
        raise SystemExit(f"{args.validation}: rows need a 'domain' field")
    validation = Validation(tokens, {str(d): part["text"].to_list() for (d,), part in held.group_by("domain")})
    body = session_params(args.method, args.steps, args.micro_batches, args.warmup)
    with MixingSession.create(args.url, args.pool, params=body, seed=args.seed, token=args.token) as session:
        log = train_with_session(session, ProxyTrainer(tokens, params), validation)
        for point in log.curve:
            print(f"step {point['step']:>5}  validation loss {point['loss']:.4f}", file=sys.stderr)
        out = {
            "session": session.id,
            "method": args.method,
            "curve": [{"step": c["step"], "loss": round(c["loss"], 4)} for c in log.curve],
            "final_per_domain": log.curve[-1]["per_domain"],
            "mean_mixture": log.mean_mixture(),
            "final_weights": session.state(limit=1)["weights"],
            "seconds": log.seconds,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
