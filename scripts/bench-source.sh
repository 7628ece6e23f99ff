#!/usr/bin/env bash
# Benchmark of the Jira source adapter (JSMSource): generates 100,000 and 1,000,000 users into
# SQLite and PostgreSQL, then reads and classifies every identity, printing users/s and peak RSS.
#
#   scripts/bench-source.sh                # 100000 and 1000000 users, both backends
#   SIZES="100000" scripts/bench-source.sh # only some sizes
#   BACKENDS="sqlite" scripts/bench-source.sh
#
# PostgreSQL comes from POSTGRES_* (source .data/env.sh, written by scripts/services.sh); the
# benchmark works in schemas of its own (jira_bench_<size>) and drops them at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
sizes="${SIZES:-100000 1000000}"
backends="${BACKENDS:-sqlite postgres}"
seed="${SEED:-1}"
work="${BENCH_DIR:-$root/.data/bench-source}"
mkdir -p "$work"

if [[ " $backends " == *" postgres "* && -z "${POSTGRES_PASSWORD:-}" ]]; then
    for env in "$root/.data/env.sh"; do
        if [[ -f "$env" ]]; then
            # shellcheck disable=SC1090
            source "$env"
        fi
    done
fi
if [[ " $backends " == *" postgres "* && -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "POSTGRES_PASSWORD is not set: run scripts/services.sh, then source .data/env.sh" >&2
    exit 1
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)"
echo "command: $0 (SIZES=\"$sizes\" BACKENDS=\"$backends\" SEED=$seed)"
swift build -c release --product source-benchmark >/dev/null
bench="$(swift build -c release --show-bin-path)/source-benchmark"

cleanup() {
    if [[ " $backends " == *" postgres "* ]]; then
        for size in $sizes; do
            PGPASSWORD="$POSTGRES_PASSWORD" psql -q -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" \
                -d "$POSTGRES_DB" -c "DROP SCHEMA IF EXISTS jira_bench_$size CASCADE" >/dev/null 2>&1 || true
        done
    fi
}
trap cleanup EXIT

for size in $sizes; do
    for backend in $backends; do
        if [[ "$backend" == sqlite ]]; then
            file="$work/jira-$size.sqlite"
            rm -f "$file" "$file-wal" "$file-shm"
            target=(--sqlite "$file")
        else
            target=(--postgres --schema "jira_bench_$size")
        fi
        "$bench" generate "${target[@]}" --users "$size" --seed "$seed"
        "$bench" classify "${target[@]}"
    done
done
