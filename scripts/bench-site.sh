#!/usr/bin/env bash
# Benchmark of the local cloud site (jsm-migrate cloud-site) and the Atlassian REST adapter.
#
# Builds in release, starts the site on SQLite and then on PostgreSQL, drives N customer creations
# from site-benchmark with three concurrent clients (a poll(2) socket loop that leaves the cores to
# the site, a raw HTTPClient loop, and the REST adapter), and prints creations/s, the CPU time the
# client and the site spent per creation, the adapter's overhead per call, the site's peak RSS,
# the machine and the command. Client and site share the machine's cores.
#
#   N=100000 CONCURRENCY=128 scripts/bench-site.sh            # both stores
#   STORES=sqlite scripts/bench-site.sh                       # SQLite only
#
# PostgreSQL settings come from POSTGRES_* (sourced from .data/env.sh when present); the site's
# tables go to a schema of their own, dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-100000}"
CONCURRENCY="${CONCURRENCY:-128}"
LATENCY_N="${LATENCY_N:-5000}"
STORES="${STORES:-sqlite postgres}"
PORT="${PORT:-18480}"

if [[ -z "${POSTGRES_PASSWORD:-}" && -f .data/env.sh ]]; then
    # shellcheck disable=SC1091
    source .data/env.sh
fi

echo "building (release)..."
swift build -c release --product jsm-migrate >/dev/null
swift build -c release --product site-benchmark >/dev/null
BIN="$(swift build -c release --show-bin-path)"

WORK="$(mktemp -d)"
SITE_PID=""
SCHEMA="bench_site_$$"
cleanup() {
    local status=$?
    if ((status != 0)) && [[ -s "$WORK/site.log" ]]; then
        echo "the site's log (last 20 lines):" >&2
        tail -n 20 "$WORK/site.log" >&2
    fi
    if [[ -n "$SITE_PID" ]] && kill -0 "$SITE_PID" 2>/dev/null; then
        kill -TERM "$SITE_PID" 2>/dev/null || true
        wait "$SITE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
chmod 600 "$WORK/token"
JSM_SITE_TOKEN="$(cat "$WORK/token")"
export JSM_SITE_TOKEN

wait_for_site() {
    local tries=0
    until curl -fsS -o /dev/null 2>/dev/null -u "bench@example.com:$JSM_SITE_TOKEN" "http://127.0.0.1:$PORT/_local/v1/counts"; do
        tries=$((tries + 1))
        if ((tries > 100)); then
            echo "the site did not start" >&2
            exit 1
        fi
        if ! kill -0 "$SITE_PID" 2>/dev/null; then
            echo "the site exited" >&2
            exit 1
        fi
        sleep 0.2
    done
}

for store in $STORES; do
    case "$store" in
        sqlite) store_args=(--sqlite "$WORK/site.sqlite") ;;
        postgres) store_args=(--postgres --schema "$SCHEMA") ;;
        *) echo "unknown store: $store" >&2; exit 2 ;;
    esac
    echo
    echo "== store: $store =="
    "$BIN/jsm-migrate" cloud-site --host 127.0.0.1 --port "$PORT" "${store_args[@]}" \
        --token-file "$WORK/token" --log-level warning >"$WORK/site.log" 2>&1 &
    SITE_PID=$!
    wait_for_site
    "$BIN/site-benchmark" --base-url "http://127.0.0.1:$PORT" --count "$N" --site-pid "$SITE_PID" \
        --concurrency "$CONCURRENCY" --latency-count "$LATENCY_N"
    echo "site peak RSS: $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$SITE_PID/status")," \
        "site CPU time: $(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f s", ($14 + $15) / hz}' "/proc/$SITE_PID/stat")"
    curl -fsS -u "bench@example.com:$JSM_SITE_TOKEN" "http://127.0.0.1:$PORT/_local/v1/counts"
    echo
    kill -TERM "$SITE_PID"
    wait "$SITE_PID" || true
    SITE_PID=""
    if [[ "$store" == postgres ]]; then
        PGPASSWORD="${POSTGRES_PASSWORD:-}" PGOPTIONS="-c client_min_messages=warning" psql "postgres://${POSTGRES_USER:-jsm}@${POSTGRES_HOST:-127.0.0.1}:${POSTGRES_PORT:-55432}/${POSTGRES_DB:-jsm}" \
            -q -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null
    fi
done

echo
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(swift --version 2>/dev/null | head -1)"
echo "command: N=$N CONCURRENCY=$CONCURRENCY LATENCY_N=$LATENCY_N STORES=\"$STORES\" scripts/bench-site.sh"
