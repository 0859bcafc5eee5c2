#!/usr/bin/env bash
# Installs every build and test dependency of Northstar from Debian's packages.
# Idempotent: packages already present are not touched, and apt-get update runs only when needed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libcpp-httplib-dev nlohmann-json3-dev libsimdjson-dev libspdlog-dev libfmt-dev libcli11-dev
  libsqlite3-dev libzstd-dev liblz4-dev libroaring-dev libhowardhinnant-date-dev libtomlplusplus-dev
  libxlsxwriter-dev libargon2-dev libssl-dev zlib1g-dev tzdata libjemalloc-dev
  libxgboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev clang-format-14
  curl python3
)
# Node.js and npm run the real SDK clients of the integration tests (tests/clients). Machines
# of this project's kind come with Node 20; elsewhere Debian's own nodejs/npm are installed.
# They also build the web console (web/, Vite needs Node >= 20.19).
if ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi
# The console's browser tests (web/tests) drive Debian's Chromium headless through
# playwright-core; a CJK font lets its screenshots show the Chinese pages.
PACKAGES+=(chromium fonts-wqy-microhei)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
