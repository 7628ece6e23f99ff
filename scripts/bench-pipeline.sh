#!/usr/bin/env bash
# bench-pipeline.sh: a whole migration through the real pipeline, and how efficient it is.
#
# Usage: scripts/bench-pipeline.sh [--users N] [--workers 2,4] [--ledger sqlite|postgres]
#                                  [--batch-size S] [--concurrency C] [--site-concurrency K]
#                                  [--raw-count R] [--directory DIR]
#
# A benchmark, not a test. Builds jsm-migrate and pipeline-benchmark in release, starts the
# project's RabbitMQ and PostgreSQL if needed, generates a Jira database of N directory users
# (default 1,070,000, of which about 1,000,000 are in scope with --users all --customers all
# --include-requestless; reused while N is unchanged), and for each worker count: starts the
# local cloud site as its own process with the generator's pre-existing accounts, starts that
# many `jsm-migrate worker` processes, runs start with the aggregator already beside it (each
# with a ledger and a broker connection of its own, as separate processes have; the source mapped
# into memory as start maps it), and prints identities/s end to end, a re-run in which everything
# is already migrated, the site's raw creation rate in the same run (efficiency = end-to-end rate
# / raw rate) and each process's peak RSS.
# Aims (issue): 1,000,000 identities reconciled in under 2 minutes, efficiency >= 0.8, workers
# flat and under 64 MB, the re-run under 15 s.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
DATA_DIR=$(realpath -m -- "${JSM_DATA_DIR:-$REPO_ROOT/.data}")
ENV_FILE=${JSM_ENV_FILE:-$DATA_DIR/env.sh}

log() { printf 'bench-pipeline: %s\n' "$*" >&2; }
die() { printf 'bench-pipeline: error: %s\n' "$*" >&2; exit 1; }

invocation="scripts/bench-pipeline.sh${*:+ $*}"
if [[ ! -r $ENV_FILE ]]; then
    log "no $ENV_FILE: starting the services"
    "$SCRIPT_DIR/services.sh" start
fi
[[ -r $ENV_FILE ]] || die "$ENV_FILE is missing: run scripts/services.sh start"
"$SCRIPT_DIR/services.sh" status >/dev/null 2>&1 || "$SCRIPT_DIR/services.sh" start
# shellcheck source=/dev/null
source "$ENV_FILE"

cd "$REPO_ROOT"
log "building jsm-migrate and pipeline-benchmark (release)"
swift build -c release --product jsm-migrate >&2
swift build -c release --product pipeline-benchmark >&2
bin_dir=$(swift build -c release --show-bin-path)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "command: $invocation"
"$bin_dir/pipeline-benchmark" --executable "$bin_dir/jsm-migrate" "$@"
