// The funnel's visualisations and options of issue 11 — "viz":"time_to_convert", "trends"
// and "correlation", breakdown attribution (first_touch, last_touch, step), "aggregate_by":
// "session" and first_ever steps — against a deliberately naive reference written here:
// every valid path of every unit is enumerated by brute force (no "latest entry" trick),
// sessions are cut over each person's whole history, entry periods are separate funnels,
// correlation counts sets of names. On 200 random seeds with equal timestamps, gaps of
// exactly 30 minutes, identity merges after the fact, several segments per day, days in
// several time zones (DST changes included) and empty ranges. Plus validation cases that
// name the field.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "core/env.h"
#include "query/operators.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

struct RefEvent {
  std::string uuid;
  std::string did;
  std::string event;
  int64_t ts = 0;
  std::optional<std::string> channel;
  std::optional<std::string> sid;   // $session_id
  std::string merge_with;           // $anon_distinct_id
  std::optional<std::string> plan;  // person property set by this event
};

// ---- the naive world: stored events, persons by union-find over distinct ids ----
struct World {
  std::vector<RefEvent> events;
  std::map<std::string, std::string> parent;
  std::map<std::string, std::string> plan;  // person root -> plan
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
    for (auto& e : events)
      if (e.plan) plan[Root(e.did)] = *e.plan;
  }
  std::string Person(const RefEvent& e) { return Root(e.did); }
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

std::string PeriodLabel(const std::string& local_date, const std::string& interval) {
  if (interval == "day") return local_date;
  if (interval == "month") return local_date.substr(0, 8) + "01";
  int d = DaysFromCivil(local_date);
  date::weekday wd{date::sys_days{date::days{d}}};
  return CivilToString(d - static_cast<int>((wd.c_encoding() + 6) % 7));
}

bool PassFilter(const json& f, World& w, const RefEvent& e) {
  const std::string prop = f["property"], op = f["op"];
  std::optional<json> v;
  if (prop == "channel" && e.channel) v = *e.channel;
  if (prop == "person.plan" && w.plan.count(w.Person(e))) v = w.plan[w.Person(e)];
  if (op == "neq") return !v || *v != f["value"];
  if (op == "is_set") return v.has_value();
  if (!v) return false;
  if (op == "eq") return *v == f["value"];
  ADD_FAILURE() << "op " << op;
  return false;
}
bool PassAll(const json& filters, World& w, const RefEvent& e) {
  for (auto& f : filters)
    if (!PassFilter(f, w, e)) return false;
  return true;
}
bool NameMatches(const std::string& want, const RefEvent& e) { return want == "$any" || want == e.event; }

// ---- the naive funnel ----

struct Item {  // one event of a unit's timeline
  int64_t ts;
  uint64_t tag;  // bit k: step k; bit 32 + x: exclusion x
  uint32_t order;
  std::string key;  // breakdown value (JSON text)
  const RefEvent* e;
};

struct UnitResult {
  std::vector<bool> reached;
  std::optional<std::string> group;    // by the attribution rule
  std::vector<int64_t> conv;           // per step: ms from the previous step on the chosen path (-1 none)
  int64_t ttc = -1;                    // time to convert
  int64_t corr_from = 0, corr_to = 0;  // correlation window
  bool converted = false;
};

struct RefAnswer {
  std::vector<uint64_t> count, drop;
  std::vector<std::set<std::string>> drop_persons;
  std::vector<std::set<std::string>> conv_persons;  // reached the step (converted_limit)
  std::vector<std::vector<int64_t>> conv;
  std::map<std::string, std::vector<uint64_t>> groups;
  std::vector<int64_t> ttc;
  std::vector<std::string> period_labels;
  std::vector<std::vector<uint64_t>> period_counts;
  std::map<std::string, UnitResult> by_person;  // person mode: the whole-range result
};

class NaiveFunnel {
 public:
  NaiveFunnel(World& w, const json& q) : w_(w), q_(q) {
    steps_ = q["steps"];
    n_ = static_cast<int>(steps_.size());
    window_ = q.value("window_seconds", int64_t{14 * 86400}) * 1000;
    order_ = q.value("order", "ordered");
    from_ = LocalMidnight(w.tz, q["date_from"]);
    to_ = LocalMidnight(w.tz, CivilToString(DaysFromCivil(q["date_to"]) + 1));
    excl_ = q.value("exclusions", json::array());
    sessions_ = q.value("aggregate_by", "person") == "session";
    attribution_ = "first_touch";
    if (q.contains("breakdown_attribution")) {
      const json& a = q["breakdown_attribution"];
      if (a.is_object()) {
        attribution_ = "step";
        attribution_step_ = a["step"];
      } else {
        attribution_ = a;
        attribution_step_ = q.value("breakdown_attribution_step", 0);
      }
    }
    from_step_ = q.value("from_step", 0);
    to_step_ = q.value("to_step", n_ - 1);
  }

  bool Matches(const RefEvent& e, int k) {
    const json& s = steps_[static_cast<size_t>(k)];
    if (!NameMatches(s["event"], e) || !PassAll(q_.value("filters", json::array()), w_, e) ||
        !PassAll(s.value("filters", json::array()), w_, e))
      return false;
    if (!s.value("first_ever", false)) return true;
    // The person's first-ever event matching the step, over all of history.
    int64_t first = INT64_MAX;
    for (const RefEvent& o : w_.events)
      if (w_.Person(o) == w_.Person(e) && NameMatches(s["event"], o) &&
          PassAll(q_.value("filters", json::array()), w_, o) && PassAll(s.value("filters", json::array()), w_, o))
        first = std::min(first, o.ts);
    return e.ts == first;
  }

  // Session of every event: its $session_id, else runs of the person's events without one
  // at most 30 minutes apart, over the person's whole history.
  std::map<const RefEvent*, std::string> Sessions() {
    std::map<std::string, std::vector<const RefEvent*>> by_person;
    for (const RefEvent& e : w_.events) by_person[w_.Person(e)].push_back(&e);
    std::map<const RefEvent*, std::string> out;
    for (auto& [p, v] : by_person) {
      std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->ts < b->ts; });
      int gap = 0;
      int64_t last = INT64_MIN;
      for (const RefEvent* e : v) {
        if (e->sid) {
          out[e] = p + "|s:" + *e->sid;
          continue;
        }
        if (last != INT64_MIN && e->ts - last > 30 * 60 * 1000) gap++;
        last = e->ts;
        out[e] = p + "|g:" + std::to_string(gap);
      }
    }
    return out;
  }

  RefAnswer Run() {
    const int64_t scan_to = to_ + window_ + 1;
    std::map<const RefEvent*, std::string> session;
    if (sessions_) session = Sessions();
    std::map<std::string, std::vector<Item>> units;  // unit -> timeline
    std::map<std::string, std::string> person_of_unit;
    for (const RefEvent& e : w_.events) {
      if (e.ts < from_ || e.ts >= scan_to) continue;
      uint64_t tag = 0;
      for (int k = 0; k < n_; k++)
        if (Matches(e, k)) tag |= 1ULL << k;
      for (size_t x = 0; x < excl_.size(); x++)
        if (NameMatches(excl_[x]["event"], e)) tag |= 1ULL << (32 + x);
      if (!tag) {
        if (order_ != "strict") continue;
        tag = 1ULL << 63;  // another event: breaks a strict sequence
      }
      const uint64_t sm = tag & ((1ULL << n_) - 1);
      const std::string unit = sessions_ ? session[&e] : w_.Person(e);
      person_of_unit[unit] = w_.Person(e);
      units[unit].push_back({e.ts, tag, sm ? static_cast<uint32_t>(__builtin_ctzll(sm)) : 64u,
                             e.channel ? json(*e.channel).dump() : std::string("null"), &e});
    }
    RefAnswer a;
    a.count.assign(static_cast<size_t>(n_), 0);
    a.drop.assign(static_cast<size_t>(n_), 0);
    a.drop_persons.assign(static_cast<size_t>(n_), {});
    a.conv_persons.assign(static_cast<size_t>(n_), {});
    a.conv.assign(static_cast<size_t>(n_), {});
    // Entry periods.
    std::vector<std::pair<int64_t, int64_t>> periods;
    if (q_.value("viz", "steps") == "trends") {
      const std::string interval = q_.value("interval", "day");
      const int d0 = DaysFromCivil(q_["date_from"]), d1 = DaysFromCivil(q_["date_to"]);
      for (int d = d0; d <= d1;) {
        const std::string label = PeriodLabel(CivilToString(d), interval);
        int e = d;
        while (e + 1 <= d1 && PeriodLabel(CivilToString(e + 1), interval) == label) e++;
        a.period_labels.push_back(label);
        periods.push_back({LocalMidnight(w_.tz, CivilToString(d)), LocalMidnight(w_.tz, CivilToString(e + 1))});
        d = e + 1;
      }
      a.period_counts.assign(periods.size(), std::vector<uint64_t>(static_cast<size_t>(n_), 0));
    }
    for (auto& [unit, tl] : units) {
      std::sort(tl.begin(), tl.end(), [](const Item& x, const Item& y) {
        if (x.ts != y.ts) return x.ts < y.ts;
        if (x.order != y.order) return x.order < y.order;
        if (x.tag != y.tag) return x.tag < y.tag;
        return x.key < y.key;
      });
      const std::string& person = person_of_unit[unit];
      UnitResult r = Evaluate(tl, from_, to_);
      if (r.reached[0] || (order_ == "unordered" && std::count(r.reached.begin(), r.reached.end(), true))) {
        if (!sessions_) a.by_person[person] = r;
        for (int k = 0; k < n_; k++) {
          if (r.reached[static_cast<size_t>(k)]) {
            a.count[static_cast<size_t>(k)]++;
            a.conv_persons[static_cast<size_t>(k)].insert(person);
            if (k > 0 && r.conv[static_cast<size_t>(k)] >= 0)
              a.conv[static_cast<size_t>(k)].push_back(r.conv[static_cast<size_t>(k)]);
          } else if (k > 0 && r.reached[static_cast<size_t>(k - 1)]) {
            a.drop[static_cast<size_t>(k)]++;
            a.drop_persons[static_cast<size_t>(k)].insert(person);
          }
        }
        if (r.group) {
          auto& g = a.groups[*r.group];
          if (g.empty()) g.assign(static_cast<size_t>(n_), 0);
          for (int k = 0; k < n_; k++) g[static_cast<size_t>(k)] += r.reached[static_cast<size_t>(k)];
        }
        if (r.ttc >= 0) a.ttc.push_back(r.ttc);
      }
      for (size_t b = 0; b < periods.size(); b++) {
        UnitResult pr = Evaluate(tl, periods[b].first, periods[b].second);
        for (int k = 0; k < n_; k++) a.period_counts[b][static_cast<size_t>(k)] += pr.reached[static_cast<size_t>(k)];
      }
    }
    return a;
  }

  // The unit's funnel for entries in [rf, rt).
  UnitResult Evaluate(const std::vector<Item>& tl, int64_t rf, int64_t rt) {
    UnitResult r;
    r.reached.assign(static_cast<size_t>(n_), false);
    r.conv.assign(static_cast<size_t>(n_), -1);
    const uint64_t step_bits = (1ULL << n_) - 1;
    if (order_ == "unordered") {
      std::optional<size_t> first;
      for (size_t i = 0; i < tl.size(); i++) {
        if (!(tl[i].tag & step_bits) || tl[i].ts < rf || tl[i].ts >= rt) continue;
        if (!first) first = i;
        std::vector<size_t> cand;
        for (size_t j = 0; j < tl.size(); j++)
          if (tl[j].ts >= tl[i].ts && tl[j].ts - tl[i].ts <= window_ && (tl[j].tag & step_bits)) cand.push_back(j);
        int best = 0;
        std::vector<bool> used(tl.size(), false);
        std::function<void(int, int)> go = [&](int step, int matched) {
          if (step == n_) {
            best = std::max(best, matched);
            return;
          }
          go(step + 1, matched);
          for (size_t j : cand)
            if (!used[j] && (tl[j].tag & (1ULL << step))) {
              used[j] = true;
              go(step + 1, matched + 1);
              used[j] = false;
            }
        };
        go(0, 0);
        for (int k = 0; k < best; k++) r.reached[static_cast<size_t>(k)] = true;
      }
      if (first && q_.contains("breakdown")) r.group = tl[*first].key;
      return r;
    }
    // Ordered / strict: every valid path from every entry, by depth-first search. A path is
    // (position, step) pairs. chosen[k] is the path on which step k was first done (smallest
    // position of its step-k event); among those, the latest entry; then, reading back from
    // the step before k, the deeper step done there, then the one done first (the attempt
    // that got to each step first).
    std::vector<std::vector<std::pair<size_t, int>>> chosen(static_cast<size_t>(n_));
    std::optional<size_t> first_entry;
    auto better = [&](const std::vector<std::pair<size_t, int>>& x, const std::vector<std::pair<size_t, int>>& y) {
      if (y.empty()) return true;
      if (x.back().first != y.back().first) return x.back().first < y.back().first;
      if (tl[x[0].first].ts != tl[y[0].first].ts) return tl[x[0].first].ts > tl[y[0].first].ts;
      for (size_t i = 2; i <= std::min(x.size(), y.size()); i++) {
        const auto& a = x[x.size() - i];
        const auto& b = y[y.size() - i];
        if (a.second != b.second) return a.second > b.second;
        if (a.first != b.first) return a.first < b.first;
      }
      return false;
    };
    std::vector<std::pair<size_t, int>> path;
    std::function<void()> dfs = [&]() {
      const auto [last, k] = path.back();
      r.reached[static_cast<size_t>(k)] = true;
      if (better(path, chosen[static_cast<size_t>(k)])) chosen[static_cast<size_t>(k)] = path;
      const int64_t entry_ts = tl[path[0].first].ts;
      for (int nk = k + 1; nk < n_; nk++) {
        for (size_t j = last + 1; j < tl.size(); j++) {
          // An exclusion event at j-1 (after the path's last step there) abandons the path
          // if it stands in the exclusion's range.
          bool dead = false;
          for (size_t x = 0; x < excl_.size(); x++)
            if ((tl[j - 1].tag & (1ULL << (32 + x))) && k >= excl_[x]["from_step"].get<int>() &&
                k < excl_[x]["to_step"].get<int>())
              dead = true;
          if (dead) break;
          if (order_ == "strict" && j != last + 1) break;
          if (tl[j].ts - entry_ts > window_) break;
          if (!(tl[j].tag & (1ULL << nk))) continue;
          path.push_back({j, nk});
          dfs();
          path.pop_back();
        }
        if (!steps_[static_cast<size_t>(nk)].value("optional", false)) break;
      }
    };
    for (size_t i = 0; i < tl.size(); i++) {
      if (!(tl[i].tag & 1) || tl[i].ts < rf || tl[i].ts >= rt) continue;
      if (!first_entry) first_entry = i;
      path = {{i, 0}};
      dfs();
    }
    if (!first_entry) return r;
    for (int k = 1; k < n_; k++) {
      const auto& c = chosen[static_cast<size_t>(k)];
      if (c.size() >= 2) r.conv[static_cast<size_t>(k)] = tl[c.back().first].ts - tl[c[c.size() - 2].first].ts;
    }
    int deepest = 0;
    for (int k = 0; k < n_; k++)
      if (r.reached[static_cast<size_t>(k)]) deepest = k;
    if (q_.contains("breakdown")) {
      if (attribution_ == "first_touch") r.group = tl[*first_entry].key;
      if (attribution_ == "last_touch") r.group = tl[chosen[static_cast<size_t>(deepest)].back().first].key;
      if (attribution_ == "step" && r.reached[static_cast<size_t>(attribution_step_)])
        r.group = tl[chosen[static_cast<size_t>(attribution_step_)].back().first].key;
    }
    const auto& c = chosen[static_cast<size_t>(to_step_)];
    if (!c.empty())
      for (auto& [pos, k] : c)
        if (k == from_step_) r.ttc = tl[c.back().first].ts - tl[pos].ts;
    r.converted = r.reached[static_cast<size_t>(n_ - 1)];
    if (r.converted) {
      const auto& last = chosen[static_cast<size_t>(n_ - 1)];
      r.corr_from = tl[last[0].first].ts;
      r.corr_to = tl[last.back().first].ts;
    } else {
      r.corr_from = tl[*first_entry].ts;
      r.corr_to = r.corr_from + window_;
    }
    return r;
  }

 private:
  World& w_;
  const json& q_;
  json steps_, excl_;
  int n_ = 0;
  int64_t window_ = 0, from_ = 0, to_ = 0;
  std::string order_, attribution_;
  int attribution_step_ = 0, from_step_ = 0, to_step_ = 0;
  bool sessions_ = false;
};

double Median(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? static_cast<double>(v[m]) : (static_cast<double>(v[m - 1]) + static_cast<double>(v[m])) / 2;
}
double Mean(const std::vector<int64_t>& v) {
  double s = 0;
  for (int64_t x : v) s += static_cast<double>(x);
  return s / static_cast<double>(v.size());
}

// The histogram of docs/queries.md, written out again.
json NaiveHistogram(const std::vector<int64_t>& ms, int bins) {
  if (ms.empty()) return json::array();
  int64_t b = bins;
  if (b == 0)
    for (b = 1; b < 60 && b * b * b < static_cast<int64_t>(ms.size());) b++;
  const int64_t lo = *std::min_element(ms.begin(), ms.end()) / 1000;
  const int64_t hi = *std::max_element(ms.begin(), ms.end());
  int64_t width = 1;
  while (lo * 1000 + b * width * 1000 <= hi) width++;  // the smallest width holding the longest
  json out = json::array();
  for (int64_t k = 0; k < b; k++) {
    uint64_t c = 0;
    for (int64_t x : ms) c += x >= (lo + k * width) * 1000 && x < (lo + (k + 1) * width) * 1000;
    out.push_back({{"from_seconds", lo + k * width}, {"to_seconds", lo + (k + 1) * width}, {"count", c}});
  }
  return out;
}

// Correlation of docs/queries.md, written out again: sets of names per person.
json NaiveCorrelation(World& w, const json& q, const RefAnswer& a) {
  uint64_t S = 0, F = 0;
  for (auto& [p, r] : a.by_person) (r.converted ? S : F)++;
  json out{{"success_total", S}, {"failure_total", F}};
  out["skewed"] = S == 0 || F == 0 || S > 10 * F || F > 10 * S;
  if (S == 0 || F == 0) {
    out["events"] = json::array();
    out["properties"] = json::array();
    return out;
  }
  std::set<std::string> step_names;
  bool any = false;
  for (auto& s : q["steps"]) {
    step_names.insert(s["event"].get<std::string>());
    any |= s["event"] == "$any";
  }
  for (auto& e : q.value("correlation_exclude_events", json::array())) step_names.insert(e.get<std::string>());
  json props = q.value("correlation_properties", json::array());
  // name -> persons with it, by outcome
  std::map<std::pair<std::string, std::string>, std::pair<std::set<std::string>, std::set<std::string>>> seen;
  for (auto& [p, r] : a.by_person) {
    for (const RefEvent& e : w.events) {
      if (w.Person(e) != p || e.ts < r.corr_from || e.ts > r.corr_to) continue;
      if (!any && !step_names.count(e.event)) {
        auto& s = seen[{"", e.event}];
        (r.converted ? s.first : s.second).insert(p);
      }
      for (auto& pr : props)
        if (pr == "channel" && e.channel) {
          auto& s = seen[{"channel", *e.channel}];
          (r.converted ? s.first : s.second).insert(p);
        }
    }
    for (auto& pr : props)
      if (pr == "person.plan" && w.plan.count(p)) {
        auto& s = seen[{"person.plan", w.plan[p]}];
        (r.converted ? s.first : s.second).insert(p);
      }
  }
  const size_t limit = q.value("correlation_limit", 10);
  struct E {
    std::string prop, name;
    uint64_t s, f;
    double odds;
  };
  std::vector<E> ev, pv;
  for (auto& [k, sets] : seen) {
    const uint64_t s = sets.first.size(), f = sets.second.size();
    if (static_cast<double>(s + f) < std::min(25.0, 0.02 * static_cast<double>(S + F))) continue;
    const double odds = ((static_cast<double>(s) + 1) * (static_cast<double>(F - f) + 1)) /
                        ((static_cast<double>(S - s) + 1) * (static_cast<double>(f) + 1));
    (k.first.empty() ? ev : pv).push_back({k.first, k.second, s, f, odds});
  }
  auto rank = [&](std::vector<E> v) {
    std::vector<E> succ, fail;
    for (auto& e : v) (e.odds > 1 ? succ : fail).push_back(e);
    auto label = [](const E& e) {
      return e.prop.empty() ? e.name + "\x1f\x1f" : std::string() + "\x1f" + e.prop + "\x1f" + e.name;
    };
    std::sort(succ.begin(), succ.end(), [&](const E& x, const E& y) {
      if (x.odds != y.odds) return x.odds > y.odds;
      if (x.s + x.f != y.s + y.f) return x.s + x.f > y.s + y.f;
      return label(x) < label(y);
    });
    std::sort(fail.begin(), fail.end(), [&](const E& x, const E& y) {
      if (x.odds != y.odds) return x.odds < y.odds;
      if (x.s + x.f != y.s + y.f) return x.s + x.f > y.s + y.f;
      return label(x) < label(y);
    });
    if (succ.size() > limit) succ.resize(limit);
    if (fail.size() > limit) fail.resize(limit);
    json out = json::array();
    for (auto* part : {&succ, &fail})
      for (auto& e : *part) {
        json j;
        if (e.prop.empty()) {
          j["event"] = e.name;
        } else {
          j["property"] = e.prop;
          j["value"] = e.name;
        }
        j["success_count"] = e.s;
        j["failure_count"] = e.f;
        j["odds_ratio"] = e.odds;
        j["correlation_type"] = e.odds > 1 ? "success" : "failure";
        out.push_back(j);
      }
    return out;
  };
  out["events"] = rank(ev);
  out["properties"] = rank(pv);
  return out;
}

// ---- the test ----

// The store's files without fsync: durability is not under test here, and hundreds of
// stores' fsyncs made the test wait on the disk instead of computing.
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

class FunnelExtReference : public ::testing::TestWithParam<int> {};

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kNames[] = {"s0", "s1", "s2", "s3", "x", "refund", "login"};

void ExpectNear(const json& got, double want, const std::string& what) {
  ASSERT_TRUE(got.is_number()) << what << " got " << got.dump();
  EXPECT_NEAR(got.get<double>(), want, 1e-9 * std::max(1.0, std::abs(want))) << what;
}

TEST_P(FunnelExtReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 7);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  World w;
  w.tz = kZones[seed % 5];
  auto tz = TimeZone::Load(w.tz);
  ASSERT_TRUE(tz.ok());
  // Around the 2025-03-09 US / 2025-03-30 EU DST changes; a 30-minute grid makes gaps of
  // exactly the session timeout.
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;  // 2025-03-04
  const int64_t step = std::vector<int64_t>{1000, 60'000, 1'800'000, 3'600'000}[static_cast<size_t>(seed % 4)];
  const int persons = R(2, 6);
  const int nevents = R(60, 260);
  std::vector<RefEvent> sent;
  for (int i = 0; i < nevents; i++) {
    RefEvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(i);
    int p = R(1, persons);
    e.did = (rng() % 3 == 0 ? "a" : "u") + std::to_string(p);
    e.event = kNames[std::min(R(0, 7), R(0, 7)) % 6];  // s0 and s1 most often
    e.ts = base + static_cast<int64_t>(R(0, static_cast<int>(6LL * 86'400'000 / step))) * step;
    if (rng() % 4) e.channel = std::string(1, static_cast<char>('a' + R(0, 2)));
    if (rng() % 3 == 0) e.sid = std::string(1, static_cast<char>('A' + R(0, 2)));
    if (rng() % 12 == 0) {
      e.event = "login";
      e.did = "u" + std::to_string(p);
      e.merge_with = "a" + std::to_string(p);
    }
    if (rng() % 8 == 0 && e.did[0] == 'u') e.plan = (p % 2) ? "pro" : "free";
    sent.push_back(e);
  }
  std::vector<RefEvent> deliveries = sent;
  for (int i = 0; i < nevents / 10; i++) deliveries.push_back(sent[rng() % sent.size()]);
  std::shuffle(deliveries.begin(), deliveries.end(), rng);
  {
    std::set<std::string> seen;
    for (auto& e : deliveries)
      if (seen.insert(e.uuid).second) w.events.push_back(e);
  }
  w.Finish();

  testing::TempDir dir;
  NoSyncEnv env;
  StoreOptions so;
  so.env = &env;
  so.background = false;
  so.seal_rows = static_cast<size_t>(R(3, 40));
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t pos = 0;
  while (pos < deliveries.size()) {
    size_t cnt = static_cast<size_t>(R(1, 50));
    std::vector<Event> batch;
    for (size_t i = pos; i < std::min(deliveries.size(), pos + cnt); i++) {
      const RefEvent& r = deliveries[i];
      Event e;
      e.uuid = Uuid::FromClientId(r.uuid);
      e.has_uuid = true;
      e.distinct_id = r.did;
      e.event = r.event;
      e.ts_ms = r.ts;
      if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
      if (r.sid) e.props.push_back({"$session_id", PropValue::Str(*r.sid)});
      if (!r.merge_with.empty()) {
        e.props.push_back({"$anon_distinct_id", PropValue::Str(r.merge_with)});
        e.merge_with.push_back(r.merge_with);
      }
      if (r.plan) e.person_set.push_back({"plan", PropValue::Str(*r.plan)});
      batch.push_back(std::move(e));
    }
    pos += cnt;
    ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
    const int action = R(0, 7);
    if (action == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
    if (action == 1) {
      ASSERT_TRUE((*store)->CompactAll().ok());
    }
  }
  auto day = [&](int64_t off) { return LocalDate(w.tz, base + off * 86'400'000); };
  auto random_filters = [&]() {
    json f = json::array();
    for (int i = R(0, 1); i > 0; i--) {
      switch (R(0, 3)) {
        case 0: f.push_back({{"property", "channel"}, {"op", "eq"}, {"value", "a"}}); break;
        case 1: f.push_back({{"property", "channel"}, {"op", "neq"}, {"value", "b"}}); break;
        case 2: f.push_back({{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}); break;
        default: f.push_back({{"property", "channel"}, {"op", "is_set"}}); break;
      }
    }
    return f;
  };

  for (int t = 0; t < 10; t++) {
    json q{{"kind", "funnel"}};
    const int a = R(-2, 6);
    q["date_from"] = day(a);
    q["date_to"] = day(a + (t % 4 == 2 ? R(1, 6) : R(0, 3)));
    const std::string viz = std::vector<std::string>{"steps", "time_to_convert", "trends", "correlation"}[t % 4];
    const int n = R(2, 4);
    q["order"] = std::vector<std::string>{"ordered", "strict", "unordered"}[static_cast<size_t>(R(0, 2))];
    if (viz == "time_to_convert" || viz == "correlation") q["order"] = R(0, 1) ? "ordered" : "strict";
    const bool unordered = q["order"] == "unordered";
    json steps = json::array();
    for (int k = 0; k < n; k++) {
      json s{{"event", R(0, 9) == 0 ? "$any" : kNames[R(0, 3) ? R(0, 2) : R(0, 4)]}};
      if (R(0, 6) == 0) s["filters"] = random_filters();
      if (k > 0 && k < n - 1 && !unordered && R(0, 4) == 0) s["optional"] = true;
      if (R(0, 7) == 0) s["first_ever"] = true;
      steps.push_back(s);
    }
    q["steps"] = steps;
    q["window_seconds"] = std::vector<int>{
        0, 60, 1800, 3600, 86400, 3 * 86400, 7 * 86400}[static_cast<size_t>(std::max(R(0, 6), R(0, 6)))];
    if (R(0, 3) == 0) q["filters"] = random_filters();
    if (!unordered && R(0, 2) == 0) {
      q["exclusions"] = json::array({{{"event", "refund"}, {"from_step", R(0, n - 2)}, {"to_step", n - 1}}});
      for (auto& s : q["steps"])
        if (s["event"] == "refund" || s["event"] == "$any") s["event"] = "s1";
    }
    if (viz != "correlation" && R(0, 1)) q["aggregate_by"] = "session";
    if (R(0, 1)) {
      q["breakdown"] = "channel";
      q["breakdown_limit"] = 1000;
      if (!unordered) {
        switch (R(0, 3)) {
          case 0: q["breakdown_attribution"] = "last_touch"; break;
          case 1:
            q["breakdown_attribution"] = "step";
            q["breakdown_attribution_step"] = R(0, n - 1);
            break;
          case 2: q["breakdown_attribution"] = {{"step", R(0, n - 1)}}; break;
          default: break;
        }
      }
    }
    q["dropoff_limit"] = 0;
    // Converted persons: all, a few (the smallest person ids), or not asked for.
    const int converted_limit = std::vector<int>{-1, 0, 0, 1, 3}[static_cast<size_t>(R(0, 4))];
    if (converted_limit >= 0) q["converted_limit"] = converted_limit;
    if (viz != "steps") q["viz"] = viz;
    if (viz == "time_to_convert" || viz == "trends") {
      // A from_step every path does (not optional).
      int from = R(0, n - 2);
      while (from > 0 && q["steps"][static_cast<size_t>(from)].value("optional", false)) from--;
      q["from_step"] = from;
      q["to_step"] = R(from + 1, n - 1);
    }
    if (viz == "time_to_convert" && R(0, 1)) q["bins"] = R(1, 8);
    if (viz == "trends") q["interval"] = std::vector<std::string>{"day", "week", "month"}[static_cast<size_t>(R(0, 2))];
    if (viz == "correlation") {
      q["correlation_properties"] = json::array({"channel", "person.plan"});
      if (R(0, 1)) q["correlation_exclude_events"] = json::array({"x"});
      q["correlation_limit"] = R(1, 4);
    }

    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << "\n" << q.dump();
    const json& g = *got;
    NaiveFunnel naive(w, q);
    RefAnswer want = naive.Run();
    const std::string where = "seed " + std::to_string(seed) + " " + q.dump();
    // The server names a person by one of its distinct ids: the reference's person is its root.
    auto persons_of = [&](const json& names) {
      std::set<std::string> out;
      for (const auto& x : names) out.insert(w.Root(x.get<std::string>()));
      return out;
    };
    for (int k = 0; k < n; k++) {
      const json& s = g["steps"][static_cast<size_t>(k)];
      ASSERT_EQ(s["count"], want.count[static_cast<size_t>(k)]) << "step " << k << " " << where << "\n" << g.dump();
      const auto& conv = want.conv_persons[static_cast<size_t>(k)];
      if (converted_limit < 0) {
        EXPECT_FALSE(s.contains("converted_persons")) << where;
      } else if (converted_limit == 0) {
        EXPECT_EQ(persons_of(s["converted_persons"]), conv) << "converted persons, step " << k << " " << where;
        EXPECT_EQ(s["converted_persons"].size(), conv.size()) << "a person once, step " << k << " " << where;
      } else {
        // A few: distinct persons who converted, as many as the limit allows.
        const std::set<std::string> got_few = persons_of(s["converted_persons"]);
        EXPECT_EQ(got_few.size(), std::min(conv.size(), static_cast<size_t>(converted_limit))) << where;
        EXPECT_EQ(s["converted_persons"].size(), got_few.size()) << where;
        for (const auto& p : got_few) EXPECT_TRUE(conv.count(p)) << p << " step " << k << " " << where;
      }
      if (k == 0) continue;
      EXPECT_EQ(s["dropoff"]["count"], want.drop[static_cast<size_t>(k)]) << "step " << k << " " << where;
      EXPECT_EQ(persons_of(s["dropoff"]["persons"]), want.drop_persons[static_cast<size_t>(k)])
          << "drop-off persons, step " << k << " " << where;
      const auto& cv = want.conv[static_cast<size_t>(k)];
      if (unordered || cv.empty()) {
        EXPECT_TRUE(s["median_seconds_from_previous"].is_null()) << where;
      } else {
        ExpectNear(s["median_seconds_from_previous"], Median(cv) / 1000, "median step " + std::to_string(k) + where);
        ExpectNear(s["average_seconds_from_previous"], Mean(cv) / 1000, "average step " + std::to_string(k) + where);
      }
    }
    if (q.contains("breakdown")) {
      json gb = json::object();
      for (auto& b : g["breakdowns"]) {
        std::vector<uint64_t> c;
        for (auto& s : b["steps"]) c.push_back(s["count"]);
        gb[b["breakdown_value"].dump()] = c;
      }
      EXPECT_EQ(gb, json(want.groups)) << "breakdown " << where << "\n" << g.dump();
    }
    if (viz == "time_to_convert") {
      const json& h = g["time_to_convert"];
      EXPECT_EQ(h["count"], want.ttc.size()) << where;
      EXPECT_EQ(h["bins"], NaiveHistogram(want.ttc, q.value("bins", 0))) << where << "\n" << h.dump();
      if (want.ttc.empty()) {
        EXPECT_TRUE(h["average_seconds"].is_null() && h["median_seconds"].is_null()) << where;
      } else {
        ExpectNear(h["average_seconds"], Mean(want.ttc) / 1000, "ttc average " + where);
        ExpectNear(h["median_seconds"], Median(want.ttc) / 1000, "ttc median " + where);
      }
    }
    if (viz == "trends") {
      const json& tr = g["trends"];
      EXPECT_EQ(tr["dates"], json(want.period_labels)) << where;
      EXPECT_EQ(tr["step_counts"], json(want.period_counts)) << where << "\n" << tr.dump();
      for (size_t b = 0; b < want.period_counts.size(); b++) {
        const uint64_t a0 = want.period_counts[b][q["from_step"].get<size_t>()];
        const uint64_t a1 = want.period_counts[b][q["to_step"].get<size_t>()];
        if (a0 == 0)
          EXPECT_TRUE(tr["conversion_rates"][b].is_null()) << where;
        else
          ExpectNear(tr["conversion_rates"][b], static_cast<double>(a1) / static_cast<double>(a0), "rate " + where);
      }
    }
    if (viz == "correlation") {
      json c = g["correlation"], wc = NaiveCorrelation(w, q, want);
      for (auto* side : {"events", "properties"}) {
        ASSERT_EQ(c[side].size(), wc[side].size()) << side << " " << where << "\n" << c.dump() << "\n" << wc.dump();
        for (size_t i = 0; i < c[side].size(); i++) {
          ExpectNear(c[side][i]["odds_ratio"], wc[side][i]["odds_ratio"].get<double>(), "odds " + where);
          c[side][i].erase("odds_ratio");
          wc[side][i].erase("odds_ratio");
        }
      }
      EXPECT_EQ(c, wc) << where;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, FunnelExtReference, ::testing::Range(0, 200));

// ---- validation: every bad field is named ----
struct BadFunnel {
  json patch;  // merged into a valid two-step ordered funnel
  std::string field;
  std::string message_part;
};

class FunnelExtValidation : public ::testing::TestWithParam<BadFunnel> {};

TEST_P(FunnelExtValidation, NamesTheField) {
  json q{{"kind", "funnel"},
         {"steps", {{{"event", "a"}}, {{"event", "b"}, {"optional", false}}, {{"event", "c"}}}},
         {"date_from", "2025-03-01"},
         {"date_to", "2025-03-02"}};
  q.merge_patch(GetParam().patch);
  auto st = ParseFunnelQuery(q).status();
  EXPECT_THAT(st, testing::StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr(GetParam().message_part),
                                    GetParam().field))
      << q.dump();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, FunnelExtValidation,
    ::testing::Values(
        BadFunnel{{{"viz", "histogram"}}, "viz", "unknown funnel viz 'histogram'"},
        BadFunnel{{{"viz", 3}}, "viz", "expected a string"},
        BadFunnel{{{"from_step", 1}}, "from_step", "only used with \"viz\":\"time_to_convert\" or \"trends\""},
        BadFunnel{{{"viz", "time_to_convert"}, {"from_step", 2}}, "from_step", "out of range [0, 1]"},
        BadFunnel{{{"viz", "trends"}, {"to_step", 0}}, "to_step", "out of range [1, 2]"},
        BadFunnel{{{"viz", "trends"}, {"from_step", 1}, {"to_step", 1}}, "to_step", "greater than from_step"},
        BadFunnel{{{"viz", "time_to_convert"},
                   {"from_step", 1},
                   {"steps", {{{"event", "a"}}, {{"event", "b"}, {"optional", true}}, {{"event", "c"}}}}},
                  "from_step",
                  "step 1 is optional"},
        BadFunnel{{{"viz", "time_to_convert"}, {"order", "unordered"}}, "viz", "needs an ordered or strict funnel"},
        BadFunnel{{{"viz", "correlation"}, {"order", "unordered"}}, "viz", "needs an ordered or strict funnel"},
        BadFunnel{{{"viz", "trends"}, {"steps", {{{"event", "a"}}}}}, "viz", "needs at least 2 steps"},
        BadFunnel{{{"bins", 5}}, "bins", "only used with \"viz\":\"time_to_convert\""},
        BadFunnel{{{"viz", "time_to_convert"}, {"bins", 0}}, "bins", "out of range [1, 90]"},
        BadFunnel{{{"viz", "time_to_convert"}, {"bins", 91}}, "bins", "out of range [1, 90]"},
        BadFunnel{{{"viz", "time_to_convert"}, {"bins", "many"}}, "bins", "expected \"auto\""},
        BadFunnel{{{"interval", "week"}}, "interval", "only used with \"viz\":\"trends\""},
        BadFunnel{{{"viz", "trends"}, {"interval", "hour"}}, "interval", "expected day, week or month"},
        BadFunnel{{{"breakdown_attribution", "middle"}}, "breakdown_attribution", "unknown attribution 'middle'"},
        BadFunnel{{{"breakdown_attribution", 2}}, "breakdown_attribution", "expected first_touch, last_touch"},
        BadFunnel{{{"breakdown_attribution", "step"}}, "breakdown_attribution_step", "required"},
        BadFunnel{{{"breakdown_attribution", "step"}, {"breakdown_attribution_step", 3}},
                  "breakdown_attribution_step",
                  "out of range [0, 2]"},
        BadFunnel{{{"breakdown_attribution_step", 1}}, "breakdown_attribution_step", "only used with"},
        BadFunnel{{{"breakdown_attribution", {{"step", 5}}}}, "breakdown_attribution.step", "out of range [0, 2]"},
        BadFunnel{{{"breakdown_attribution", {{"stp", 1}}}}, "breakdown_attribution.stp", "unknown field"},
        BadFunnel{{{"breakdown_attribution", "last_touch"}, {"order", "unordered"}},
                  "breakdown_attribution",
                  "need an ordered or strict funnel"},
        BadFunnel{{{"aggregate_by", "group"}}, "aggregate_by", "expected person or session"},
        BadFunnel{
            {{"viz", "correlation"}, {"aggregate_by", "session"}}, "aggregate_by", "correlation compares persons"},
        BadFunnel{{{"correlation_limit", 5}}, "correlation_limit", "only used with \"viz\":\"correlation\""},
        BadFunnel{{{"viz", "correlation"}, {"correlation_limit", 0}}, "correlation_limit", "out of range [1, 100]"},
        BadFunnel{{{"viz", "correlation"}, {"correlation_properties", "channel"}},
                  "correlation_properties",
                  "expected an array"},
        BadFunnel{{{"viz", "correlation"}, {"correlation_properties", {"channel", ""}}},
                  "correlation_properties[1]",
                  "expected a non-empty name"},
        BadFunnel{{{"viz", "correlation"}, {"correlation_exclude_events", {1}}},
                  "correlation_exclude_events[0]",
                  "expected a non-empty name"},
        BadFunnel{{{"steps", {{{"event", "a"}}, {{"event", "b"}, {"first_ever", "yes"}}}}},
                  "steps[1].first_ever",
                  "expected true or false"}));

TEST(FunnelExtValidation, GoodRequestsParse) {
  const json base{{"kind", "funnel"},
                  {"steps", {{{"event", "a"}}, {{"event", "b"}, {"first_ever", true}}, {{"event", "c"}}}},
                  {"date_from", "2025-03-01"},
                  {"date_to", "2025-03-02"}};
  for (const json& patch : {json{{"viz", "time_to_convert"}, {"bins", "auto"}},
                            json{{"viz", "time_to_convert"}, {"from_step", 1}, {"to_step", 2}, {"bins", 90}},
                            json{{"viz", "trends"}, {"interval", "month"}, {"aggregate_by", "session"}},
                            json{{"viz", "correlation"}, {"correlation_properties", {"person.plan", "channel"}}},
                            json{{"breakdown", "channel"}, {"breakdown_attribution", {{"step", 2}}}},
                            json{{"breakdown_attribution", "last_touch"}}}) {
    json q = base;
    q.merge_patch(patch);
    auto parsed = ParseFunnelQuery(q);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << " " << q.dump();
  }
}

}  // namespace
}  // namespace ns
