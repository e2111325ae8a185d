"""Online data mixing (odm) from a training loop, against a running curate server.

odm is not a batch selection: it needs a trainer reporting losses every step, so it is driven
over REST rather than from a pipeline file. This example plays the trainer with a toy loss per
domain that falls as the model sees more of it (``a + b / sqrt(1 + seen)``, a different curve
per domain), then freezes what was served as a manifest.

    curate run pipelines/examples/quickstart.yaml     # ingests the pool 'papers'
    curate serve &                                   # http://127.0.0.1:8000
    python pipelines/examples/odm_session.py --steps 300
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections import Counter

from curate.client import MixingSession


def toy_loss(group: str, seen: int) -> float:
    """A per-domain learning curve: a stable pseudo-random floor and scale for each group name."""
    h = zlib.crc32(group.encode())
    floor, scale = 1.0 + (h % 200) / 100, 1.0 + (h // 200 % 300) / 100
    return floor + scale / (1 + seen) ** 0.5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--pool", default="papers")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--token", default=None, help="API token when the server requires one.")
    args = ap.parse_args()
    params = {"variant": "paper", "warmup_steps": args.steps // 10, "micro_batches": 4, "init": "records"}
    session = MixingSession.create(args.url, args.pool, params=params, seed=0, token=args.token)
    seen: Counter[str] = Counter()
    for batch in session.batches(args.batch_size, steps=args.steps, with_text=False):
        counts = Counter(batch.groups)
        losses = {g: toy_loss(g, seen[g]) for g in counts}  # a real trainer: mean loss per group in the batch
        seen.update(counts)
        session.feedback(losses)
    state = session.state(limit=1)
    manifest = session.freeze()
    print(
        json.dumps(
            {"session": session.id, "weights": state["weights"], "manifest": manifest["id"], "path": manifest["path"]},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
