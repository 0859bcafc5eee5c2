#!/usr/bin/env bash
# The storage facade (docs/architecture.md): outside src/storage/ the code includes only the
# store's interface (event_store.h) and its read types (block.h, event.h, event_dict.h,
# person_table.h, maintenance_runner.h, column_cache.h), never a format's internals. Tests and fuzz targets
# of storage itself may.
set -euo pipefail
src=$1/src
hits=$(grep -rn --include='*.cc' --include='*.h' -E '#include "storage/(wal|segment|identity|binary_io|event_store_impl)\.h"' "$src" \
  | grep -v "^$src/storage/" || true)
if [ -n "$hits" ]; then
  echo "storage internals included outside src/storage/:"
  echo "$hits"
  exit 1
fi
echo "storage facade: ok"
