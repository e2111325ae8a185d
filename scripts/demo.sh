#!/usr/bin/env bash
# README command 1: set up, then ingest the bundled sample and run every selector (prints a summary table).
# Progress goes to stderr (a line every CURATE_PROGRESS_SECONDS, default 5, when it is not a terminal).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> setting up .venv (the first run installs torch and friends: a few minutes; later runs: seconds)" >&2
bash scripts/bootstrap.sh
echo "==> running pipelines/examples/quickstart.yaml: ingest (n-grams, embeddings, clusters), then 8 selections" >&2
exec .venv/bin/curate run pipelines/examples/quickstart.yaml "$@"
