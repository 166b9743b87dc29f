#!/usr/bin/env bash
# The test command: installs missing test dependencies, then runs every test of the workspace
# (unit tests and the integration tests that start the real binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
cargo test --workspace
