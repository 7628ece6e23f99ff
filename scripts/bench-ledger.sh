#!/usr/bin/env bash
# bench-ledger.sh: how long the ledger takes to complete one identity batch.
#
# Usage: scripts/bench-ledger.sh [--backend postgres|sqlite|both] [--batches N] [--batch-size S]
#                                [--result-bytes B] [--sqlite-dir DIR]
#
# A benchmark, not a test. Builds `ledger-benchmark` in release and runs it: for each backend, a
# fresh ledger (its own PostgreSQL schema, or a temporary SQLite file; both removed afterwards)
# gets one migration of N x S customers, claimed in bulk and cut into N batches; every batch is
# then loaded and completed as a worker would (S `created` mapping rows, the identities' outcomes,
# the batch state and a stored result of B bytes, in one transaction), one batch at a time.
# Prints the median, p95 and max `completeBatch` time, identities/s, the claim and cut figures,
# the peak RSS, the machine and the command. Aim (issue): a 500-identity batch in under 20 ms on
# PostgreSQL. Defaults: both backends, 200 batches of 500, 32 KiB results.
#
# PostgreSQL settings come from <data>/env.sh, written by scripts/services.sh (started here if it
# is not running); set JSM_ENV_FILE to use another file.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
DATA_DIR=$(realpath -m -- "${JSM_DATA_DIR:-$REPO_ROOT/.data}")
ENV_FILE=${JSM_ENV_FILE:-$DATA_DIR/env.sh}

log() { printf 'bench-ledger: %s\n' "$*" >&2; }
die() { printf 'bench-ledger: error: %s\n' "$*" >&2; exit 1; }

invocation="scripts/bench-ledger.sh${*:+ $*}"
backend=both
for argument in "$@"; do
    case $argument in --backend=*) die "use --backend VALUE" ;; esac
done
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [[ ${args[i]} == --backend ]] && backend=${args[i + 1]:-}
done

if [[ $backend != sqlite ]]; then
    if [[ ! -r $ENV_FILE && -x $SCRIPT_DIR/services.sh ]]; then
        log "no $ENV_FILE: starting the services"
        "$SCRIPT_DIR/services.sh" start
    fi
    [[ -r $ENV_FILE ]] || die "$ENV_FILE is missing: run scripts/services.sh start (or set JSM_ENV_FILE)"
    # shellcheck source=/dev/null
    source "$ENV_FILE"
fi

cd "$REPO_ROOT"
log "building ledger-benchmark (release)"
swift build -c release --product ledger-benchmark >&2
bin_dir=$(swift build -c release --show-bin-path)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
if [[ $backend != sqlite ]]; then
    echo "postgresql: $(psql --version 2>/dev/null | head -1 || echo unknown client) at ${POSTGRES_HOST:-127.0.0.1}:${POSTGRES_PORT:-55432}"
fi
echo "command: $invocation"
"$bin_dir/ledger-benchmark" "$@"
