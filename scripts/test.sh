#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (apt packages, npm
# dependencies), builds, then runs every test with Node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
TESSERA_SETUP_TEST_TOOLS=1 ./scripts/setup.sh
exec npm test
