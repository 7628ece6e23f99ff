#!/usr/bin/env bash
# fault-suite.sh: issue 7's fault-injection suite at scale, with the README's table of figures.
#
# Usage: scripts/fault-suite.sh [--users N] [--only local|services] [--projects] [--skip REGEX]
#
# Runs the fault-injection scenarios of Tests/JSMPipelineTests (FaultInjectionTests: workers
# SIGKILLed mid-batch, site bursts of 429/503/500, aggregator SIGKILLed, producer SIGKILLed
# mid-publish; ServiceFaultTests: every broker connection closed, the broker stopped and started,
# the PostgreSQL ledger restarted) on a generated Jira database of N directory users (default
# 102,100: just over 100,000 identities in scope), each scenario checking every invariant the
# issue names, then prints one table row per scenario from the figures the tests wrote, the
# machine and the command. Loopback only; every wait in the tests has a deadline. The scope is
# every customer and licensed user; --projects also selects every project (ExpandProject messages
# and the aggregator's cut, as CI does at 10,000; slow at this scale in a debug build).
# --skip REGEX leaves out the scenarios it matches (e.g. ledgerRestarted).
#
# ServiceFaultTests stop the broker and restart PostgreSQL of whatever services.sh points at
# (JSM_AMQP_PORT, JSM_POSTGRES_PORT, ...): never run it against services others are using.
# CI runs the same tests at 10,000 directory users (scripts/test.sh); this script is not in CI.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)

log() { printf 'fault-suite: %s\n' "$*" >&2; }
die() { printf 'fault-suite: error: %s\n' "$*" >&2; exit 1; }

invocation="scripts/fault-suite.sh${*:+ $*}"
users=102100
only=all
projects=none
skip=()
while (($# > 0)); do
    case $1 in
    --users)
        [[ ${2:-} =~ ^[0-9]+$ ]] || die "--users needs a number"
        users=$2
        shift 2
        ;;
    --only)
        [[ ${2:-} =~ ^(local|services)$ ]] || die "--only takes local or services"
        only=$2
        shift 2
        ;;
    --projects)
        projects=all
        shift
        ;;
    --skip)
        [[ -n ${2:-} ]] || die "--skip needs a regular expression"
        skip=(--skip "$2")
        shift 2
        ;;
    -h | --help)
        sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

cd "$REPO_ROOT"
"$SCRIPT_DIR/services.sh" status >/dev/null 2>&1 || "$SCRIPT_DIR/services.sh" start
eval "$("$SCRIPT_DIR/services.sh" env)"

log "building the tests (debug, as CI runs them)"
swift build --build-tests >&2

report=$(mktemp "${TMPDIR:-/tmp}/fault-suite.XXXXXX.jsonl")
trap 'rm -f -- "$report"' EXIT
export JSM_FAULT_USERS=$users JSM_FAULT_REPORT=$report JSM_FAULT_PROJECTS=$projects
started=$(date +%s)
failed=0
if [[ $only != services ]]; then
    log "scenarios that disturb only their own processes ($users directory users)"
    swift test --skip-build --filter 'FaultInjectionTests' "${skip[@]}" >&2 || failed=1
fi
if [[ $only != local ]]; then
    log "scenarios that disturb the broker and PostgreSQL, on their own"
    swift test --skip-build --filter 'ServiceFaultTests' "${skip[@]}" >&2 || failed=1
fi
elapsed=$(($(date +%s) - started))

echo
python3 - "$report" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
order = ["worker-sigkill", "site-429", "site-503", "site-500", "aggregator-sigkill", "producer-sigkill",
         "broker-close-connections", "broker-stop-start", "postgres-restart"]
rows.sort(key=lambda r: order.index(r["scenario"]) if r["scenario"] in order else len(order))
print("| scenario | injected | identities | batches | duration | state | site accounts (new) | "
      "retried batches (failed attempts) | replayed | duplicate replies | throttled | injections |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    note = f" ({r['notes']})" if r.get("notes") else ""
    print(f"| {r['scenario']} | {r['injected']}{note} | {r['identities']:,} | {r['batches']:,} | "
          f"{r['seconds']:.1f} s | {r['state']} | {r['siteAccounts']:,} ({r['newSiteAccounts']:,}) | "
          f"{r['retriedBatches']} ({r['failedAttempts']}) | {r['replayed']} | {r['duplicateReplies']} | "
          f"{r['throttled']} | {r['injections']} |")
if rows:
    print()
    print("checked in every scenario: " + rows[0]["checked"])
PY
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), debug build"
echo "suite: ${elapsed} s for $users directory users, projects: $projects"
echo "command: $invocation"
if ((failed)); then
    die "a scenario failed (the swift test output above names it)"
fi
