// Advertising spend per day, channel and campaign (docs/api.md "Spend"), kept in the
// metadata store. Imports are idempotent: a row replaces the row of the same (date, channel,
// campaign); an import is checked whole before anything is written, and written in one
// transaction. The channels query reads the rows through Source() (a SpendSource).
// Thread-safe: every call is one statement or transaction of the (serialised) MetaDb.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "meta/meta_db.h"
#include "query/spend_source.h"

namespace ns {

// The spend table's migrations (subsystem "spend").
const std::vector<Migration>& SpendMigrations();

// At most this many rows in one import.
constexpr size_t kMaxSpendImportRows = 100000;

// Rows of a JSON import: {"rows": [{"date","channel","campaign"?,"spend","currency"}, ...]}
// or the bare array. Errors name the row and field ("rows[3].spend").
StatusOr<std::vector<SpendRow>> ParseSpendJson(const nlohmann::json& body);
// Rows of a CSV import with a header naming the columns (date, channel, campaign?, spend,
// currency; any order). Errors name the line (the header is line 1) and the column.
StatusOr<std::vector<SpendRow>> ParseSpendCsv(std::string_view text);

struct SpendFilter {
  std::optional<int32_t> from_day, to_day;
  std::string channel;  // "": every channel
  size_t limit = 10000;
};

class SpendStore {
 public:
  static StatusOr<std::unique_ptr<SpendStore>> Open(MetaDb& db);

  // Writes the rows (each replacing the row of its key): {"imported": N, "replaced": M}.
  StatusOr<nlohmann::json> Import(const std::string& project, const std::vector<SpendRow>& rows);
  // {"rows": [...by date, channel, campaign...], "count": N, "truncated": bool}.
  StatusOr<nlohmann::json> List(const std::string& project, const SpendFilter& filter);
  // The project's rows as the query layer reads them.
  std::unique_ptr<SpendSource> Source(const std::string& project);
  // Changes with every import in this process: part of cached answers' keys.
  uint64_t generation() const { return generation_.load(); }

 private:
  explicit SpendStore(MetaDb& db) : db_(db) {}
  MetaDb& db_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace ns
