#!/usr/bin/env bash
# Compiles the TypeScript sources to dist/ (bin/ runs it when it is at least as new as every source;
# otherwise bin/ runs the sources through tsx), then bundles each command with its dependencies into
# one CommonJS file, dist/bundle/lbvm.cjs and dist/bundle/lbm.cjs: resolving and compiling a few
# hundred small modules cost a command about a quarter of a second at every start, and one CommonJS
# script is what bin/code-cache.js can hand V8 with the code it compiled last time (Node 20 keeps no
# compile cache for ES modules). pino stays outside the bundle (its transports load files by path).
# Quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=dist/.build-stamp
if [ -f "$stamp" ] && [ -f dist/bundle/lbm.cjs ] && [ -f dist/bundle/lbvm.cjs ] &&
  [ -z "$(find src collectors policies -name '*.ts' -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
npx --no-install tsc -p tsconfig.build.json
rm -rf dist/bundle
# import.meta.url (src/util/dirs.ts finds the package root from it; createRequire takes it) becomes
# the bundle's own file URL.
npx --no-install esbuild dist/src/cli/lbvm.js dist/src/cli/lbm.js \
  --bundle --format=cjs --platform=node --target=node20 --outdir=dist/bundle --out-extension:.js=.cjs \
  --external:pino --external:pino-pretty --external:thread-stream --log-level=warning \
  --define:import.meta.url=__lbvmMetaUrl \
  --banner:js="const __lbvmMetaUrl = require('node:url').pathToFileURL(__filename).href;"
touch "$stamp"
