// The retention extensions (docs/queries.md §Retention: reference, min_occurrences,
// time_window, percentages and the weighted mean) against a deliberately naive reference
// written here: plain loops over a vector of events, persons by union-find over distinct ids
// after every merge, local dates through the date library, 24-hour windows by millisecond
// arithmetic. 240 random seeds; the data has equal timestamps (coarse steps, many events per
// instant), identity merges arriving after the events they merge, several time zones with
// DST changes and local-midnight edges, empty ranges, and a `today` inside the range (so the
// mean leaves out periods that have not begun).
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "core/env.h"
#include "query/operators.h"
#include "reference_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

struct RefEvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::optional<std::string> channel;
  std::string merge_with;  // $anon_distinct_id
};

struct World {
  std::vector<RefEvent> events;
  std::map<std::string, std::string> parent;
  std::string tz;
  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  void Finish() {
    for (auto& e : events)
      if (!e.merge_with.empty()) {
        std::string a = Root(e.did), b = Root(e.merge_with);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
      }
  }
};

int DaysFromCivil(const std::string& d) {
  int y = std::stoi(d.substr(0, 4)), m = std::stoi(d.substr(5, 2)), dd = std::stoi(d.substr(8, 2));
  return static_cast<int>(date::sys_days{date::year{y} / m / dd}.time_since_epoch().count());
}
std::string CivilToString(int days) { return date::format("%F", date::sys_days{date::days{days}}); }

std::string LocalDate(const std::string& tz, int64_t ms) {
  auto z = date::locate_zone(tz);
  auto lt = z->to_local(date::sys_seconds{std::chrono::seconds{ms / 1000 - (ms % 1000 < 0 ? 1 : 0)}});
  return date::format("%F", date::floor<date::days>(lt));
}

std::string PeriodLabel(const std::string& local_date, const std::string& period) {
  if (period == "day") return local_date;
  if (period == "month") return local_date.substr(0, 8) + "01";
  int d = DaysFromCivil(local_date);
  date::weekday wd{date::sys_days{date::days{d}}};
  return CivilToString(d - static_cast<int>((wd.c_encoding() + 6) % 7));
}

// The label of the period k periods after the period labelled `label`.
std::string AddPeriods(const std::string& label, int k, const std::string& period) {
  if (period == "day") return CivilToString(DaysFromCivil(label) + k);
  if (period == "week") return CivilToString(DaysFromCivil(label) + 7 * k);
  date::year_month ym{date::year{std::stoi(label.substr(0, 4))}, date::month{unsigned(std::stoi(label.substr(5, 2)))}};
  ym += date::months{k};
  return date::format("%F", date::sys_days{ym / 1});
}

// k such that local_date lies in period k after the cohort's, for k < limit; -1 otherwise.
int PeriodIndex(const std::string& cohort, const std::string& local_date, const std::string& period, int limit) {
  std::string l = PeriodLabel(local_date, period);
  for (int k = 0; k < limit; k++)
    if (AddPeriods(cohort, k, period) == l) return k;
  return -1;
}

int64_t LocalMidnight(const std::string& tz, const std::string& day) {
  auto z = date::locate_zone(tz);
  date::local_days ld{date::days{DaysFromCivil(day)}};
  auto info = z->get_info(ld);
  if (info.result == date::local_info::nonexistent)
    return date::sys_seconds(info.first.end).time_since_epoch().count() * 1000;
  return (date::sys_seconds{std::chrono::seconds{ld.time_since_epoch() / std::chrono::seconds(1)}} - info.first.offset)
             .time_since_epoch()
             .count() *
         1000;
}

bool ChannelIs(const RefEvent& e, const json& filters) {
  for (auto& f : filters)  // only {"property":"channel","op":"eq","value":X} here
    if (!e.channel || *e.channel != f["value"].get<std::string>()) return false;
  return true;
}

struct Cell {
  uint64_t size = 0;
  std::vector<uint64_t> values;
};

// The answer the documentation describes, computed the slow way.
json NaiveRetention(World& w, const json& q, const std::string& today) {
  const std::string period = q.value("period", "day");
  const int P = q.value("periods", 11);
  const bool first_time = q.value("first_time", true);
  const bool on_or_after = q.value("mode", "exact") == "on_or_after";
  const bool previous = q.value("reference", "total") == "previous";
  const int min_occ = q.value("min_occurrences", 1);
  const bool windows = q.value("time_window", "calendar") == "24h";
  const int64_t W = (period == "week" ? 7 : 1) * 86'400'000LL;
  const std::string from = q["date_from"], to = q["date_to"];
  const std::string se = q["start_event"], re = q.value("return_event", "$any");
  const json all = q.value("filters", json::array());
  const json sf = q.value("start_filters", json::array()), rf = q.value("return_filters", json::array());
  const bool breakdown = q.contains("breakdown");
  struct Item {
    int64_t ts;
    int tag;
    const RefEvent* e;
  };
  std::map<std::string, std::vector<Item>> by_person;
  for (auto& e : w.events) {
    int tag = 0;
    if ((se == "$any" || se == e.event) && ChannelIs(e, all) && ChannelIs(e, sf)) tag |= 1;
    if ((re == "$any" || re == e.event) && ChannelIs(e, all) && ChannelIs(e, rf)) tag |= 2;
    if (tag) by_person[w.Root(e.did)].push_back({e.ts, tag, &e});
  }
  std::map<std::pair<std::string, std::string>, Cell> cohorts;  // (label, breakdown dump)
  for (auto& [person, items] : by_person) {
    // Equal timestamps: start events first, then by tag.
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.ts != b.ts) return a.ts < b.ts;
      int oa = (a.tag & 1) ? 0 : 1, ob = (b.tag & 1) ? 0 : 1;
      return oa != ob ? oa < ob : a.tag < b.tag;
    });
    std::set<std::string> seen_periods;
    for (size_t i = 0; i < items.size(); i++) {
      if (!(items[i].tag & 1)) continue;
      const std::string ld = LocalDate(w.tz, items[i].ts);
      const bool in_range = ld >= from && ld <= to;
      if (first_time && !in_range) break;  // the first-ever start event is outside the range
      if (!in_range) continue;
      const std::string label = PeriodLabel(ld, period);
      if (!seen_periods.insert(label).second) continue;  // not the first start of this period
      std::vector<int> count(static_cast<size_t>(P), 0);
      for (size_t j = i + 1; j < items.size(); j++) {
        if (!(items[j].tag & 2)) continue;
        int k = windows ? static_cast<int>(std::min<int64_t>((items[j].ts - items[i].ts) / W, 100000))
                        : PeriodIndex(label, LocalDate(w.tz, items[j].ts), period, P);
        if (k >= 0 && k < P) count[static_cast<size_t>(k)]++;
      }
      std::string group = breakdown ? (items[i].e->channel ? json(*items[i].e->channel) : json()).dump() : "";
      Cell& c = cohorts[{label, group}];
      if (c.values.empty()) c.values.assign(static_cast<size_t>(P), 0);
      c.size++;
      int last = -1;
      for (int k = 0; k < P; k++)
        if (count[static_cast<size_t>(k)] >= min_occ) last = k;
      for (int k = 0; k < P; k++)
        c.values[static_cast<size_t>(k)] += on_or_after ? (k <= last) : (count[static_cast<size_t>(k)] >= min_occ);
      if (first_time) break;
    }
  }
  if (!breakdown)  // every period of the range, empty ones too
    for (int d = DaysFromCivil(from); d <= DaysFromCivil(to); d++) {
      Cell& c = cohorts[{PeriodLabel(CivilToString(d), period), ""}];
      if (c.values.empty()) c.values.assign(static_cast<size_t>(P), 0);
    }
  json rows = json::object();
  std::vector<double> num(static_cast<size_t>(P), 0.0);
  std::vector<uint64_t> weights(static_cast<size_t>(P), 0);
  for (auto& [key, c] : cohorts) {
    json pct = json::array();
    for (int k = 0; k < P; k++) {
      uint64_t den = (k == 0 || !previous) ? c.size : c.values[static_cast<size_t>(k - 1)];
      if (den == 0) {
        pct.push_back(nullptr);
        continue;
      }
      double p = static_cast<double>(c.values[static_cast<size_t>(k)]) / static_cast<double>(den);
      pct.push_back(p);
      if (AddPeriods(key.first, k, period) <= today) {
        num[static_cast<size_t>(k)] += p * static_cast<double>(c.size);
        weights[static_cast<size_t>(k)] += c.size;
      }
    }
    rows[key.first + "|" + key.second] = {{"size", c.size}, {"values", c.values}, {"percentages", pct}};
  }
  json mean = json::array();
  for (int k = 0; k < P; k++)
    mean.push_back(weights[static_cast<size_t>(k)]
                       ? json(num[static_cast<size_t>(k)] / static_cast<double>(weights[static_cast<size_t>(k)]))
                       : json());
  return {{"cohorts", rows}, {"mean", mean}, {"mean_weights", weights}};
}

void ExpectFractions(const json& got, const json& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i].is_null()) {
      EXPECT_TRUE(got[i].is_null()) << what << " [" << i << "] got " << got[i];
    } else {
      ASSERT_TRUE(got[i].is_number()) << what << " [" << i << "] got " << got[i];
      EXPECT_NEAR(got[i].get<double>(), want[i].get<double>(), 1e-12) << what << " [" << i << "]";
    }
  }
}

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kNames[] = {"s0", "s1", "s2", "x"};

class RetentionExtReference : public ::testing::TestWithParam<int> {};

TEST_P(RetentionExtReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 7);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  World w;
  w.tz = kZones[seed % 5];
  auto tz = TimeZone::Load(w.tz);
  ASSERT_TRUE(tz.ok());
  // Local midnight of 2025-03-06 in the zone, give or take a few minutes: events straddle
  // local day edges; the range spans the 2025-03-09 US and 2025-03-30 EU DST changes.
  const int64_t midnight = LocalMidnight(w.tz, "2025-03-06");
  const int64_t base = midnight - R(0, 3) * 60'000LL;
  // Coarse steps put many events on one instant (ties); 4 h and 23 h steps hit day edges.
  const int64_t step = std::vector<int64_t>{1000, 60'000, 3'600'000, 4 * 3'600'000, 23 * 3'600'000}[seed % 5];
  const int persons = R(2, 20);
  const int nevents = R(20, 250);
  const int64_t span = 40LL * 86'400'000;
  std::vector<RefEvent> sent;
  for (int i = 0; i < nevents; i++) {
    RefEvent e;
    e.uuid = "r" + std::to_string(seed) + "-" + std::to_string(i);
    int p = R(1, persons);
    e.did = (rng() % 3 == 0 ? "anon" : "user") + std::to_string(p);
    e.event = kNames[R(0, 3)];
    e.ts = base + static_cast<int64_t>(R(0, static_cast<int>(span / step))) * step;
    if (rng() % 3) e.channel = std::string(1, static_cast<char>('a' + R(0, 1)));
    if (rng() % 12 == 0) {  // a login merging the anonymous id, often sent late (below)
      e.event = "login";
      e.did = "user" + std::to_string(p);
      e.merge_with = "anon" + std::to_string(p);
    }
    sent.push_back(e);
  }
  // Merges arrive last half of the time: after the events of the ids they merge.
  std::vector<RefEvent> deliveries = sent;
  if (seed % 2 == 0)
    std::stable_partition(deliveries.begin(), deliveries.end(), [](const RefEvent& e) { return e.merge_with.empty(); });
  else
    std::shuffle(deliveries.begin(), deliveries.end(), rng);
  for (int i = 0; i < nevents / 15; i++) deliveries.push_back(sent[rng() % sent.size()]);  // retries
  {
    std::set<std::string> seen;
    for (auto& e : deliveries)
      if (seen.insert(e.uuid).second) w.events.push_back(e);
  }
  w.Finish();

  testing::TempDir dir;
  static NoSyncEnv no_sync;
  StoreOptions so;
  so.background = false;
  so.env = &no_sync;
  so.seal_rows = static_cast<size_t>(R(4, 50));
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t pos = 0;
  while (pos < deliveries.size()) {
    size_t n = static_cast<size_t>(R(1, 50));
    std::vector<Event> batch;
    for (size_t i = pos; i < std::min(deliveries.size(), pos + n); i++) {
      const RefEvent& r = deliveries[i];
      Event e;
      e.uuid = Uuid::FromClientId(r.uuid);
      e.has_uuid = true;
      e.distinct_id = r.did;
      e.event = r.event;
      e.ts_ms = r.ts;
      if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
      if (!r.merge_with.empty()) {
        e.props.push_back({"$anon_distinct_id", PropValue::Str(r.merge_with)});
        e.merge_with.push_back(r.merge_with);
      }
      batch.push_back(std::move(e));
    }
    pos += n;
    ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
    if (R(0, 7) == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
  }
  auto snap = (*store)->Snapshot();
  auto day = [&](int off) { return CivilToString(DaysFromCivil("2025-03-06") + off); };

  for (int t = 0; t < 6; t++) {
    json q{{"kind", "retention"}};
    int a = R(-3, 40), b = a + R(0, 14);
    if (R(0, 9) == 0) a = 60, b = 65;  // an empty range: no events there
    q["date_from"] = day(a);
    q["date_to"] = day(b);
    q["start_event"] = R(0, 4) == 0 ? "$any" : kNames[R(0, 3)];
    q["return_event"] = R(0, 3) == 0 ? "$any" : kNames[R(0, 3)];
    q["period"] = std::vector<std::string>{"day", "day", "week", "month"}[static_cast<size_t>(R(0, 3))];
    q["periods"] = R(1, 9);
    q["first_time"] = R(0, 1) == 1;
    q["mode"] = R(0, 1) ? "exact" : "on_or_after";
    q["reference"] = R(0, 1) ? "total" : "previous";
    q["min_occurrences"] = std::vector<int>{1, 1, 2, 3}[static_cast<size_t>(R(0, 3))];
    if (q["period"] != "month" && R(0, 1)) q["time_window"] = "24h";
    if (R(0, 3) == 0) q["filters"] = json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "a"}}});
    if (R(0, 4) == 0) q["start_filters"] = json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "b"}}});
    if (R(0, 4) == 0) q["return_filters"] = json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "a"}}});
    if (R(0, 3) == 0) {
      q["breakdown"] = "channel";
      q["breakdown_limit"] = 1000;
    }
    // `today` somewhere in or after the range: periods after it leave the mean.
    const std::string today = day(a + R(0, 60));

    auto parsed = ParseRetentionQuery(q);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << " " << q.dump();
    RetentionQuery rq = *parsed;
    rq.today = DaysFromCivil(today);
    auto res = RunRetention(rq, *snap, *tz);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    const json got = ToJson(*res);
    const json want = NaiveRetention(w, q, today);
    const std::string ctx = q.dump() + " today " + today;

    EXPECT_EQ(got["reference"], q["reference"]) << ctx;
    EXPECT_EQ(got["min_occurrences"], q["min_occurrences"]) << ctx;
    EXPECT_EQ(got["time_window"], q.value("time_window", "calendar")) << ctx;
    json got_rows = json::object();
    for (auto& c : got["cohorts"]) {
      std::string key =
          c["date"].get<std::string>() + "|" + (c.contains("breakdown_value") ? c["breakdown_value"].dump() : "");
      got_rows[key] = c;
    }
    ASSERT_EQ(got_rows.size(), want["cohorts"].size()) << ctx << "\n got " << got.dump() << "\n want " << want.dump();
    for (auto& [key, wc] : want["cohorts"].items()) {
      ASSERT_TRUE(got_rows.contains(key)) << key << " " << ctx << "\n got " << got.dump();
      const json& gc = got_rows[key];
      EXPECT_EQ(gc["size"], wc["size"]) << key << " " << ctx;
      EXPECT_EQ(gc["values"], wc["values"]) << key << " " << ctx << "\n want " << want.dump();
      ExpectFractions(gc["percentages"], wc["percentages"], key + " percentages " + ctx);
    }
    ExpectFractions(got["mean"], want["mean"], "mean " + ctx);
    EXPECT_EQ(got["mean_weights"], want["mean_weights"]) << ctx;
  }

  // Through the registry (RunQuery): today is the real one, long after these dates, so every
  // period counts in the mean; the answer carries the same extended fields.
  json q{{"kind", "retention"},    {"date_from", day(0)}, {"date_to", day(20)}, {"start_event", "s0"},
         {"return_event", "$any"}, {"period", "day"},     {"periods", 5},       {"reference", "previous"},
         {"min_occurrences", 2},   {"time_window", "24h"}};
  auto via_registry = RunQuery(q, **store, *tz);
  ASSERT_TRUE(via_registry.ok()) << via_registry.status().ToString();
  const json want = NaiveRetention(w, q, "9999-12-31");
  ExpectFractions((*via_registry)["mean"], want["mean"], "registry mean " + q.dump());
}

INSTANTIATE_TEST_SUITE_P(Seeds, RetentionExtReference, ::testing::Range(0, 240));

// The worked example of docs/queries.md ("24-hour windows, at least twice, relative to the
// previous day"), number for number.
TEST(RetentionExtExample, DocumentedAnswer) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok());
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  std::vector<Event> batch;
  auto add = [&](const char* name, const char* did, const char* local) {
    Event e;
    e.distinct_id = did;
    e.event = name;
    auto ts = ParseIsoTimestamp(local, *tz);
    ASSERT_TRUE(ts.ok());
    e.ts_ms = *ts;
    e.uuid = Uuid::FromClientId(std::string(did) + local + name);
    e.has_uuid = true;
    batch.push_back(std::move(e));
  };
  add("register", "a", "2026-11-10 23:00:00");
  add("page_view", "a", "2026-11-11 08:00:00");
  add("page_view", "a", "2026-11-11 09:00:00");
  add("page_view", "a", "2026-11-12 10:00:00");
  add("register", "b", "2026-11-10 10:00:00");
  add("page_view", "b", "2026-11-10 11:00:00");
  add("page_view", "b", "2026-11-11 12:00:00");
  add("page_view", "b", "2026-11-11 13:00:00");
  add("register", "c", "2026-11-11 09:00:00");
  add("page_view", "c", "2026-11-11 10:00:00");
  ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
  json q = json::parse(R"({"kind": "retention", "start_event": "register", "return_event": "page_view",
      "period": "day", "periods": 4, "date_from": "2026-11-10", "date_to": "2026-11-11",
      "time_window": "24h", "min_occurrences": 2, "reference": "previous"})");
  auto got = RunQuery(q, **store, *tz);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)["cohorts"], json::parse(R"([
      {"date": "2026-11-10", "size": 2, "values": [1, 1, 0, 0], "percentages": [0.5, 1.0, 0.0, null]},
      {"date": "2026-11-11", "size": 1, "values": [0, 0, 0, 0], "percentages": [0.0, null, null, null]}])"));
  EXPECT_EQ((*got)["mean"], json::parse("[0.3333333333333333, 1.0, 0.0, null]"));
  EXPECT_EQ((*got)["mean_weights"], json::parse("[3, 2, 2, 0]"));
  // Calendar days would put a's two morning views in period 1.
  q["time_window"] = "calendar";
  got = RunQuery(q, **store, *tz);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["cohorts"][0]["values"], json::parse("[0, 2, 0, 0]"));
}

// Validation: every new field refused with its name.
TEST(RetentionExtValidation, ErrorsNameTheField) {
  json base{{"kind", "retention"}, {"start_event", "s0"}, {"date_from", "2025-03-01"}, {"date_to", "2025-03-02"}};
  struct Case {
    const char* field;
    json value;
    const char* message;
  };
  const Case cases[] = {
      {"reference", "overall", "reference: unknown reference 'overall' (expected total or previous)"},
      {"reference", 3, "reference: expected a string, got number"},
      {"min_occurrences", 0, "min_occurrences: 0 is out of range [1, 1000]"},
      {"min_occurrences", "2", "min_occurrences: expected an integer, got string"},
      {"time_window", "1d", "time_window: unknown time window '1d' (expected calendar or 24h)"},
  };
  for (const Case& c : cases) {
    json q = base;
    q[c.field] = c.value;
    EXPECT_THAT(ParseRetentionQuery(q), testing::StatusIs(StatusCode::kInvalidArgument, c.message, c.field)) << q;
  }
  json q = base;
  q["period"] = "month";
  q["time_window"] = "24h";
  EXPECT_THAT(
      ParseRetentionQuery(q),
      testing::StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr("need period day or week"), "time_window"));
  q["period"] = "week";
  EXPECT_TRUE(ParseRetentionQuery(q).ok());
}

}  // namespace
}  // namespace ns
