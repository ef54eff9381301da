#!/usr/bin/env bash
# `npm test`: set-up, type-check, then every test file (or those given as arguments) with Node's own
# runner, in two lanes (test/lanes.mjs): the files that boot QEMU guests one at a time, the rest one at
# a time beside them. Many files start real servers and guests on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh --quiet
npx --no-install tsc --noEmit -p .
exec node test/lanes.mjs "$@"
