#!/usr/bin/env bash
# Builds the web console (web/) into web/dist, where `northstar serve` finds it (beside the
# binary's build directory, or --console-dir). npm ci runs only when package-lock.json changed
# and vite only when a source file did, so `make run` / `make test` stay quick after the first.
# Packages come from the npm registry through the committed lockfile; nothing at run time.
set -euo pipefail
cd "$(dirname "$0")/../web"

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build_console: '$tool' is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  { echo "build_console: Node.js >= 20.19 is needed (found $(node --version))" >&2; exit 1; }

lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.ns-lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
  echo "build_console: npm ci (web/package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.ns-lock-sha256
fi

# Everything the build reads, hashed: a rebuild only when one of them changed.
src_sum=$( (find src public index.html vite.config.ts tsconfig.json env.d.ts package-lock.json -type f -print0 2>/dev/null |
  sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f dist/index.html ] && [ "$(cat node_modules/.ns-build-sha256 2>/dev/null)" = "$src_sum" ]; then
  echo "build_console: web/dist is up to date"
  exit 0
fi
echo "build_console: vite build"
npm run --silent build
node scripts/size.mjs
echo "$src_sum" > node_modules/.ns-build-sha256
