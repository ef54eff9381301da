#!/usr/bin/env bash
# `npm test`: set-up, type-check, then every test file (or those given as arguments) with Node's
# own runner. Files run one at a time: many start real servers and QEMU guests on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh --quiet
npx --no-install tsc --noEmit -p .
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
fi
# --test-force-exit: a file whose before() failed can leave a server handle open (its after() never
# reached it); the file's process still ends once its tests are done, and the servers it started die
# with it (they run under setpriv --pdeathsig, src/util/processes.ts) instead of holding npm test for ever.
exec node --import tsx --test --test-concurrency=1 --test-force-exit --test-reporter=spec "${files[@]}"
