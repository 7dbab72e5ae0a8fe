#!/usr/bin/env bash
# Fails when web/dist/ is not what `npm run build` makes from the sources now:
# rebuilds into a temporary folder and compares. Needs `npm ci --prefix web`.
set -euo pipefail
cd "$(dirname "$0")"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
node build.mjs "$fresh"
if ! diff -r "$fresh" dist >/dev/null; then
  diff -r "$fresh" dist | head -20 || true
  echo "web/dist/ is out of date: run 'npm run build --prefix web' and commit web/dist/" >&2
  exit 1
fi
echo "web/dist/ is up to date"
