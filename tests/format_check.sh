#!/usr/bin/env bash
# C++ sources follow .clang-format (Google-based, 120 columns). Fix with:
#   clang-format -i $(git ls-files 'src/*.cc' 'src/*.h' 'tests/unit/*.cc' 'tests/unit/*.h' 'bench/*.cc' 'fuzz/*.cc' 'fuzz/*.h')
set -euo pipefail
cd "$1"
cf=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$cf" ] || { echo "clang-format is not installed (scripts/setup.sh installs clang-format)"; exit 1; }
files=$(find src tests/unit bench fuzz -name '*.cc' -o -name '*.h' | sort)
"$cf" --dry-run --Werror $files
echo "format: ok ($(echo "$files" | wc -l) files)"
