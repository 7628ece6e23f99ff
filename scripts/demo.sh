#!/usr/bin/env bash
# demo.sh: set everything up and run the main job (the README's first command).
#
# Installs missing Debian packages, starts the project's own RabbitMQ and PostgreSQL on loopback,
# builds jsm-migrate, declares the broker topology and runs `jsm-migrate demo`: sample identities
# through the real broker, worker processes' rules and the aggregator, reconciled at the end.
# Extra arguments go to `jsm-migrate demo` (try --help). Safe to run twice.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
scripts/services.sh start
eval "$(scripts/services.sh env)"

echo "demo: building jsm-migrate" >&2
swift build --product jsm-migrate
bin=$(swift build --show-bin-path)/jsm-migrate

"$bin" broker declare
"$bin" demo --purge "$@"
