#!/usr/bin/env bash
# The test command: installs missing test dependencies, then runs every test of the workspace
# (unit tests and the integration tests that start the real binaries) and the fuzzing smoke
# run (scripts/fuzz-smoke.sh: each fuzz target briefly), and ends with one summary line over
# all test binaries. A failed fuzz target fails the script (after the summary line).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
fuzz=0
scripts/fuzz-smoke.sh || fuzz=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$fuzz"
