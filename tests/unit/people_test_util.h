// What the people layer's naive reference tests share (cohort_reference_test,
// person_models_reference_test, tiers_tags_reference_test): local days through the date
// library (not ns::TimeZone, which is under test), fast throw-away stores (no fsync, in
// memory), numeric text as docs/queries.md defines it, and the naive RFM pieces (order
// de-duplication, rank quintiles, the eight segments) written from docs/people.md "RFM".
// Each test keeps its own world (events, union-find, settings); the parts every reference test
// shares are in reference_test_util.h, included here.
#pragma once

#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/uuid.h"
#include "reference_test_util.h"  // local days, random stores (the parts every reference test shares)
#include "storage/event.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

// ---- numbers ----

// A number, or text that is entirely a finite decimal number ("12", "-0.5", "1e3"; not
// "nan", "inf", " 1", "+1", "0x10"), as docs/queries.md says; written with a regular
// expression, apart from the code's from_chars.
inline bool NaiveNumber(const PropValue& v, double* out) {
  if (v.kind == PropValue::kNum) {
    *out = v.num;
    return true;
  }
  if (v.kind != PropValue::kStr) return false;
  static const std::regex kDecimal(R"(-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)");
  if (!std::regex_match(v.str, kDecimal)) return false;
  const double x = std::strtod(v.str.c_str(), nullptr);
  if (!std::isfinite(x)) return false;
  *out = x;
  return true;
}

// ---- naive RFM (docs/people.md "RFM") ----

// Facts of one person as of a day.
struct NFacts {
  int64_t first = std::numeric_limits<int64_t>::max(), last = std::numeric_limits<int64_t>::min();
  uint32_t events = 0, orders = 0;
  double monetary = 0;
  int64_t last_pay = std::numeric_limits<int64_t>::min();
};

// Facts built event by event: every event before the as-of end through Event, each payment
// also through Payment. A payment with an order id counts once per (person, order), its
// amount the largest of the order's; one without is an order by itself.
template <typename Person>
class NaiveFactsBuilder {
 public:
  void Event(const Person& p, int64_t ts) {
    NFacts& f = facts_[p];
    f.first = std::min(f.first, ts);
    f.last = std::max(f.last, ts);
    f.events++;
  }
  // `order`: "" when the payment has no order id.
  void Payment(const Person& p, int64_t ts, double amount, const std::string& order) {
    NFacts& f = facts_[p];
    f.last_pay = std::max(f.last_pay, ts);
    if (order.empty()) {
      f.orders++;
      f.monetary += amount;
      return;
    }
    auto [it, fresh] = orders_[p].try_emplace(order, amount);
    if (!fresh) it->second = std::max(it->second, amount);
  }
  std::map<Person, NFacts> Finish() {
    for (auto& [p, os] : orders_)
      for (auto& [o, amount] : os) {
        facts_[p].orders++;
        facts_[p].monetary += amount;
      }
    orders_.clear();
    return std::move(facts_);
  }

 private:
  std::map<Person, NFacts> facts_;
  std::map<Person, std::map<std::string, double>> orders_;
};

// The segment keys by index (r_high << 2 | f_high << 1 | m_high), as rfm.cc documents them.
inline constexpr const char* kSegmentKeys[8] = {"hibernating", "cant_lose", "need_attention", "at_risk_loyal",
                                                "promising",   "potential", "loyal",          "champions"};

struct NaiveRfmScores {
  std::vector<std::array<int, 3>> scores;  // r, f, m per payer, 1..5
  double means[3] = {0, 0, 0};
  std::vector<int> segments;  // index into kSegmentKeys
};

// Fills means and segments from scores.
inline void NaiveRfmSegments(NaiveRfmScores& s) {
  const size_t n = s.scores.size();
  for (int k = 0; k < 3; k++) {
    double sum = 0;
    for (const auto& x : s.scores) sum += x[static_cast<size_t>(k)];
    s.means[k] = n ? sum / static_cast<double>(n) : 0;
  }
  s.segments.clear();
  for (const auto& x : s.scores)
    s.segments.push_back((x[0] > s.means[0] ? 4 : 0) | (x[1] > s.means[1] ? 2 : 0) | (x[2] > s.means[2] ? 1 : 0));
}

// Rank quintiles of the payers' (recency in days, orders, monetary): F or M scores
// 1 + floor(5 * #(values < x) / N), R 1 + floor(5 * #(recencies > x) / N); a letter is high
// when its score is strictly above the mean score (the sum, then one division).
inline NaiveRfmScores NaiveQuintileRfm(const std::vector<std::array<double, 3>>& payers) {
  NaiveRfmScores out;
  const size_t n = payers.size();
  for (const auto& x : payers) {
    size_t r_worse = 0, f_less = 0, m_less = 0;
    for (const auto& o : payers) {
      r_worse += o[0] > x[0];
      f_less += o[1] < x[1];
      m_less += o[2] < x[2];
    }
    out.scores.push_back({1 + static_cast<int>(5 * r_worse / n), 1 + static_cast<int>(5 * f_less / n),
                          1 + static_cast<int>(5 * m_less / n)});
  }
  NaiveRfmSegments(out);
  return out;
}

}  // namespace ns
