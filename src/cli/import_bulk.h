// The bulk path of `northstar import` (issue 15): a CSV or NDJSON file is split at record
// boundaries into pieces parsed on several threads straight into columns (BulkRows), which
// the store's BulkLoader dedups, resolves and writes one segment per day. The per-event path
// (Event objects through EventStore::Append) stays in commands.cc for standard input, for
// --server, and behind the hidden --per-event flag that tests compare the two with.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "ingest/native_parser.h"
#include "storage/event.h"
#include "storage/event_store.h"

namespace ns {

// What a CSV column maps to (--map COLUMN=FIELD, or the column's own name).
struct ColumnMap {
  enum Kind { kSkip, kEvent, kDistinctId, kTimestamp, kUuid, kProperty, kPersonProperty };
  Kind kind = kProperty;
  std::string name;
};
StatusOr<ColumnMap> ParseTarget(const std::string& field);
// A CSV value is a number if it reads whole as one, except "+1" and "007" (kept as text).
bool CsvNumber(std::string_view s, double* out);
PropValue CsvValue(const std::string& s);

struct BulkImportRequest {
  std::string path;         // a regular file (mapped into memory)
  size_t data_offset = 0;   // CSV: where the rows start (after the header)
  size_t lines_before = 0;  // CSV: the header's lines (the first row's line is this + 1)
  // CSV only.
  std::vector<std::string> header;
  std::vector<ColumnMap> cols;
  bool has_event_column = false;
  std::string event_name;  // --event
  std::string time_unit = "auto";
  const TimeZone* tz = nullptr;
  int64_t now_ms = 0;
  IngestLimits limits;
  EventStore* store = nullptr;  // null: --dry-run (parse and validate only)
  // Called in file order on the calling thread.
  std::function<void(size_t line, const std::string& message)> report;
  std::function<void(uint64_t bytes, uint64_t events)> progress;
  size_t piece_bytes = 32u << 20;
  int threads = 2;
  size_t spill_rows = size_t{1} << 24;  // BulkLoader::Options
};

struct BulkImportResult {
  uint64_t lines = 0;  // CSV rows / NDJSON lines read
  uint64_t accepted = 0, duplicates = 0;
  uint64_t bytes = 0;
};

// Errors are the import's fatal ones (the store failed); rejected rows go to report().
StatusOr<BulkImportResult> BulkImportCsv(const BulkImportRequest& r);
StatusOr<BulkImportResult> BulkImportNdjson(const BulkImportRequest& r);

}  // namespace ns
