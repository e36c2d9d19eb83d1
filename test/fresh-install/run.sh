#!/usr/bin/env bash
# The package as a user installs it: `npm pack` this repository, install the tarball in an
# empty project with no lockfile (so npm picks the newest versions every range allows: Fastify,
# @fastify/websocket, ws...), then run there, with node:test, docs/testing.md's injectWS
# recipe as it is written and two servers sharing a room through Redis (./cluster.test.mjs).
# Run by .ci/run after the test suite. Needs the repository's node_modules (npm ci: the build
# and the recipe's extraction use them) and Redis on REDIS_URL (default redis://127.0.0.1:6379).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
project="$work/project"
mkdir "$project"

cd "$root"
npm run build --silent
tarball="$work/$(npm pack --ignore-scripts --silent --pack-destination "$work")"
# The recipe is taken out of the docs now, as test/readme.test.ts does, so it cannot drift.
node --import=tsx "$here/recipe.ts" > "$project/recipe.test.mts"
cp "$here/cluster.test.mjs" "$project/"

cd "$project"
echo '{ "name": "fresh-install", "version": "1.0.0", "private": true }' > package.json
npm install --no-package-lock --prefer-online --no-audit --no-fund --loglevel=error "$tarball" fastify ws tsx
npm ls --all fastify @fastify/websocket ws

# node:test prints each test and the totals, and exits non-zero on a failure; each test has
# its own deadline, and this one holds for the whole run.
timeout 120 node --import=tsx --test --test-reporter=spec recipe.test.mts cluster.test.mjs
