#!/usr/bin/env bash
# bench-amqp.sh: AMQP throughput of the Swift layer against a plain-C librabbitmq baseline.
#
# Usage: scripts/bench-amqp.sh [--count N] [--size BYTES] [--rounds R] [--in-flight K]
#                              [--skip-swift] [--swift-bin PATH] [--strict]
#
# A benchmark, not a test. Each side runs as its own process on a fresh durable quorum queue:
#   1. C publish:      N persistent messages of SIZE bytes, publisher confirms awaited every 500
#   2. C consume:      the same N messages, prefetch 200, manual ack of each message
#   3. Swift publish   (amqp-benchmark, built with `swift build -c release --product amqp-benchmark`)
#   4. Swift consume
# repeated --rounds times (C and Swift interleaved, so both see the same machine load), then prints
# the median msg/s and the peak RSS per side and, per side, the ratio swift/c: PASS when >= 0.80.
# The target (issue text): librabbitmq from C-like code reaches about 20,000 msg/s publishing with
# confirms and about 40,000 msg/s consuming on a 2-core box; the Swift layer keeps >= 80% of that.
#
# Options:
#   --count N        messages per side (default 100000)
#   --size BYTES     body size (default 1024)
#   --rounds R       repetitions; medians are reported (default 3)
#   --in-flight K    confirm windows of 500 in flight, given to both sides (default 1: publish 500,
#                    wait for all their confirms, the issue's definition)
#   --skip-swift     measure the C baseline only
#   --swift-bin PATH use this amqp-benchmark binary instead of building it
#   --strict         exit 1 when a side FAILs (default: report only, exit 0)
#
# Services come from scripts/services.sh (started here if they are not running). Results are
# kept in <data>/bench/amqp-<timestamp>.jsonl and .txt.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
SERVICES=$SCRIPT_DIR/services.sh

C_QUEUE=jsm-bench-c
SWIFT_QUEUE=jsm-bench-swift
WARMUP_QUEUE=jsm-bench-warmup
# Upper bound on one side's run, in seconds (100,000 messages take about 5 s).
SIDE_TIMEOUT=900

log() { printf 'bench-amqp: %s\n' "$*" >&2; }
die() { printf 'bench-amqp: error: %s\n' "$*" >&2; exit 1; }

invocation="scripts/bench-amqp.sh${*:+ $*}"
count=100000
size=1024
rounds=3
in_flight=1
skip_swift=0
swift_bin=""
strict=0
while (($# > 0)); do
    case $1 in
    --count) count=${2:?--count needs a value}; shift 2 ;;
    --size) size=${2:?--size needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --in-flight) in_flight=${2:?--in-flight needs a value}; shift 2 ;;
    --skip-swift) skip_swift=1; shift ;;
    --swift-bin) swift_bin=$(realpath -- "${2:?--swift-bin needs a path}"); shift 2 ;;
    --strict) strict=1; shift ;;
    -h | --help) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
done
if ! [[ $count =~ ^[0-9]{1,9}$ ]] || ((10#$count < 1 || 10#$count > 100000000)); then
    die "--count must be a whole number from 1 to 100000000"
fi
if ! [[ $size =~ ^[0-9]{1,8}$ ]] || ((10#$size > 67108864)); then
    die "--size must be a whole number of bytes up to 64 MiB"
fi
if ! [[ $rounds =~ ^[0-9]{1,2}$ ]] || ((10#$rounds < 1 || 10#$rounds > 20)); then
    die "--rounds must be a whole number from 1 to 20"
fi
rounds=$((10#$rounds))
if ! [[ $in_flight =~ ^[0-9]{1,3}$ ]] || ((10#$in_flight < 1)); then
    die "--in-flight must be a whole number from 1 to 999"
fi
in_flight=$((10#$in_flight))
count=$((10#$count))
size=$((10#$size))
command -v cc >/dev/null 2>&1 || die "no C compiler (cc) found: install gcc or clang (the Swift toolchain brings clang)"

# --- services -----------------------------------------------------------------------------
if ! "$SERVICES" status >/dev/null 2>&1; then
    log "services are not running: starting them"
    "$SERVICES" start
fi
# services.sh knows where the data folder is (it moves out of clones other users cannot enter).
eval "$("$SERVICES" env)"
DATA_DIR=$JSM_DATA_DIR
BENCH_DIR=$DATA_DIR/bench
# Host, port and credentials for the C baseline, taken from the same URL the Swift side gets.
mapfile -t url_parts < <(python3 -c '
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.hostname or "127.0.0.1"); print(u.port or 5672)
print(urllib.parse.unquote(u.username or "guest")); print(urllib.parse.unquote(u.password or "guest"))
' "$AMQP_URL")
amqp_host=${url_parts[0]}
amqp_port=${url_parts[1]}
amqp_user=${url_parts[2]}
amqp_password=${url_parts[3]}

# Deletes QUEUE if it exists; a queue that is not there is fine.
reset_queue() {
    local out
    if ! out=$("$SERVICES" rabbitmqctl -q delete_queue "$1" 2>&1); then
        [[ $out == *"not found"* ]] || die "could not delete queue $1: $out"
    fi
}

# --- builds ----------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR"
c_bin=$BENCH_DIR/amqp_baseline
libs=$(pkg-config --libs librabbitmq 2>/dev/null || echo -lrabbitmq)
log "building the C baseline"
# shellcheck disable=SC2086  # $libs is a list of linker flags
cc -O2 -Wall -Wextra -o "$c_bin" "$SCRIPT_DIR/bench/amqp_baseline.c" $libs ||
    die "the C baseline did not compile (is librabbitmq-dev installed? run scripts/setup.sh)"

swift_note=""
if ((skip_swift)); then
    swift_note="skipped (--skip-swift)"
elif [[ -n $swift_bin ]]; then
    [[ -x $swift_bin ]] || die "--swift-bin $swift_bin is not an executable"
elif ! grep -q '"amqp-benchmark"' "$REPO_ROOT/Package.swift" 2>/dev/null; then
    swift_note="not available: Package.swift has no amqp-benchmark product yet"
else
    command -v swift >/dev/null 2>&1 || die "swift is not on PATH"
    log "building amqp-benchmark (swift build -c release; a clean build takes minutes)"
    if ! (cd "$REPO_ROOT" && swift build -c release --product amqp-benchmark) >"$BENCH_DIR/swift-build.log" 2>&1; then
        tail -n 40 "$BENCH_DIR/swift-build.log" >&2
        die "swift build failed (full log: $BENCH_DIR/swift-build.log)"
    fi
    swift_bin=$(cd "$REPO_ROOT" && swift build -c release --show-bin-path)/amqp-benchmark
    [[ -x $swift_bin ]] || die "swift build succeeded but $swift_bin is missing"
fi
[[ -z $swift_note ]] || log "Swift benchmark $swift_note: reporting the C side only"

# --- runs ------------------------------------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$BENCH_DIR/amqp-$stamp.jsonl
report=$BENCH_DIR/amqp-$stamp.txt
commands=$BENCH_DIR/amqp-$stamp.commands
: >"$results"
: >"$commands"

# run_side ROUND LABEL DISPLAY-COMMAND -- COMMAND...: runs one side, keeps its JSON line. The
# password reaches each side through the environment only (AMQP_PASSWORD for C, AMQP_URL for
# Swift), so it never shows in `ps`.
run_side() {
    local round=$1 label=$2 display=$3 line
    shift 4
    log "round $round/$rounds: $label"
    ((round > 1)) || printf '%s\n' "$display" >>"$commands"
    if ! line=$(AMQP_PASSWORD=$amqp_password timeout "$SIDE_TIMEOUT" "$@" 2>"$BENCH_DIR/last-side.err"); then
        cat "$BENCH_DIR/last-side.err" >&2
        die "$label failed"
    fi
    line=$(printf '%s\n' "$line" | grep -m 1 '^{' || true)
    # Keep the line, tagged with its round.
    python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["messages"] == int(sys.argv[2]) and d["impl"] in ("c", "swift") and d["msgPerSec"] > 0, d
d["round"] = int(sys.argv[3])
print(json.dumps(d))' "$line" "$count" "$round" >>"$results" 2>/dev/null ||
        die "$label printed no valid JSON result line (got: ${line:-nothing})"
}

c_args=(--host "$amqp_host" --port "$amqp_port" --user "$amqp_user" --password-env AMQP_PASSWORD)
c_display="$c_bin %s --host $amqp_host --port $amqp_port --user $amqp_user --password-env AMQP_PASSWORD --queue $C_QUEUE --count $count --size $size --in-flight $in_flight"

# Warm-up (not reported): the broker's first quorum queue and JIT-compiled paths.
warmup=$((count / 10 < 1000 ? 1000 : (count / 10 > 10000 ? 10000 : count / 10)))
log "warm-up: $warmup messages through $WARMUP_QUEUE (not reported)"
reset_queue "$WARMUP_QUEUE"
AMQP_PASSWORD=$amqp_password "$c_bin" publish "${c_args[@]}" --queue "$WARMUP_QUEUE" --count "$warmup" --size "$size" >/dev/null
AMQP_PASSWORD=$amqp_password "$c_bin" consume "${c_args[@]}" --queue "$WARMUP_QUEUE" --count "$warmup" --size "$size" >/dev/null
reset_queue "$WARMUP_QUEUE"

read -r load_before _ </proc/loadavg
for ((round = 1; round <= rounds; round++)); do
    # Each side pair on a fresh queue: publish first, so consume finds all messages ready.
    reset_queue "$C_QUEUE"
    for side in publish consume; do
        # shellcheck disable=SC2059  # the display template holds the side's %s
        run_side "$round" "C $side: $count x $size B" "$(printf "$c_display" "$side")" -- \
            "$c_bin" "$side" "${c_args[@]}" --queue "$C_QUEUE" --count "$count" --size "$size" \
            --in-flight "$in_flight"
    done
    reset_queue "$C_QUEUE"

    if [[ -n $swift_bin && -z $swift_note ]]; then
        reset_queue "$SWIFT_QUEUE"
        for side in publish consume; do
            # The URL (with its password) through the environment: amqp-benchmark reads $AMQP_URL.
            run_side "$round" "Swift $side: $count x $size B" \
                "AMQP_URL=\$AMQP_URL $swift_bin $side --queue $SWIFT_QUEUE --count $count --size $size --in-flight $in_flight" -- \
                env AMQP_URL="$AMQP_URL" "$swift_bin" "$side" --queue "$SWIFT_QUEUE" --count "$count" \
                --size "$size" --in-flight "$in_flight"
        done
        reset_queue "$SWIFT_QUEUE"
    fi
done
read -r load_after _ </proc/loadavg

# --- report ----------------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
rabbit_version=$("$SERVICES" rabbitmqctl -q eval 'rabbit_misc:version().' 2>/dev/null | tr -d '"' || echo unknown)
otp_release=$("$SERVICES" rabbitmqctl -q eval 'erlang:system_info(otp_release).' 2>/dev/null | tr -d '"' || echo unknown)
librabbitmq_version=$(pkg-config --modversion librabbitmq 2>/dev/null || echo unknown)

verdict_rc=0
python3 - "$results" "$commands" "$count" "$size" "$(nproc)" "$cpu_model" "$rabbit_version" \
    "$otp_release" "$librabbitmq_version" "${swift_note:-}" "$invocation" "$rounds" \
    "$load_before" "$load_after" "$in_flight" >"$report" <<'EOF' || verdict_rc=$?
import json, statistics, sys

(results_file, commands_file, count, size, cores, cpu, rabbit, otp, librabbitmq, swift_note,
 invocation, rounds, load_before, load_after, in_flight) = sys.argv[1:]
rows = [json.loads(line) for line in open(results_file) if line.strip()]
threshold = 0.80

# Per (impl, side): the median rate over the rounds and the highest peak RSS.
by_key = {}
for impl in ("c", "swift"):
    for side in ("publish", "consume"):
        runs = [r for r in rows if r["impl"] == impl and r["side"] == side]
        if runs:
            by_key[(impl, side)] = {
                "msgPerSec": statistics.median(r["msgPerSec"] for r in runs),
                "seconds": statistics.median(r["seconds"] for r in runs),
                "peakRSSKiB": max(r["peakRSSKiB"] for r in runs),
                "each": [r["msgPerSec"] for r in sorted(runs, key=lambda r: r["round"])],
            }

print(f"AMQP benchmark: {int(count):,} messages of {int(size):,} bytes per side, durable quorum queue,")
print(f"persistent messages, publisher confirms awaited every 500 ({in_flight} window(s) in flight), prefetch 200,")
print("manual ack of each message;")
print(f"median of {rounds} round(s), C and Swift interleaved")
print(f"machine: {cores} cores, {cpu}; RabbitMQ {rabbit} (Erlang/OTP {otp}); librabbitmq {librabbitmq}")
print(f"load average (1 min) before/after: {load_before}/{load_after}"
      + ("  (busy machine: figures are lower than on an idle one)" if float(load_before) > int(cores) / 2 else ""))
print()
print(f"{'impl':<6} {'side':<8} {'msg/s':>10} {'seconds':>9} {'peak RSS MiB':>13}   each round (msg/s)")
for impl in ("c", "swift"):
    for side in ("publish", "consume"):
        r = by_key.get((impl, side))
        if r is None:
            print(f"{impl:<6} {side:<8} {'-':>10} {'-':>9} {'-':>13}   {swift_note or 'not run'}")
        else:
            each = " ".join(f"{v:,.0f}" for v in r["each"])
            print(f"{impl:<6} {side:<8} {r['msgPerSec']:>10,.0f} {r['seconds']:>9.2f} {r['peakRSSKiB'] / 1024:>13.1f}   {each}")
print()
print(f"{'side':<8} {'swift/c':>8}  verdict (PASS when >= {threshold:.2f})")
failed = False
for side in ("publish", "consume"):
    c, s = by_key.get(("c", side)), by_key.get(("swift", side))
    if c is None or s is None:
        print(f"{side:<8} {'-':>8}  n/a (no Swift figures)")
        continue
    ratio = s["msgPerSec"] / c["msgPerSec"]
    verdict = "PASS" if ratio >= threshold else "FAIL"
    failed |= verdict == "FAIL"
    print(f"{side:<8} {ratio:>8.2f}  {verdict}")
print()
print(f"command: {invocation}")
print("sides run (the password comes from the environment, never the command line):")
for line in open(commands_file):
    print("  " + line.rstrip())
sys.exit(3 if failed else 0)
EOF
((verdict_rc == 0 || verdict_rc == 3)) || die "could not write the report (python3 exited $verdict_rc)"
cat "$report"
log "results: $results, report: $report"
if ((verdict_rc == 3)) && ((strict)); then
    exit 1
fi
