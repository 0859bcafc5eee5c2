// EvaluateCohort against a deliberately naive evaluator written here from the documented
// semantics (cohort_definition.h, cohort_eval.cc, person_facts.cc, rfm.cc, docs/queries.md
// "Filters"), on many random seeds: random stores (equal timestamps, local-midnight edges,
// events after `today`, identity merges after the fact), random definitions sent as JSON
// text covering every condition kind nested up to depth 3. The naive side walks every row of
// the snapshot, maps its distinct id to a person through the snapshot's PersonTable and
// works on local days from the date library, not TimeZone. Plus hand-written cases: field
// errors and cycles refused with their path (PeopleService).
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "core/env.h"
#include "people/cohort_eval.h"
#include "people/people_service.h"
#include "people_test_util.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/person_table.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::_;
using ::testing::HasSubstr;
using testing::StatusIs;

// ---- filters, from the table of docs/queries.md ----

std::string NumText(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);  // test values are whole or halves
  return buf;
}

std::string TextOf(const PropValue& v) { return v.kind == PropValue::kNum ? NumText(v.num) : v.str; }
std::string TextOf(const json& v) { return v.is_number() ? NumText(v.get<double>()) : v.get<std::string>(); }

bool Equals(const PropValue& p, const json& v) {
  double x, y;
  if (v.is_number()) return NaiveNumber(p, &x) && x == v.get<double>();
  if (p.kind == PropValue::kNum && NaiveNumber(PropValue::Str(v.get<std::string>()), &y)) return p.num == y;
  return TextOf(p) == TextOf(v);
}

bool PassFilter(const json& f, const PropValue* p) {
  const std::string op = f.value("op", "eq");
  if (op == "is_set") return p != nullptr;
  if (op == "is_not_set") return p == nullptr;
  if (op == "neq") return !p || !Equals(*p, f["value"]);
  if (op == "not_in") {
    if (!p) return true;
    for (const auto& v : f["value"])
      if (Equals(*p, v)) return false;
    return true;
  }
  if (op == "not_contains") return !p || TextOf(*p).find(TextOf(f["value"])) == std::string::npos;
  if (!p) return false;
  if (op == "eq") return Equals(*p, f["value"]);
  if (op == "in") {
    for (const auto& v : f["value"])
      if (Equals(*p, v)) return true;
    return false;
  }
  if (op == "contains") return TextOf(*p).find(TextOf(f["value"])) != std::string::npos;
  double x;
  if (!NaiveNumber(*p, &x)) return false;
  const double v = f["value"].get<double>();
  if (op == "gt") return x > v;
  if (op == "gte") return x >= v;
  if (op == "lt") return x < v;
  if (op == "lte") return x <= v;
  ADD_FAILURE() << "op " << op;
  return false;
}

// ---- the naive world: every row of the snapshot, by person ----

struct Row {
  uint32_t person;
  int64_t ts;
  int day;  // local day
  std::string event;
  std::vector<Property> props;
  const PropValue* Prop(std::string_view k) const {
    for (const auto& p : props)
      if (p.key == k) return &p.value;
    return nullptr;
  }
};

struct Naive {
  const StoreSnapshot* snap = nullptr;
  const date::time_zone* zone = nullptr;
  PeopleSettings settings;
  int today = 0;
  std::vector<Row> rows;
  std::map<uint32_t, std::vector<const Row*>> by_person;  // in row order
  std::set<uint32_t> universe;
  std::map<int64_t, std::set<uint32_t>> cohorts;  // earlier definitions by id
  std::map<uint32_t, std::string> segment, stage;

  void Load() {
    const PersonTable& pt = *snap->persons;
    for (uint32_t d = 0; d < pt.size(); d++)
      if (pt.PersonOf(d) == d) universe.insert(d);
    for (const auto& b : snap->blocks)
      for (size_t i = 0; i < b->size(); i++) {
        Row r;
        r.person = pt.PersonOf(b->did()[i]);
        r.ts = b->ts()[i];
        r.day = LocalDay(zone, r.ts);
        r.event = snap->events->Name(b->ev()[i]);
        b->RowProps(i, &r.props);
        rows.push_back(std::move(r));
      }
    for (const Row& r : rows) by_person[r.person].push_back(&r);
    Models();
  }

  const PropValue* PersonProp(uint32_t p, const std::string& key) const { return snap->persons->Prop(p, key); }

  bool StepMatches(const json& step, const Row& r) const {
    const std::string ev = step["event"];
    if (ev != "$any" && ev != r.event) return false;
    for (const auto& f : step.value("filters", json::array())) {
      std::string prop = f["property"];
      const PropValue* v = prop.rfind("person.", 0) == 0 ? PersonProp(r.person, prop.substr(7)) : r.Prop(prop);
      if (!PassFilter(f, v)) return false;
    }
    return true;
  }

  // The local days a condition covers: last N days end with today; dates are inclusive.
  bool InRange(const json& c, int day) const {
    if (c.contains("last_days")) return day >= today - c["last_days"].get<int>() + 1 && day <= today;
    if (c.contains("date_from") && day < DaysFromCivil(c["date_from"])) return false;
    if (c.contains("date_to") && day > DaysFromCivil(c["date_to"])) return false;
    return true;
  }

  std::set<uint32_t> Eval(const json& c) const {
    const std::string type = c.value("type", "group");
    std::set<uint32_t> out;
    if (type == "group") {
      const bool any = c.value("op", "and") == "or";
      if (!any) out = universe;
      for (const auto& sub : c["conditions"]) {
        std::set<uint32_t> s = Eval(sub), r;
        if (any) {
          out.insert(s.begin(), s.end());
        } else {
          std::set_intersection(out.begin(), out.end(), s.begin(), s.end(), std::inserter(r, r.end()));
          out = r;
        }
      }
      return out;
    }
    for (uint32_t p : universe) {
      static const std::vector<const Row*> kNone;
      auto it = by_person.find(p);
      const std::vector<const Row*>& mine = it == by_person.end() ? kNone : it->second;
      if (PersonIn(c, type, p, mine)) out.insert(p);
    }
    return out;
  }

  bool PersonIn(const json& c, const std::string& type, uint32_t p, const std::vector<const Row*>& mine) const {
    if (type == "performed" || type == "not_performed") {
      int64_t n = 0;
      for (const Row* r : mine) n += StepMatches(c, *r) && InRange(c, r->day);
      if (type == "not_performed") return n == 0;
      const json cnt = c.value("count", json{{"op", "gte"}, {"value", 1}});
      const std::string op = cnt.value("op", "gte");
      const int64_t want = cnt["value"];
      return op == "gte" ? n >= want : op == "lte" ? n <= want : n == want;
    }
    if (type == "first_performed") {
      const Row* first = nullptr;
      for (const Row* r : mine)
        if (StepMatches(c, *r) && (!first || r->ts < first->ts)) first = r;
      return first && InRange(c, first->day);
    }
    if (type == "sequence") return Sequence(c, mine);
    if (type == "property") {
      std::string prop = c["property"];
      if (prop.rfind("person.", 0) == 0) prop = prop.substr(7);
      return PassFilter(c, PersonProp(p, prop));
    }
    if (type == "cohort") return cohorts.at(c["id"].get<int64_t>()).count(p) != c.value("negate", false);
    if (type == "rfm_segment") return segment.count(p) && segment.at(p) == c["segment"];
    if (type == "lifecycle") return stage.count(p) && stage.at(p) == c["stage"];
    ADD_FAILURE() << "type " << type;
    return false;
  }

  // Rows in time order, rows at one instant in step order (the row matching the earliest
  // step first, then by the set of steps it matches); then: is there a subsequence doing
  // step 0, 1, ... with its last row within the window of its first? From each start the
  // earliest next match is the best, so a greedy walk per start decides.
  bool Sequence(const json& c, const std::vector<const Row*>& mine) const {
    const auto& steps = c["steps"];
    const size_t k = steps.size();
    const int64_t window = c.value("window_seconds", int64_t{14 * 86400}) * 1000;
    struct T {
      int64_t ts;
      uint32_t mask;
    };
    std::vector<T> tl;
    for (const Row* r : mine) {
      if (!InRange(c, r->day)) continue;
      uint32_t m = 0;
      for (size_t s = 0; s < k; s++)
        if (StepMatches(steps[s], *r)) m |= 1u << s;
      if (m) tl.push_back({r->ts, m});
    }
    std::sort(tl.begin(), tl.end(), [](const T& a, const T& b) {
      if (a.ts != b.ts) return a.ts < b.ts;
      if (__builtin_ctz(a.mask) != __builtin_ctz(b.mask)) return __builtin_ctz(a.mask) < __builtin_ctz(b.mask);
      return a.mask < b.mask;
    });
    for (size_t i = 0; i < tl.size(); i++) {
      if (!(tl[i].mask & 1)) continue;
      size_t s = 1, j = i + 1;
      for (; j < tl.size() && s < k; j++)
        if (tl[j].mask & (1u << s)) {
          if (tl[j].ts - tl[i].ts > window) break;
          s++;
        }
      if (s == k) return true;
    }
    return false;
  }

  // RFM (rfm.cc top comment) and lifecycle (person_facts.cc) as of today, from the rows.
  void Models() {
    NaiveFactsBuilder<uint32_t> builder;
    for (const Row& r : rows) {
      if (r.day > today) continue;  // facts count rows before the end of today
      builder.Event(r.person, r.ts);
      if (r.event != settings.pay_event) continue;
      double a = 0;
      if (const PropValue* v = r.Prop(settings.amount_property); !v || !NaiveNumber(*v, &a)) a = 0;
      const PropValue* o = r.Prop(settings.order_property);
      builder.Payment(r.person, r.ts, a, o ? TextOf(*o) : "");
    }
    const std::map<uint32_t, NFacts> facts = builder.Finish();
    for (const auto& [p, f] : facts) {
      const int first = LocalDay(zone, f.first), idle = today - LocalDay(zone, f.last);
      stage[p] = today - first < settings.new_days ? "new"
                 : idle < settings.active_days     ? "active"
                 : idle < settings.churn_days      ? "silent"
                                                   : "churned";
    }
    std::vector<uint32_t> payers;
    std::vector<std::array<double, 3>> values;
    for (const auto& [p, f] : facts)
      if (f.orders) {
        payers.push_back(p);
        values.push_back({static_cast<double>(today - LocalDay(zone, f.last_pay)), double(f.orders), f.monetary});
      }
    const NaiveRfmScores scored = NaiveQuintileRfm(values);
    for (size_t i = 0; i < payers.size(); i++) segment[payers[i]] = kSegmentKeys[scored.segments[i]];
  }
};

// ---- random stores and definitions ----

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "Asia/Shanghai", "UTC"};
const char* kEvents[] = {"view", "cart", "pay", "share", "login"};
const char* kPlans[] = {"pro", "free", "Pro"};
const char* kCities[] = {"Shanghai", "Beijing", "shenzhen"};

class CohortReference : public ::testing::TestWithParam<int> {};

TEST_P(CohortReference, MatchesNaive) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 104729 + 7);
  std::mt19937_64& rng = R.rng;
  const std::string zone_name = kZones[seed % 4];
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());
  const date::time_zone* zone = date::locate_zone(zone_name);
  // Fixed, not the wall clock; New York's DST change (2025-03-09) lies inside the data.
  const int today = DaysFromCivil("2025-03-20");

  // Instants: local midnights and the millisecond before them, a coarse grid (collisions),
  // and a small pool reused so that rows of one person share timestamps.
  std::vector<int64_t> pool;
  auto instant = [&]() -> int64_t {
    if (!pool.empty() && R(0, 9) < 4) return pool[rng() % pool.size()];
    // Recent days, and older ones around the lifecycle's default edges (few days, so few
    // segment files: a flush writes one per UTC day).
    static const int kOld[] = {8, 10, 20, 29, 30, 31, 45, 89, 90, 91, 120};
    const int day = R(0, 1) ? today - R(0, 14) : today - kOld[R(0, 10)];
    const int d = R(0, 19) == 0 ? today + R(1, 2) : day;  // a few after today
    int64_t t = LocalMidnight(zone, d);
    switch (R(0, 3)) {
      case 0: break;
      case 1: t -= 1; break;
      default: t += R(0, 23) * 3'600'000LL + R(0, 3) * 900'000LL;
    }
    pool.push_back(t);
    return t;
  };
  const int persons = R(3, 24);
  auto did = [&](int p) { return (R(0, 2) == 0 ? "a" : "u") + std::to_string(p); };
  std::vector<Event> events;
  int uuid = 0;
  auto base_event = [&](const std::string& d, const std::string& name) {
    Event e;
    e.uuid = Uuid::FromClientId("c" + std::to_string(seed) + "-" + std::to_string(uuid++));
    e.has_uuid = true;
    e.distinct_id = d;
    e.event = name;
    e.ts_ms = instant();
    return e;
  };
  const int nevents = R(40, 260);
  for (int i = 0; i < nevents; i++) {
    Event e = base_event(did(R(1, persons)), kEvents[R(0, 4)]);
    if (R(0, 3)) e.props.push_back({"channel", PropValue::Str(std::string(1, static_cast<char>('a' + R(0, 2))))});
    if (e.event == "pay" || R(0, 4) == 0) {
      const int k = R(0, 9);
      if (k < 7) e.props.push_back({"amount", PropValue::Num(R(1, 60) * 0.5)});
      if (k == 7) e.props.push_back({"amount", PropValue::Str(std::to_string(R(1, 30)))});  // numeric text
      if (k == 8) e.props.push_back({"amount", PropValue::Str("n/a")});
    }
    if (e.event == "pay" && R(0, 1)) e.props.push_back({"order_id", PropValue::Str("o" + std::to_string(R(1, 5)))});
    if (R(0, 7) == 0) e.person_set.push_back({"plan", PropValue::Str(kPlans[R(0, 2)])});
    if (R(0, 9) == 0) e.person_set.push_back({"city", PropValue::Str(kCities[R(0, 2)])});
    if (R(0, 11) == 0)
      e.person_set.push_back({"age", R(0, 3) ? PropValue::Num(R(15, 60)) : PropValue::Str(std::to_string(R(15, 60)))});
    events.push_back(std::move(e));
  }
  std::shuffle(events.begin(), events.end(), rng);
  // Merges after the fact: sent last, after both sides have events. An $identify joins an
  // anonymous id, an alias two logged-in ids; a few ids were never seen before.
  std::vector<Event> merges;
  for (int i = 0, n = R(0, persons / 2 + 1); i < n; i++) {
    const int p = R(1, persons);
    Event e = base_event("u" + std::to_string(p), "$identify");
    const int k = R(0, 5);
    e.merge_with.push_back(k < 3   ? "a" + std::to_string(p)
                           : k < 5 ? "u" + std::to_string(R(1, persons))
                                   : "n" + std::to_string(p));
    e.props.push_back({"$anon_distinct_id", PropValue::Str(e.merge_with[0])});
    merges.push_back(std::move(e));
  }

  ThrowAwayStore store(static_cast<size_t>(R(3, 40)));
  ASSERT_TRUE(store.ok());
  // Now and then to segments; otherwise rows stay in memtable blocks.
  AppendInBatches(store, events, BatchPolicy{50}, R);
  AppendInBatches(store, merges, BatchPolicy{50}, R);
  if (HasFatalFailure()) return;
  auto snap = store->Snapshot();
  ASSERT_TRUE(CheckBlocks(*snap).ok());

  // The partition the merges make, by union-find here, is the snapshot's.
  {
    std::map<std::string, std::string> parent;
    std::function<std::string(const std::string&)> root = [&](const std::string& d) -> std::string {
      auto it = parent.find(d);
      if (it == parent.end() || it->second == d) return d;
      return it->second = root(it->second);
    };
    std::set<std::string> ids;
    for (const auto& e : events) ids.insert(e.distinct_id);
    for (const auto& e : merges) {
      ids.insert(e.distinct_id);
      ids.insert(e.merge_with[0]);
      std::string a = root(e.distinct_id), b = root(e.merge_with[0]);
      if (a != b) parent[a] = b;
    }
    NaivePersonIds(*store, *snap, ids, root);
    if (HasFailure()) return;
  }

  PeopleSettings settings;
  if (R(0, 2) == 0) {
    settings.new_days = R(1, 10);
    settings.active_days = R(5, 20);
    settings.churn_days = settings.active_days + R(1, 40);
  }
  Naive naive;
  naive.snap = snap.get();
  naive.zone = zone;
  naive.settings = settings;
  naive.today = today;
  naive.Load();
  ASSERT_EQ(naive.rows.size(), events.size() + merges.size());

  // ---- definitions ----
  std::vector<json> defs;
  auto day_str = [&](int off) { return DayString(today + off); };
  auto range = [&](json& c, bool required) {
    switch (R(0, required ? 2 : 4)) {
      case 0: c["last_days"] = std::vector<int>{1, 2, 7, 30, 120}[R(0, 4)]; break;
      case 1:
        c["date_from"] = day_str(-R(0, 40));
        if (R(0, 1)) c["date_to"] = day_str(DaysFromCivil(c["date_from"]) - today + R(0, 20));
        break;
      case 2: c["date_to"] = day_str(-R(-2, 60)); break;
      default: break;  // all time
    }
  };
  auto filters = [&]() {
    json f = json::array();
    for (int i = 0, n = R(0, 2); i < n; i++) {
      switch (R(0, 13)) {
        case 0: f.push_back({{"property", "channel"}, {"op", "eq"}, {"value", "a"}}); break;
        case 1: f.push_back({{"property", "channel"}, {"op", "neq"}, {"value", "b"}}); break;
        case 2: f.push_back({{"property", "channel"}, {"op", "in"}, {"value", {"a", "c"}}}); break;
        case 3: f.push_back({{"property", "channel"}, {"op", "not_in"}, {"value", {"a"}}}); break;
        case 4: f.push_back({{"property", "channel"}, {"op", "is_not_set"}}); break;
        case 5: f.push_back({{"property", "amount"}, {"op", "gt"}, {"value", 12}}); break;
        case 6: f.push_back({{"property", "amount"}, {"op", "lte"}, {"value", 9.5}}); break;
        case 7: f.push_back({{"property", "amount"}, {"op", "eq"}, {"value", "12"}}); break;
        case 8: f.push_back({{"property", "amount"}, {"op", "contains"}, {"value", "1"}}); break;
        case 9: f.push_back({{"property", "amount"}, {"op", "is_set"}}); break;
        case 10: f.push_back({{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}); break;
        case 11: f.push_back({{"property", "person.city"}, {"op", "not_contains"}, {"value", "hai"}}); break;
        case 12: f.push_back({{"property", "order_id"}, {"op", "in"}, {"value", {"o1", "o2"}}}); break;
        default: f.push_back({{"property", "amount"}, {"op", "gte"}, {"value", 3}}); break;
      }
    }
    return f;
  };
  auto event_name = [&]() { return R(0, 9) == 0 ? std::string("$any") : std::string(kEvents[R(0, 4)]); };
  auto leaf = [&](int kind) -> json {
    json c;
    switch (kind) {
      case 0:
      case 1: {
        c = {{"type", kind == 0 ? "performed" : "not_performed"}, {"event", event_name()}};
        if (R(0, 1)) c["filters"] = filters();
        if (kind == 0 && R(0, 2)) {
          json cnt{{"value", R(0, 3)}};
          const int op = R(0, 3);
          if (op < 3) cnt["op"] = std::vector<std::string>{"gte", "lte", "eq"}[op];
          c["count"] = cnt;
        }
        range(c, false);
        break;
      }
      case 2: {
        c = {{"type", "sequence"}};
        json steps = json::array();
        for (int s = 0, n = R(2, 3); s < n; s++) {
          json st{{"event", R(0, 4) == 0 && s > 0 ? steps[0]["event"].get<std::string>() : event_name()}};
          if (R(0, 2) == 0) st["filters"] = filters();
          steps.push_back(st);
        }
        c["steps"] = steps;
        const int w = R(0, 5);
        if (w < 5) c["window_seconds"] = std::vector<int>{1, 60, 3600, 86400, 7 * 86400}[w];
        range(c, false);
        break;
      }
      case 3:
        c = {{"type", "first_performed"}, {"event", event_name()}};
        if (R(0, 2) == 0) c["filters"] = filters();
        range(c, true);
        break;
      case 4: {
        c = {{"type", "property"}};
        const int which = R(0, 2);
        const std::string prop = std::vector<std::string>{"plan", "city", "age"}[which];
        c["property"] = R(0, 1) ? "person." + prop : prop;
        static const char* kOps[] = {"eq", "neq", "in",       "not_in",       "gt",     "gte",
                                     "lt", "lte", "contains", "not_contains", "is_set", "is_not_set"};
        const std::string op = kOps[R(0, 11)];
        if (R(0, 5)) c["op"] = op;  // else the default, eq
        const std::string eff = c.value("op", "eq");
        auto value = [&]() -> json {
          if (which == 0) return kPlans[R(0, 2)];
          if (which == 1) return R(0, 1) ? json(kCities[R(0, 2)]) : json("i");
          return R(0, 1) ? json(R(15, 60)) : json(std::to_string(R(15, 60)));
        };
        if (eff == "in" || eff == "not_in") {
          c["value"] = json::array({value(), value()});
        } else if (eff == "gt" || eff == "gte" || eff == "lt" || eff == "lte") {
          c["value"] = R(15, 60);
        } else if (eff != "is_set" && eff != "is_not_set") {
          c["value"] = value();
        }
        break;
      }
      case 5:
        c = {{"type", "cohort"}, {"id", R(1, static_cast<int>(defs.size()))}};
        if (R(0, 2)) c["negate"] = R(0, 1) == 1;
        break;
      case 6: c = {{"type", "rfm_segment"}, {"segment", kSegmentKeys[R(0, 7)]}}; break;
      default:
        c = {{"type", "lifecycle"}, {"stage", std::vector<std::string>{"new", "active", "silent", "churned"}[R(0, 3)]}};
    }
    return c;
  };
  std::function<json(int)> group = [&](int depth) {
    json g{{"conditions", json::array()}};
    if (R(0, 3)) g["op"] = R(0, 1) ? "or" : "and";
    // "type":"group" is read as a group only beside "op" (ParseCondition).
    if (g.contains("op") && R(0, 3) == 0) g["type"] = "group";
    for (int i = 0, n = R(1, 3); i < n; i++) {
      if (depth < 3 && R(0, 3) == 0) {
        g["conditions"].push_back(group(depth + 1));
      } else {
        int kind = R(0, 7);
        if (kind == 5 && defs.empty()) kind = 0;
        g["conditions"].push_back(leaf(kind));
      }
    }
    return g;
  };

  std::map<int64_t, std::shared_ptr<const Roaring>> members;
  CohortEvalContext ctx{*snap,
                        *tz,
                        settings,
                        today,
                        [&](int64_t id, const std::string& field) -> StatusOr<std::shared_ptr<const Roaring>> {
                          auto it = members.find(id);
                          if (it == members.end()) return NotFound(field + ": no cohort " + std::to_string(id));
                          return it->second;
                        },
                        nullptr,
                        nullptr};
  const int kDefs = 30;
  for (int i = 0; i < kDefs; i++) {
    // A few single-condition definitions per kind, so each kind is checked on its own too.
    const json def = i < 8 ? json{{"conditions", json::array({leaf(i == 5 && defs.empty() ? 0 : i)})}} : group(1);
    const json sent = json::parse(def.dump());  // as a user sends it
    auto parsed = ParseCohortDefinition(sent);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n" << def.dump();
    auto got = EvaluateCohort(*parsed, ctx);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << "\n" << def.dump();
    const std::set<uint32_t> want = naive.Eval(sent);
    std::set<uint32_t> have(got->begin(), got->end());
    if (have != want) {
      std::string diff;
      for (uint32_t p : naive.universe) {
        if (have.count(p) == want.count(p)) continue;
        diff += "\n person " + std::to_string(p) + (have.count(p) ? " only in EvaluateCohort" : " only in naive") +
                ", rows:";
        auto it = naive.by_person.find(p);
        if (it != naive.by_person.end())
          for (const Row* r : it->second) {
            diff += "\n   " + tz->FormatLocal(r->ts) + " " + std::to_string(r->ts) + " " + r->event;
            for (const auto& pr : r->props) diff += " " + pr.key + "=" + TextOf(pr.value);
          }
      }
      FAIL() << "seed " << seed << " tz " << zone_name << " definition " << i << ": " << def.dump() << diff;
    }
    const int64_t id = static_cast<int64_t>(defs.size()) + 1;
    members[id] = std::make_shared<const Roaring>(std::move(*got));
    naive.cohorts[id] = want;
    defs.push_back(def);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, CohortReference, ::testing::Range(0, 220));

// ---- hand-written cases ----

Status ParseError(const std::string& text) { return ParseCohortDefinition(json::parse(text)).status(); }

TEST(CohortDefinition, ErrorsNameTheField) {
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"performed","event":"x"},
                          {"type":"performed","event":"y","count":{"op":"gt","value":1}}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("expected gte, lte or eq"),
                       "definition.conditions[1].count.op"));
  EXPECT_THAT(ParseError(R"({"op":"or","conditions":[{"type":"did_something","event":"x"}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown condition type 'did_something'"),
                       "definition.conditions[0].type"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"tier","dimension":"value","level":"gold"}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("expected high, medium or potential"),
                       "definition.conditions[0].level"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"tag","tag":"platform"}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("needs a value"), "definition.conditions[0].value"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"op":"and","conditions":[{"type":"performed","event":"x"},
                          {"type":"performed","event":"x","last_days":7,"date_from":"2025-01-01"}]}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("either last_days or date_from"),
                       "definition.conditions[0].conditions[1].last_days"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"performed","evnt":"x"}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown field"), "definition.conditions[0].evnt"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"performed","event":"x","count":{"op":"eq"}}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].count.value"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"performed","event":"x","count":{"value":-1}}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].count.value"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"performed","event":"x","date_from":"2025-02-30"}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].date_from"));
  EXPECT_THAT(
      ParseError(R"({"conditions":[{"type":"performed","event":"x","date_from":"2025-02-03",
                          "date_to":"2025-02-01"}]})"),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("before date_from"), "definition.conditions[0].date_to"));
  EXPECT_THAT(
      ParseError(R"({"conditions":[{"type":"performed","event":"x",
                          "filters":[{"property":"a","op":"gt","value":"x"}]}]})"),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("needs a number"), "definition.conditions[0].filters[0].value"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"sequence","steps":[{"event":"x"}]}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("expected 2 to"), "definition.conditions[0].steps"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"sequence","steps":[{"event":"x"},{"event":""}]}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].steps[1].event"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"sequence","steps":[{"event":"x"},{"event":"y"}],
                          "window_seconds":0}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].window_seconds"));
  EXPECT_THAT(
      ParseError(R"({"conditions":[{"type":"first_performed","event":"x"}]})"),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("needs last_days"), "definition.conditions[0].last_days"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"property","property":"plan","op":"like","value":"x"}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown operator"), "definition.conditions[0].op"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"property","property":"age","op":"gt","value":"x"}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].value"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"cohort"}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].id"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"rfm_segment","segment":"whales"}]})"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("champions"), "definition.conditions[0].segment"));
  EXPECT_THAT(ParseError(R"({"conditions":[{"type":"lifecycle","stage":"dormant"}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions[0].stage"));
  EXPECT_THAT(ParseError(R"({"op":"xor","conditions":[{"type":"lifecycle","stage":"new"}]})"),
              StatusIs(StatusCode::kInvalidArgument, _, "definition.op"));
  EXPECT_THAT(ParseError(R"({"conditions":[]})"), StatusIs(StatusCode::kInvalidArgument, _, "definition.conditions"));
  EXPECT_THAT(ParseError(R"([])"), StatusIs(StatusCode::kInvalidArgument, _, "definition"));
}

TEST(CohortDefinition, DeepNestingRefused) {
  json d{{"type", "lifecycle"}, {"stage", "new"}};
  for (int i = 0; i < 10; i++) d = json{{"op", "and"}, {"conditions", json::array({d})}};
  EXPECT_THAT(ParseCohortDefinition(d), StatusIs(StatusCode::kInvalidArgument, HasSubstr("nest deeper")));
}

class CohortServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    auto reg = ProjectRegistry::Open(dir_.path(), so);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    registry_ = std::move(*reg);
    ASSERT_TRUE(registry_->Create("shop", "Asia/Shanghai").ok());
    auto svc = PeopleService::Open(*registry_);
    ASSERT_TRUE(svc.ok()) << svc.status().ToString();
    people_ = std::move(*svc);
  }
  int64_t Create(const std::string& name, const json& definition) {
    auto c = people_->CreateCohort("shop", json{{"name", name}, {"definition", definition}}, "test");
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? (*c)["id"].get<int64_t>() : 0;
  }
  static json Refers(int64_t id) { return json{{"conditions", json::array({{{"type", "cohort"}, {"id", id}}})}}; }
  testing::TempDir dir_;
  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<PeopleService> people_;
};

TEST_F(CohortServiceTest, CycleRefusedWithItsPath) {
  const int64_t a = Create("a", json{{"conditions", json::array({{{"type", "performed"}, {"event", "pay"}}})}});
  const int64_t b = Create("b", Refers(a));
  const int64_t c = Create("c", json{{"op", "or"},
                                     {"conditions", json::array({{{"type", "lifecycle"}, {"stage", "new"}},
                                                                 {{"type", "cohort"}, {"id", b}, {"negate", true}}})}});
  const std::string A = "cohort " + std::to_string(a), B = "cohort " + std::to_string(b),
                    C = "cohort " + std::to_string(c);
  EXPECT_THAT(
      people_->UpdateCohort("shop", a, json{{"definition", Refers(c)}}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr(A + " -> " + C + " -> " + B + " -> " + A), "definition"));
  EXPECT_THAT(people_->UpdateCohort("shop", a, json{{"definition", Refers(a)}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr(A + " -> " + A), "definition"));
  EXPECT_THAT(people_->UpdateCohort("shop", b, json{{"definition", Refers(c)}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr(B + " -> " + C + " -> " + B), "definition"));
  EXPECT_THAT(people_->CreateCohort("shop", json{{"name", "d"}, {"definition", Refers(999)}}, "test"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("cohort 999, which does not exist"), "definition"));
  // Refused updates changed nothing; a diamond (two paths to one cohort) is no cycle.
  EXPECT_EQ((*people_->GetCohort("shop", a))["definition"]["conditions"][0]["type"], "performed");
  EXPECT_TRUE(
      people_
          ->UpdateCohort("shop", c,
                         json{{"definition", json{{"conditions", json::array({{{"type", "cohort"}, {"id", a}},
                                                                              {{"type", "cohort"}, {"id", b}}})}}}})
          .ok());
  // Members through the service follow the definitions (c = a and b = a).
  auto p = registry_->OpenProject("shop");
  ASSERT_TRUE(p.ok());
  std::vector<Event> ev(3);
  for (int i = 0; i < 3; i++) {
    ev[i].distinct_id = "u" + std::to_string(i);
    ev[i].event = i == 1 ? "view" : "pay";
    ev[i].ts_ms = NowMs() - 1000;
  }
  ASSERT_TRUE((*p)->store->Append(std::move(ev), Durability::kUnlogged).ok());
  auto snap = (*p)->store->Snapshot();
  auto m = people_->Members("shop", c, *snap, (*p)->tz);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->cardinality(), 2u);
}

}  // namespace
}  // namespace ns
