#!/usr/bin/env bash
# Compiles the TypeScript sources to dist/ (bin/ runs it when it is at least as new as every source;
# otherwise bin/ runs the sources through tsx), then bundles the two commands with their
# dependencies into dist/bundle/ (one file per command and per lazily loaded part): resolving and
# compiling a few hundred small modules cost a command about a quarter of a second at every start.
# pino stays outside the bundle (its transports load files by path). Quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=dist/.build-stamp
if [ -f "$stamp" ] && [ -d dist/bundle ] && [ -z "$(find src collectors policies -name '*.ts' -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
npx --no-install tsc -p tsconfig.build.json
rm -rf dist/bundle
npx --no-install esbuild dist/src/cli/lbvm.js dist/src/cli/lbm.js \
  --bundle --splitting --format=esm --platform=node --target=node20 --outdir=dist/bundle \
  --external:pino --external:pino-pretty --external:thread-stream --log-level=warning \
  --banner:js="import { createRequire as __lbvmCreateRequire } from 'node:module'; const require = __lbvmCreateRequire(import.meta.url);"
touch "$stamp"
