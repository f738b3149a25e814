#!/usr/bin/env bash
# The whole test suite: brings up what the tests need when it is not already there, checks types and
# lint, builds, and runs every test. Called by `npm test` and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh
bash scripts/services.sh
npm run --silent typecheck
npm run --silent lint
npm run --silent test:unit
