#!/usr/bin/env bash
# setup.sh: install the Debian packages that jsm-migrate's services, tests and benchmarks need.
#
# Usage: scripts/setup.sh            # install whatever is missing (needs root or sudo then)
#        scripts/setup.sh --check    # only report what is missing; exit 1 if anything is
#
# Safe to run any number of times: it asks dpkg first and touches apt only when a package is
# missing (then `apt-get update` once, then one `apt-get install`). Packages' maintainer scripts
# are kept from starting system services (a temporary /usr/sbin/policy-rc.d that answers 101
# "action forbidden"): the project runs its own private instances (scripts/services.sh) and a
# system RabbitMQ or PostgreSQL would only take memory and ports.
set -euo pipefail

# What each package is for:
#   librabbitmq-dev, pkg-config   the C AMQP client the Swift AMQP layer wraps (and the C baseline)
#   rabbitmq-server               the broker (3.10 on Debian 12), run privately by services.sh
#   postgresql                    the ledger and source database server, run privately by services.sh
#   libsqlite3-dev, sqlite3       the embedded ledger / source and its shell
#   openssl                       test CA and certificates for the AMQPS listener, password generation
#   python3                       JSON handling in the scripts
#   procps, time                  ps/pgrep and /usr/bin/time for the benchmarks
#   ca-certificates               TLS trust store
PACKAGES=(
    librabbitmq-dev rabbitmq-server postgresql pkg-config openssl libsqlite3-dev sqlite3
    python3 procps time ca-certificates
)
POLICY_RC=/usr/sbin/policy-rc.d

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

check_only=0
case ${1:-} in
"") ;;
--check) check_only=1 ;;
-h | --help)
    sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 0
    ;;
*) die "unknown option '$1' (try --help)" ;;
esac

command -v dpkg-query >/dev/null 2>&1 || die "this script needs a Debian-based system (dpkg-query not found)"

# A package counts as present only when dpkg says "install ok installed" (not half-configured,
# not removed with its configuration left behind).
missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
    log "all ${#PACKAGES[@]} packages are installed"
    exit 0
fi
log "missing: ${missing[*]}"
if ((check_only)); then
    log "would run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
fi

# Root for apt: directly, or through sudo when it is there (never prompting in CI: sudo -n).
if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
    [[ -t 0 ]] || SUDO=(sudo -n)
    log "installing needs root: using sudo"
else
    die "installing ${missing[*]} needs root; run this script as root (or install sudo)"
fi

# Keep postinst scripts from starting services, removing our policy file afterwards whatever
# happens (and only ours: an existing policy-rc.d is left as it was).
created_policy=0
cleanup() {
    if ((created_policy)); then
        "${SUDO[@]}" rm -f -- "$POLICY_RC" || log "warning: could not remove $POLICY_RC"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ ! -e $POLICY_RC ]]; then
    printf '#!/bin/sh\n# Temporary (jsm-migrate scripts/setup.sh): do not start services during install.\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
    created_policy=1
    "${SUDO[@]}" chmod 755 "$POLICY_RC"
else
    log "keeping the existing $POLICY_RC"
fi

export DEBIAN_FRONTEND=noninteractive
# Bounded waits on the dpkg lock (another apt run, e.g. unattended-upgrades).
APT=(apt-get -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
log "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "${APT[@]}" update
log "apt-get install ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${missing[@]}"

# Check again: a package that apt could not configure would otherwise only show up later.
still_missing=()
for package in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || still_missing+=("$package")
done
((${#still_missing[@]} == 0)) || die "still not installed after apt-get: ${still_missing[*]}"
log "installed: ${missing[*]}"
