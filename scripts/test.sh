#!/usr/bin/env bash
# test.sh: set everything up and run the whole test suite (the README's second command; all of CI).
#
# Installs missing Debian packages, starts the project's own RabbitMQ and PostgreSQL on loopback
# (scripts/services.sh), builds with warnings as errors, checks formatting, and runs every test.
# The integration tests talk to those real services: if one is missing they fail, they never skip.
# Safe to run twice.
set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
scripts/services.sh start
eval "$(scripts/services.sh env)"

echo "test: building (warnings are errors in the project's targets)" >&2
swift build --build-tests

echo "test: checking formatting (swift format lint --strict; generated code excluded)" >&2
mapfile -t sources < <(git ls-files -- 'Sources/*.swift' 'Tests/*.swift' | grep -v '/Generated/')
swift format lint --strict --parallel "${sources[@]}"

# The reconnection tests close every broker connection, stop the broker application and raise a
# memory alarm; the service fault-injection scenarios also restart PostgreSQL: they run on their
# own, after everything else, so they disturb no other test. Each disruptive suite gets its own
# `swift test`: in one run Swift Testing runs the two suites at the same time, and one's broker stop
# breaks the other's setup.
disruptive=(ReconnectTests ServiceFaultTests)
echo "test: running the suite" >&2
swift test --skip-build --skip "$(IFS='|'; echo "${disruptive[*]}")"
for suite in "${disruptive[@]}"; do
    echo "test: running the disruptive $suite on its own" >&2
    swift test --skip-build --filter "$suite"
done
