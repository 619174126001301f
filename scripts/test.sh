#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing (apt packages, npm
# dependencies), builds, checks that the folders of src/ depend one way, then
# runs every test (unit and integration) with Node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
TESSERA_SETUP_TEST_TOOLS=1 ./scripts/setup.sh
npm run --silent check:deps
npx biome check --diagnostic-level=error .
exec npm test
