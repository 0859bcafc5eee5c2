// Advertising spend as the channels query sees it: rows of (local day, channel, campaign,
// amount, currency). The spend store (people/spend_store.h) keeps them in the metadata store
// and implements SpendSource; the operator only reads rows, so query/ does not depend on
// meta/ or server/ (as with CohortSource).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace ns {

struct SpendRow {
  int32_t day = 0;       // local day in the project's time zone (days since 1970-01-01)
  std::string channel;   // as the acquisition channel reads (case-sensitive)
  std::string campaign;  // "" when the row is for the whole channel
  double spend = 0;
  std::string currency;  // ISO 4217 code, e.g. "CNY"
};

class SpendSource {
 public:
  virtual ~SpendSource() = default;
  // The rows with from_day <= day <= to_day, in any order.
  virtual StatusOr<std::vector<SpendRow>> Rows(int32_t from_day, int32_t to_day) const = 0;
};

// Spend given as a list (tests, the CLI).
class FixedSpendSource : public SpendSource {
 public:
  explicit FixedSpendSource(std::vector<SpendRow> rows) : rows_(std::move(rows)) {}
  StatusOr<std::vector<SpendRow>> Rows(int32_t from_day, int32_t to_day) const override {
    std::vector<SpendRow> out;
    for (const SpendRow& r : rows_)
      if (r.day >= from_day && r.day <= to_day) out.push_back(r);
    return out;
  }

 private:
  std::vector<SpendRow> rows_;
};

}  // namespace ns
