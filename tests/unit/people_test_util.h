// What the people layer's naive reference tests share (cohort_reference_test,
// person_models_reference_test, tiers_tags_reference_test): local days through the date
// library (not ns::TimeZone, which is under test), fast throw-away stores (no fsync, in
// memory), numeric text as docs/queries.md defines it, and the naive RFM pieces (order
// de-duplication, rank quintiles, the eight segments) written from docs/people.md "RFM".
// Each test keeps its own world (events, union-find, settings); these are the parts that
// are the same in all three.
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
#include <regex>
#include <string>
#include <vector>

#include "core/env.h"
#include "storage/event.h"

namespace ns::people_test {

// ---- local days with the date library ----

// The local day (days since 1970-01-01) of instant `ms` in zone `z`.
inline int LocalDay(const date::time_zone* z, int64_t ms) {
  auto lt = z->to_local(date::sys_time<std::chrono::milliseconds>{std::chrono::milliseconds{ms}});
  return static_cast<int>(date::floor<date::days>(lt).time_since_epoch().count());
}

inline std::string DayString(int days) { return date::format("%F", date::sys_days{date::days{days}}); }

// "YYYY-MM-DD" -> days since 1970-01-01.
inline int DaysFromCivil(const std::string& d) {
  int y = std::stoi(d.substr(0, 4)), m = std::stoi(d.substr(5, 2)), dd = std::stoi(d.substr(8, 2));
  return static_cast<int>(date::sys_days{date::year{y} / m / dd}.time_since_epoch().count());
}

// First instant of a local day (the end of a DST gap if midnight does not exist).
inline int64_t LocalMidnight(const date::time_zone* z, int day) {
  date::local_days ld{date::days{day}};
  auto info = z->get_info(ld);
  if (info.result == date::local_info::nonexistent)
    return date::sys_seconds(info.first.end).time_since_epoch().count() * 1000;
  return (date::sys_seconds{ld.time_since_epoch()} - info.first.offset).time_since_epoch().count() * 1000;
}

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

// ---- throw-away stores ----

// The POSIX file system without fsync: durability is not under test here, and hundreds of
// stores each syncing every append would spend the test's time waiting on the disk.
class NoSyncEnv : public Env {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return Wrap(base_->NewWritableFile(path));
  }
  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return Wrap(base_->NewAppendableFile(path));
  }
  StatusOr<std::string> ReadFile(const std::string& path) override { return base_->ReadFile(path); }
  StatusOr<MappedFile> MapFile(const std::string& path) override { return base_->MapFile(path); }
  Status RenameFile(const std::string& from, const std::string& to) override { return base_->RenameFile(from, to); }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  Status CreateDirs(const std::string& dir) override { return base_->CreateDirs(dir); }
  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override { return base_->ListDir(dir); }
  Status SyncDir(const std::string&) override { return Status::OK(); }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }

 private:
  class File : public WritableFile {
   public:
    explicit File(std::unique_ptr<WritableFile> f) : f_(std::move(f)) {}
    Status Append(std::string_view data) override { return f_->Append(data); }
    Status Sync() override { return Status::OK(); }
    Status Truncate(uint64_t size) override { return f_->Truncate(size); }
    Status Close() override { return f_->Close(); }
    uint64_t size() const override { return f_->size(); }

   private:
    std::unique_ptr<WritableFile> f_;
  };
  static StatusOr<std::unique_ptr<WritableFile>> Wrap(StatusOr<std::unique_ptr<WritableFile>> f) {
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(*f)));
  }
  Env* base_ = Env::Default();
};

// A temporary directory in memory (/dev/shm) where there is one: creating and removing the
// thousands of segment files of these stores costs more on ext4 than all the rest.
class MemTempDir {
 public:
  MemTempDir() {
    std::error_code ec;
    std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "nstest-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    path_ = tmpl;
  }
  ~MemTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  MemTempDir(const MemTempDir&) = delete;
  MemTempDir& operator=(const MemTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace ns::people_test
