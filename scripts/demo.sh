#!/usr/bin/env bash
# README command 1: set up, then ingest the bundled sample and run every selector (prints a summary table).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/curate run pipelines/examples/quickstart.yaml "$@"
