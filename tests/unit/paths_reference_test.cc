// The paths query kind against a deliberately naive reference written here: per person a
// plain list of events sorted by (ts, node name, event name), cut into sessions, runs and
// paths with vector slicing, counted with std::set of persons; funnel paths from a brute-force
// funnel (every attempt enumerated) giving each person's first time at each step. Random
// stores on 240 seeds: equal timestamps, out-of-order and repeated deliveries, identity
// merges after the fact, several segments and memtable blocks per day, time-zone day edges
// (and a DST change), empty ranges, page views with URLs (string and numeric columns).
// Plus validation (each bad field named), cohort filters and a hand-checked example.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>
#include <roaring/roaring.hh>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "core/env.h"
#include "query/cohort_source.h"
#include "query/operators.h"
#include "query/paths.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::ns::testing::IsOk;
using ::ns::testing::StatusIs;
using ::testing::_;
using ::testing::HasSubstr;

struct RefEvent {
  std::string uuid;
  std::string did;
  std::string event;
  int64_t ts;
  std::optional<std::string> channel;
  std::optional<double> amount;
  std::optional<json> url;          // $current_url: a string or an integer
  std::string merge_with;           // $anon_distinct_id
  std::optional<std::string> plan;  // person property set by this event
};

struct World {
  std::vector<RefEvent> events;
  std::map<std::string, std::string> parent;
  std::map<std::string, std::string> plan;
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

bool PassFilter(const json& f, World& w, const RefEvent& e) {
  std::string prop = f["property"];
  std::string op = f["op"];
  std::optional<json> v;
  if (prop == "channel" && e.channel) v = *e.channel;
  if (prop == "amount" && e.amount) v = *e.amount;
  if (prop == "person.plan") {
    auto it = w.plan.find(w.Person(e));
    if (it != w.plan.end()) v = it->second;
  }
  if (op == "is_set") return v.has_value();
  if (op == "neq") return !v || *v != f["value"];
  if (!v) return false;
  if (op == "eq") return *v == f["value"];
  if (op == "gt") return v->is_number() && v->get<double>() > f["value"].get<double>();
  ADD_FAILURE() << "op " << op;
  return false;
}
bool PassAll(const json& filters, World& w, const RefEvent& e) {
  for (auto& f : filters)
    if (!PassFilter(f, w, e)) return false;
  return true;
}

// ---- naive funnel: each person's first time at each step, by enumerating every attempt ----
std::map<std::string, std::vector<int64_t>> NaiveFunnelReach(World& w, const json& q) {
  const auto& steps = q["steps"];
  const int n = static_cast<int>(steps.size());
  const int64_t window = q.value("window_seconds", int64_t{14 * 86400}) * 1000;
  const bool strict = q.value("order", "ordered") == "strict";
  const int64_t from = LocalMidnight(w.tz, q["date_from"]);
  const int64_t to = LocalMidnight(w.tz, CivilToString(DaysFromCivil(q["date_to"]) + 1));
  const json excl = q.value("exclusions", json::array());
  struct T {
    int64_t ts;
    uint64_t tag;  // step bits, exclusion bits at 32+, bit 63: another event (strict)
    uint32_t order;
  };
  std::map<std::string, std::vector<T>> tls;
  for (auto& e : w.events) {
    if (e.ts < from || e.ts >= to + window + 1) continue;
    uint64_t tag = 0;
    for (int k = 0; k < n; k++)
      if ((steps[k]["event"] == "$any" || steps[k]["event"] == e.event) &&
          PassAll(q.value("filters", json::array()), w, e) && PassAll(steps[k].value("filters", json::array()), w, e))
        tag |= 1ULL << k;
    for (size_t x = 0; x < excl.size(); x++)
      if (excl[x]["event"] == e.event) tag |= 1ULL << (32 + x);
    if (!tag && strict) tag = 1ULL << 63;
    if (!tag) continue;
    uint64_t sm = tag & ((1ULL << n) - 1);
    tls[w.Person(e)].push_back({e.ts, tag, sm ? static_cast<uint32_t>(__builtin_ctzll(sm)) : 64u});
  }
  std::map<std::string, std::vector<int64_t>> out;
  for (auto& [person, tl] : tls) {
    std::sort(tl.begin(), tl.end(), [](const T& a, const T& b) {
      return a.ts != b.ts ? a.ts < b.ts : a.order != b.order ? a.order < b.order : a.tag < b.tag;
    });
    std::vector<int64_t> reach(static_cast<size_t>(n), INT64_MAX);
    for (size_t i = 0; i < tl.size(); i++) {
      if (!(tl[i].tag & 1) || tl[i].ts < from || tl[i].ts >= to) continue;
      std::vector<size_t> path{i};
      std::vector<int> pstep{0};
      std::function<void()> dfs = [&]() {
        const int k = pstep.back();
        for (size_t x = 0; x < excl.size(); x++) {  // the attempt dies at an exclusion event
          int f = excl[x]["from_step"], t = excl[x]["to_step"];
          if (k <= f) continue;
          size_t fpos = 0;
          bool hasf = false;
          for (size_t s = 0; s < pstep.size(); s++)
            if (pstep[s] <= f) fpos = path[s], hasf = true;
          if (!hasf) continue;
          size_t endpos = path.back();
          for (size_t s = 0; s < pstep.size(); s++)
            if (pstep[s] >= t) {
              endpos = path[s];
              break;
            }
          for (size_t p = fpos + 1; p < endpos; p++)
            if (tl[p].tag & (1ULL << (32 + x))) return;
        }
        reach[static_cast<size_t>(k)] = std::min(reach[static_cast<size_t>(k)], tl[path.back()].ts);
        for (int nk = k + 1; nk < n; nk++) {
          for (size_t j = path.back() + 1; j < tl.size(); j++) {
            if (strict && j != path.back() + 1) break;
            if (!(tl[j].tag & (1ULL << nk))) continue;
            if (tl[j].ts - tl[i].ts > window) break;
            path.push_back(j);
            pstep.push_back(nk);
            dfs();
            path.pop_back();
            pstep.pop_back();
          }
          if (!steps[nk].value("optional", false)) break;
        }
      };
      dfs();
    }
    out[person] = reach;
  }
  return out;
}

// ---- naive paths ----
bool IsPage(const std::string& ev) { return ev == "$pageview" || ev == "page_view"; }

std::string UrlText(const json& u) {
  if (u.is_string()) return u.get<std::string>();
  return std::to_string(u.get<int64_t>());
}

// Every match replaced by the alias taken literally, rules in order.
std::string Clean(std::string s, const json& rules) {
  if (s.size() > 2000) {  // cut at a character boundary
    size_t cut = 2000;
    while ((static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;
    s.resize(cut);
  }
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  for (const auto& r : rules) {
    std::regex re(r["regex"].get<std::string>());
    std::string out;
    auto last = s.cbegin();
    for (std::sregex_iterator it(s.begin(), s.end(), re), end; it != end; ++it) {
      out.append(last, (*it)[0].first);
      out += r.value("alias", "");
      last = (*it)[0].second;
    }
    out.append(last, s.cend());
    s = out;
  }
  return s;
}

std::string NodeName(const RefEvent& e, const json& q) {
  if (IsPage(e.event) && e.url) return Clean(UrlText(*e.url), q.value("path_replacements", json::array()));
  return e.event;
}

bool InList(const json& q, const char* key, const std::string& a, const std::string& b) {
  for (const auto& x : q.value(key, json::array()))
    if (x == a || x == b) return true;
  return false;
}

json NaivePaths(World& w, const json& q) {
  const int L = q.value("step_limit", 5);
  const int64_t window = q.value("window_seconds", int64_t{1800}) * 1000;
  const size_t edge_limit = q.value("edge_limit", size_t{50});
  const std::string start = q.value("start_event", ""), end = q.value("end_event", "");
  int64_t from, to;
  std::map<std::string, std::pair<int64_t, int64_t>> bounds;  // funnel paths: person -> [lo, hi]
  if (q.contains("date_from")) {
    from = LocalMidnight(w.tz, q["date_from"]);
    to = LocalMidnight(w.tz, CivilToString(DaysFromCivil(q["date_to"]) + 1));
  }
  if (q.contains("funnel")) {
    const json& f = q["funnel"];
    const int64_t fw = f.value("window_seconds", int64_t{14 * 86400}) * 1000;
    if (!q.contains("date_from")) {
      from = LocalMidnight(w.tz, f["date_from"]);
      to = LocalMidnight(w.tz, CivilToString(DaysFromCivil(f["date_to"]) + 1)) + fw;
    }
    const size_t n = q["funnel_step"];
    const std::string mode = q.value("mode", "after");
    for (auto& [person, reach] : NaiveFunnelReach(w, f)) {
      const int64_t tn = reach[n], tnext = n + 1 < reach.size() ? reach[n + 1] : INT64_MAX;
      if (tn == INT64_MAX) continue;
      if (mode == "after") bounds[person] = {tn, INT64_MAX};
      if (mode == "before" && tnext == INT64_MAX) bounds[person] = {tn, tn + fw};
      if (mode == "between" && tnext != INT64_MAX) bounds[person] = {tn, tnext};
    }
  }
  struct Ev {
    int64_t ts;
    std::string node, event;
  };
  std::map<std::string, std::vector<Ev>> by_person;
  for (auto& e : w.events) {
    if (e.ts < from || e.ts >= to) continue;
    const std::string person = w.Person(e);
    if (q.contains("funnel")) {
      auto it = bounds.find(person);
      if (it == bounds.end() || e.ts < it->second.first || e.ts > it->second.second) continue;
    }
    if (!PassAll(q.value("filters", json::array()), w, e)) continue;
    const std::string node = NodeName(e, q);
    if (!q.value("include_events", json::array()).empty() && !InList(q, "include_events", e.event, node)) continue;
    if (InList(q, "exclude_events", e.event, node)) continue;
    by_person[person].push_back({e.ts, node, e.event});
  }
  struct Elem {
    std::string name;
    int64_t ts;
  };
  struct Count {
    std::set<std::string> persons, drop_persons;
    uint64_t paths = 0, drop_paths = 0;
    int64_t sum_ms = 0;
  };
  std::map<std::pair<int, std::string>, Count> nodes;
  std::map<std::tuple<int, std::string, std::string>, Count> edges;
  uint64_t total_paths = 0;
  std::set<std::string> total_persons;
  for (auto& [person, evs] : by_person) {
    std::sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
      return std::tie(a.ts, a.node, a.event) < std::tie(b.ts, b.node, b.event);
    });
    std::vector<std::vector<Ev>> sessions;
    for (size_t i = 0; i < evs.size(); i++) {
      if (i == 0 || evs[i].ts - evs[i - 1].ts > window) sessions.emplace_back();
      sessions.back().push_back(evs[i]);
    }
    for (auto& s : sessions) {
      struct Run {
        std::string name;
        int64_t ts;
        bool start = false, end = false;
      };
      std::vector<Run> runs;
      for (auto& e : s) {
        if (runs.empty() || runs.back().name != e.node) runs.push_back({e.node, e.ts});
        Run& r = runs.back();
        r.ts = e.ts;
        r.start |= !start.empty() && (e.event == start || e.node == start);
        r.end |= !end.empty() && (e.event == end || e.node == end);
      }
      size_t a = 0;
      if (!start.empty()) {
        while (a < runs.size() && !runs[a].start) a++;
        if (a == runs.size()) continue;
      }
      std::vector<Elem> path;
      if (end.empty()) {
        for (size_t i = a; i < runs.size() && path.size() < static_cast<size_t>(L); i++)
          path.push_back({runs[i].name, runs[i].ts});
      } else {
        size_t b = a;
        while (b < runs.size() && !runs[b].end) b++;
        if (b == runs.size()) continue;
        std::vector<Elem> seg;
        for (size_t i = a; i <= b; i++) seg.push_back({runs[i].name, runs[i].ts});
        if (start.empty()) {
          size_t first = seg.size() > static_cast<size_t>(L) ? seg.size() - static_cast<size_t>(L) : 0;
          path.assign(seg.begin() + static_cast<ptrdiff_t>(first), seg.end());
        } else if (seg.size() <= static_cast<size_t>(L)) {
          path = seg;
        } else {
          const size_t head = static_cast<size_t>((L + 1) / 2), tail = static_cast<size_t>(L / 2);
          path.assign(seg.begin(), seg.begin() + static_cast<ptrdiff_t>(head));
          path.push_back({"...", seg[head].ts});
          path.insert(path.end(), seg.end() - static_cast<ptrdiff_t>(tail), seg.end());
        }
      }
      total_paths++;
      total_persons.insert(person);
      for (size_t i = 0; i < path.size(); i++) {
        Count& c = nodes[{static_cast<int>(i + 1), path[i].name}];
        c.paths++;
        c.persons.insert(person);
        if (i + 1 == path.size()) {
          c.drop_paths++;
          c.drop_persons.insert(person);
        } else {
          Count& ce = edges[{static_cast<int>(i + 1), path[i].name, path[i + 1].name}];
          ce.paths++;
          ce.persons.insert(person);
          ce.sum_ms += path[i + 1].ts - path[i].ts;
        }
      }
    }
  }
  // The answer's selection: top edges, pruned to those reachable from step 1, their nodes
  // plus the top step-1 nodes.
  struct E {
    int step;
    std::string from, to, source, target;
    const Count* c;
  };
  std::vector<E> all;
  for (auto& [k, c] : edges) {
    auto& [step, a, b] = k;
    all.push_back({step, a, b, std::to_string(step) + "_" + a, std::to_string(step + 1) + "_" + b, &c});
  }
  std::sort(all.begin(), all.end(), [](const E& x, const E& y) {
    if (x.c->persons.size() != y.c->persons.size()) return x.c->persons.size() > y.c->persons.size();
    if (x.c->paths != y.c->paths) return x.c->paths > y.c->paths;
    return std::tie(x.source, x.target) < std::tie(y.source, y.target);
  });
  if (all.size() > edge_limit) all.resize(edge_limit);
  std::set<std::pair<int, std::string>> shown;
  std::vector<bool> kept(all.size(), false);
  for (int step = 1; step <= 11; step++)
    for (size_t i = 0; i < all.size(); i++)
      if (all[i].step == step && (step == 1 || shown.count({step, all[i].from}))) {
        kept[i] = true;
        shown.insert({step, all[i].from});
        shown.insert({step + 1, all[i].to});
      }
  json out_edges = json::array();
  for (size_t i = 0; i < all.size(); i++)
    if (kept[i])
      out_edges.push_back(
          {{"source", all[i].source},
           {"target", all[i].target},
           {"persons", all[i].c->persons.size()},
           {"paths", all[i].c->paths},
           {"average_seconds", static_cast<double>(all[i].c->sum_ms) / static_cast<double>(all[i].c->paths) / 1000.0}});
  std::vector<std::pair<std::string, const Count*>> firsts;
  for (auto& [k, c] : nodes)
    if (k.first == 1) firsts.push_back({k.second, &c});
  std::sort(firsts.begin(), firsts.end(), [](auto& x, auto& y) {
    if (x.second->persons.size() != y.second->persons.size())
      return x.second->persons.size() > y.second->persons.size();
    if (x.second->paths != y.second->paths) return x.second->paths > y.second->paths;
    return x.first < y.first;
  });
  for (size_t i = 0; i < firsts.size() && i < edge_limit; i++) shown.insert({1, firsts[i].first});
  std::vector<std::pair<std::pair<int, std::string>, const Count*>> ns;
  for (auto& k : shown) ns.push_back({k, &nodes.at(k)});
  std::sort(ns.begin(), ns.end(), [](auto& x, auto& y) {
    if (x.first.first != y.first.first) return x.first.first < y.first.first;
    if (x.second->persons.size() != y.second->persons.size())
      return x.second->persons.size() > y.second->persons.size();
    if (x.second->paths != y.second->paths) return x.second->paths > y.second->paths;
    return x.first.second < y.first.second;
  });
  json out_nodes = json::array();
  for (auto& [k, c] : ns)
    out_nodes.push_back({{"id", std::to_string(k.first) + "_" + k.second},
                         {"step", k.first},
                         {"event", k.second},
                         {"persons", c->persons.size()},
                         {"paths", c->paths},
                         {"dropoff_persons", c->drop_persons.size()},
                         {"dropoff_paths", c->drop_paths}});
  return {{"paths", total_paths}, {"persons", total_persons.size()}, {"nodes", out_nodes}, {"edges", out_edges}};
}

// Compares everything the reference computes; times with a tolerance.
void ExpectSame(const json& got, const json& want, const json& q) {
  EXPECT_EQ(got["paths"], want["paths"]) << q.dump();
  EXPECT_EQ(got["persons"], want["persons"]) << q.dump();
  EXPECT_EQ(got["nodes"], want["nodes"]) << q.dump() << "\n got " << got["nodes"].dump() << "\n want "
                                         << want["nodes"].dump();
  ASSERT_EQ(got["edges"].size(), want["edges"].size())
      << q.dump() << "\n got " << got["edges"].dump() << "\n want " << want["edges"].dump();
  for (size_t i = 0; i < want["edges"].size(); i++) {
    json g = got["edges"][i], wnt = want["edges"][i];
    EXPECT_NEAR(g["average_seconds"].get<double>(), wnt["average_seconds"].get<double>(), 1e-6) << q.dump();
    g.erase("average_seconds");
    wnt.erase("average_seconds");
    EXPECT_EQ(g, wnt) << "edge " << i << " " << q.dump();
  }
}

// The store's files without fsync: the test is about answers, not durability, and the
// machine's disk is shared (240 stores with fsyncs take a minute of waiting).
class NoSyncEnv : public Env {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    NS_ASSIGN_OR_RETURN(auto f, base_->NewWritableFile(path));
    return std::unique_ptr<WritableFile>(new File(std::move(f)));
  }
  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    NS_ASSIGN_OR_RETURN(auto f, base_->NewAppendableFile(path));
    return std::unique_ptr<WritableFile>(new File(std::move(f)));
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
  Env* base_ = Env::Default();
};

NoSyncEnv* FastEnv() {
  static NoSyncEnv env;
  return &env;
}

// ---- the random test ----
class PathsReference : public ::testing::TestWithParam<int> {};

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kNames[] = {"s0", "s1", "s2", "page_view", "$pageview", "refund", "login"};
const std::string kLongUrl = "/l/" + std::string(1996, 'x') + "\u00e9\u00e9/";  // cut inside the first é
const char* kUrls[] = {"/a/1/", "/a/22", "/b", "/b/", "/", "/c?x=1", "s1", kLongUrl.c_str()};
const char* kEndpoints[] = {"s0", "s1", "s2", "page_view", "$pageview", "/a/<id>", "/b", "/", "/c", "7", "..."};

TEST_P(PathsReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 6007 + 29);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  World w;
  w.tz = kZones[seed % 5];
  auto tz = TimeZone::Load(w.tz);
  ASSERT_TRUE(tz.ok());
  // Around the 2025-03-09 US / 2025-03-30 EU DST changes; steps from a second to an hour so
  // that gaps fall on both sides of the windows and timestamps repeat.
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;  // 2025-03-04
  const int64_t step = std::vector<int64_t>{1000, 60'000, 600'000, 3'600'000}[static_cast<size_t>(seed % 4)];
  const int persons = R(2, 12);
  const int nevents = seed % 6 == 1 ? R(300, 900) : R(30, 260);
  const int64_t span = std::vector<int64_t>{2, 6, 20}[static_cast<size_t>(R(0, 2))] * 86'400'000;
  const bool numeric_urls = seed % 6 == 0;  // some blocks hold only numbers in $current_url
  const bool many_urls = seed % 6 == 1;
  std::vector<RefEvent> sent;
  for (int i = 0; i < nevents; i++) {
    RefEvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(i);
    int p = R(1, persons);
    e.did = (rng() % 3 == 0 ? "a" : "u") + std::to_string(p);
    e.event = kNames[R(0, 5)];
    e.ts = base + static_cast<int64_t>(R(0, static_cast<int>(span / step))) * step;
    if (rng() % 4) e.channel = std::string(1, static_cast<char>('a' + R(0, 2)));
    if (rng() % 2) e.amount = R(1, 50) * 1.5;
    if (IsPage(e.event) && rng() % 5) {
      if (numeric_urls)
        e.url = R(0, 3) ? json(7) : json(12);
      else if (many_urls)  // hundreds of nodes and edges: keys beyond a person's inline bits
        e.url = "/p/" + std::to_string(R(0, 300));
      else
        e.url = kUrls[R(0, 7)];
    }
    if (rng() % 15 == 0) {
      e.event = "login";
      e.did = "u" + std::to_string(p);
      e.merge_with = "a" + std::to_string(p);
    }
    if (rng() % 10 == 0 && e.did[0] == 'u') e.plan = (p % 2) ? "pro" : "free";
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
  StoreOptions so;
  so.background = false;
  so.env = FastEnv();
  so.seal_rows = static_cast<size_t>(R(3, 40));
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t pos = 0;
  while (pos < deliveries.size()) {
    size_t n = static_cast<size_t>(R(1, 60));
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
      if (r.amount) e.props.push_back({"amount", PropValue::Num(*r.amount)});
      if (r.url)
        e.props.push_back(
            {"$current_url", r.url->is_string() ? PropValue::Str(*r.url) : PropValue::Num(r.url->get<double>())});
      if (!r.merge_with.empty()) {
        e.props.push_back({"$anon_distinct_id", PropValue::Str(r.merge_with)});
        e.merge_with.push_back(r.merge_with);
      }
      if (r.plan) e.person_set.push_back({"plan", PropValue::Str(*r.plan)});
      batch.push_back(std::move(e));
    }
    pos += n;
    ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
    int action = R(0, 9);
    if (action == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
    if (action == 1) {
      ASSERT_TRUE((*store)->CompactAll().ok());
    }
  }
  auto day = [&](int64_t off_days) { return LocalDate(w.tz, base + off_days * 86'400'000); };
  auto random_range = [&](json& q) {
    int a = R(-2, static_cast<int>(span / 86'400'000)), b = a + R(0, 6);
    q["date_from"] = day(a);
    q["date_to"] = day(b);
  };
  auto random_filters = [&]() {
    json f = json::array();
    for (int i = R(0, 3) == 0 ? 1 : 0; i > 0; i--) {
      switch (R(0, 3)) {
        case 0: f.push_back({{"property", "channel"}, {"op", "neq"}, {"value", "b"}}); break;
        case 1: f.push_back({{"property", "amount"}, {"op", "gt"}, {"value", 20}}); break;
        case 2: f.push_back({{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}); break;
        default: f.push_back({{"property", "channel"}, {"op", "is_set"}}); break;
      }
    }
    return f;
  };
  auto random_names = [&](int max) {
    json a = json::array();
    for (int i = R(0, max); i > 0; i--) a.push_back(kEndpoints[R(0, 10)]);
    return a;
  };
  auto random_paths_fields = [&](json& q) {
    q["step_limit"] = R(0, 2) == 0 ? R(2, 10) : R(2, 4);
    q["window_seconds"] = std::vector<int>{0, 60, 600, 1800, 7200, 86400}[static_cast<size_t>(R(0, 5))];
    if (R(0, 1)) q["start_event"] = kEndpoints[R(0, 10)];
    if (R(0, 2) == 0) q["end_event"] = kEndpoints[R(0, 10)];
    if (R(0, 3) == 0) q["include_events"] = random_names(3);
    if (R(0, 3) == 0) q["exclude_events"] = random_names(2);
    if (R(0, 1)) q["edge_limit"] = R(1, 8);
    if (R(0, 1)) {
      json rules = json::array();
      rules.push_back({{"regex", "/\\d+"}, {"alias", "/<id>"}});
      if (R(0, 1)) rules.push_back({{"regex", "\\?.*$"}, {"alias", ""}});
      if (R(0, 2) == 0) rules.push_back({{"regex", "^1"}, {"alias", "$&x"}});  // alias taken literally
      q["path_replacements"] = rules;
    }
    q["filters"] = random_filters();
  };

  // Plain paths.
  for (int t = 0; t < 6; t++) {
    json q{{"kind", "paths"}};
    random_range(q);
    random_paths_fields(q);
    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();
    ExpectSame(*got, NaivePaths(w, q), q);
  }

  // Both ends over long sessions: paths longer than step_limit keep head, "..." and tail.
  for (int t = 0; t < 2; t++) {
    json q{{"kind", "paths"}, {"step_limit", R(2, 4)}, {"window_seconds", 86400 * R(1, 3)}};
    random_range(q);
    q["start_event"] = kEndpoints[R(0, 4)];
    q["end_event"] = kEndpoints[R(0, 7)];
    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();
    ExpectSame(*got, NaivePaths(w, q), q);
  }

  // Funnel paths.
  for (int t = 0; t < 4; t++) {
    json f{{"kind", "funnel"}};
    random_range(f);
    if (R(0, 1)) f["date_to"] = day(static_cast<int>(span / 86'400'000) + 1);  // most of the data
    const int n = R(2, 3);
    json steps = json::array();
    for (int k = 0; k < n; k++) {
      json s{{"event", R(0, 6) == 0 ? "$any" : kNames[R(0, 4)]}};
      if (R(0, 4) == 0) s["filters"] = random_filters();
      if (k > 0 && k < n - 1 && R(0, 4) == 0) s["optional"] = true;
      steps.push_back(s);
    }
    f["steps"] = steps;
    f["window_seconds"] = std::vector<int>{0, 600, 3600, 86400}[static_cast<size_t>(R(0, 3))];
    f["order"] = R(0, 2) == 0 ? "strict" : "ordered";
    if (R(0, 2) == 0) f["filters"] = random_filters();
    if (R(0, 2) == 0) {
      f["exclusions"] = json::array({{{"event", "refund"}, {"from_step", 0}, {"to_step", n - 1}}});
      for (auto& s : f["steps"])
        if (s["event"] == "refund" || s["event"] == "$any") s["event"] = "s1";
    }
    json q{{"kind", "paths"}, {"funnel", f}};
    q["mode"] = std::vector<std::string>{"after", "before", "between"}[static_cast<size_t>(R(0, 2))];
    q["funnel_step"] = q["mode"] == "after" ? R(0, n - 1) : R(0, n - 2);
    if (R(0, 2) == 0) random_range(q);
    random_paths_fields(q);
    if (R(0, 1)) {  // the usual funnel question: what comes right after the step
      q.erase("start_event");
      q.erase("end_event");
    }
    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();
    ExpectSame(*got, NaivePaths(w, q), q);
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PathsReference, ::testing::Range(0, 240));

// ---- a hand-checked example (the one in docs/queries.md) ----
class PathsExample : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    so.env = FastEnv();
    auto st = EventStore::Open(dir_.path(), so);
    ASSERT_TRUE(st.ok());
    store_ = std::move(*st);
    auto tz = TimeZone::Load("Asia/Shanghai");
    ASSERT_TRUE(tz.ok());
    tz_.emplace(*tz);
    // 2026-11-02 10:00 local = 02:00Z.
    const int64_t t0 = 1'793'584'800'000LL;
    auto ev = [&](const std::string& did, const char* name, int64_t sec, const char* url = nullptr) {
      Event e;
      e.distinct_id = did;
      e.event = name;
      e.ts_ms = t0 + sec * 1000;
      if (url) e.props.push_back({"$current_url", PropValue::Str(url)});
      return e;
    };
    std::vector<Event> batch = {
        // u1: two sessions (an hour apart)
        ev("u1", "page_view", 0, "https://shop.example/item/17/"),
        ev("u1", "product_click", 20),
        ev("u1", "add_to_cart", 80),
        ev("u1", "pay", 200),
        ev("u1", "page_view", 3800, "https://shop.example/item/9"),
        ev("u1", "product_click", 3810),
        // u2: one session, the click repeated (one element)
        ev("u2", "page_view", 5, "https://shop.example/item/3"),
        ev("u2", "product_click", 15),
        ev("u2", "product_click", 45),
        ev("u2", "add_to_cart", 105),
        // u3: a page view only
        ev("u3", "page_view", 7, "https://shop.example/cart"),
    };
    ASSERT_TRUE(store_->Append(std::move(batch), Durability::kUnlogged).ok());
  }
  StatusOr<json> Run(const json& q) { return RunQuery(q, *store_, *tz_); }

  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  std::optional<TimeZone> tz_;
};

TEST_F(PathsExample, CleanedUrlsAndCounts) {
  json q = {{"kind", "paths"},
            {"date_from", "2026-11-02"},
            {"date_to", "2026-11-02"},
            {"step_limit", 4},
            {"path_replacements", json::array({{{"regex", "^https://shop\\.example"}, {"alias", ""}},
                                               {{"regex", "/item/\\d+"}, {"alias", "/item/<id>"}}})}};
  auto r = Run(q);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ((*r)["paths"], 4);
  EXPECT_EQ((*r)["persons"], 3);
  json edges = json::array();
  for (auto& e : (*r)["edges"]) edges.push_back({e["source"], e["target"], e["persons"], e["paths"]});
  EXPECT_EQ(edges, json::parse(R"([
    ["1_/item/<id>", "2_product_click", 2, 3],
    ["2_product_click", "3_add_to_cart", 2, 2],
    ["3_add_to_cart", "4_pay", 1, 1]])"))
      << r->dump();
  // u2's click is one element at the time of its last occurrence: (20 + 60) / 2 s to the cart.
  EXPECT_DOUBLE_EQ((*r)["edges"][1]["average_seconds"].get<double>(), 60.0);
  EXPECT_DOUBLE_EQ((*r)["edges"][0]["average_seconds"].get<double>(), (20.0 + 10 + 40) / 3);
  json first = (*r)["nodes"][0];
  EXPECT_EQ(first["id"], "1_/item/<id>");
  EXPECT_EQ(first["persons"], 2);
  json cart = (*r)["nodes"][1];
  EXPECT_EQ(cart["id"], "1_/cart");
  EXPECT_EQ(cart["dropoff_persons"], 1);

  q["start_event"] = "product_click";
  q["end_event"] = "pay";
  r = Run(q);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ((*r)["paths"], 1);
  EXPECT_EQ((*r)["edges"].size(), 2u);

  // Top-1 edge by persons, nodes of the kept edge plus the step-1 nodes.
  q.erase("start_event");
  q.erase("end_event");
  q["edge_limit"] = 1;
  r = Run(q);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ((*r)["edges"].size(), 1u);
  EXPECT_EQ((*r)["nodes"].size(), 2u) << r->dump();
}

TEST_F(PathsExample, BothEndsKeepHeadAndTail) {
  json q = {{"kind", "paths"},      {"date_from", "2026-11-02"},  {"date_to", "2026-11-02"},
            {"step_limit", 2},      {"start_event", "page_view"}, {"end_event", "pay"},
            {"window_seconds", 300}};
  auto r = Run(q);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ((*r)["edges"].size(), 2u) << r->dump();
  EXPECT_EQ((*r)["edges"][0]["target"], "2_...");
  EXPECT_EQ((*r)["edges"][1]["target"], "3_pay");
  // "..." stands for the click at 20 s; pay is 180 s after it.
  EXPECT_DOUBLE_EQ((*r)["edges"][1]["average_seconds"].get<double>(), 180.0);
}

TEST_F(PathsExample, FunnelPaths) {
  json funnel = {{"steps", json::array({{{"event", "product_click"}}, {{"event", "pay"}}})},
                 {"date_from", "2026-11-02"},
                 {"date_to", "2026-11-02"},
                 {"window_seconds", 86400}};
  json q = {{"kind", "paths"}, {"funnel", funnel}, {"funnel_step", 0}, {"mode", "before"}};
  auto r = Run(q);  // u2 clicked and did not pay: click -> cart
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ((*r)["persons"], 1);
  ASSERT_EQ((*r)["edges"].size(), 1u) << r->dump();
  EXPECT_EQ((*r)["edges"][0]["source"], "1_product_click");
  EXPECT_EQ((*r)["edges"][0]["target"], "2_add_to_cart");
  EXPECT_EQ((*r)["mode"], "before");

  q["mode"] = "between";  // u1: click, cart, pay
  r = Run(q);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ((*r)["persons"], 1);
  EXPECT_EQ((*r)["edges"].size(), 2u);
}

TEST_F(PathsExample, DeadlineAnswersNoPartialResult) {
  json funnel = {{"steps", json::array({{{"event", "product_click"}}, {{"event", "pay"}}})},
                 {"date_from", "2026-11-02"},
                 {"date_to", "2026-11-02"}};
  for (const json& q : {json{{"kind", "paths"}, {"date_from", "2026-11-02"}, {"date_to", "2026-11-02"}},
                        json{{"kind", "paths"}, {"funnel", funnel}, {"funnel_step", 0}}}) {
    Deadline gone = Deadline::After(0, [] { return true; });
    auto r = RunQuery(q, *store_, *tz_, &gone);
    EXPECT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded)) << q.dump();
  }
}

TEST_F(PathsExample, RelativeDatesInTheFunnelToo) {
  json funnel = {{"steps", json::array({{{"event", "product_click"}}, {{"event", "pay"}}})},
                 {"date_from", "-7d"},
                 {"date_to", "today"}};
  json q = {{"kind", "paths"}, {"funnel", funnel}, {"funnel_step", 0}};
  EXPECT_THAT(Run(q), IsOk());
  q["funnel"]["date_from"] = "last_fortnight";
  EXPECT_THAT(Run(q), StatusIs(StatusCode::kInvalidArgument, HasSubstr("funnel.date_from"), "funnel.date_from"));
}

// ---- validation: every bad field is named ----
TEST(PathsValidation, NamesTheField) {
  const json ok = {{"kind", "paths"}, {"date_from", "2026-11-01"}, {"date_to", "2026-11-02"}};
  const json funnel = {{"steps", json::array({{{"event", "a"}}, {{"event", "b"}}})},
                       {"date_from", "2026-11-01"},
                       {"date_to", "2026-11-02"}};
  auto funnel_with = [&](const char* key, json v) {
    json f = funnel;
    f[key] = std::move(v);
    return f;
  };
  struct Case {
    json patch;
    std::vector<std::string> remove;
    std::string field;
    std::string text;
  };
  const std::vector<Case> cases = {
      {json::object(), {"date_from"}, "date_from", "required"},
      {{{"date_to", "2026-10-01"}}, {}, "date_to", "before"},
      {{{"step_limit", 1}}, {}, "step_limit", "out of range [2, 10]"},
      {{{"step_limit", 11}}, {}, "step_limit", "out of range"},
      {{{"step_limit", "5"}}, {}, "step_limit", "expected an integer"},
      {{{"start_event", ""}}, {}, "start_event", "must not be empty"},
      {{{"end_event", 3}}, {}, "end_event", "expected a string"},
      {{{"start_event", "$any"}}, {}, "start_event", "$any"},
      {{{"include_events", "a"}}, {}, "include_events", "expected an array"},
      {{{"include_events", {"a", ""}}}, {}, "include_events[1]", "non-empty"},
      {{{"exclude_events", {1}}}, {}, "exclude_events[0]", "non-empty event name"},
      {{{"window_seconds", -1}}, {}, "window_seconds", "out of range"},
      {{{"edge_limit", 0}}, {}, "edge_limit", "out of range [1, 1000]"},
      {{{"page_property", ""}}, {}, "page_property", "must not be empty"},
      {{{"page_property", "person.url"}}, {}, "page_property", "person property"},
      {{{"path_replacements", json::array({"/a"})}}, {}, "path_replacements[0]", "expected an object"},
      {{{"path_replacements", json::array({{{"regex", "("}, {"alias", "x"}}})}},
       {},
       "path_replacements[0].regex",
       "invalid regular expression '('"},
      {{{"path_replacements", json::array({{{"alias", "x"}}})}}, {}, "path_replacements[0].regex", "required"},
      {{{"path_replacements", json::array({{{"regex", "a"}, {"alias", 1}}})}},
       {},
       "path_replacements[0].alias",
       "expected a string"},
      {{{"path_replacements", json::array({{{"regex", "a"}, {"with", "b"}}})}},
       {},
       "path_replacements[0].with",
       "unknown field"},
      {{{"filters", json::array({{{"property", "x"}, {"op", "bogus"}}})}}, {}, "filters[0].op", "unknown operator"},
      {{{"steplimit", 3}}, {}, "steplimit", "unknown field"},
      {{{"funnel_step", 1}}, {}, "funnel_step", "only with \"funnel\""},
      {{{"mode", "after"}}, {}, "mode", "only with \"funnel\""},
      {{{"funnel", 3}}, {}, "funnel", "expected a funnel query object"},
      {{{"funnel", {{"steps", json::array()}, {"date_from", "2026-11-01"}, {"date_to", "2026-11-02"}}},
        {"funnel_step", 0}},
       {},
       "funnel.steps",
       "non-empty"},
      {{{"funnel", {{"steps", json::array({{{"event", ""}}})}, {"date_from", "2026-11-01"}, {"date_to", "2026-11-02"}}},
        {"funnel_step", 0}},
       {},
       "funnel.steps[0].event",
       "funnel.steps[0].event: must not be empty"},
      {{{"funnel", funnel}}, {}, "funnel_step", "required"},
      {{{"funnel", funnel}, {"funnel_step", 2}}, {}, "funnel_step", "out of range [0, 1]"},
      {{{"funnel", funnel}, {"funnel_step", 1}, {"mode", "before"}}, {}, "funnel_step", "out of range [0, 0]"},
      {{{"funnel", funnel}, {"funnel_step", 0}, {"mode", "during"}}, {}, "mode", "unknown funnel path mode"},
      {{{"funnel", {{"kind", "trends"}}}, {"funnel_step", 0}}, {}, "funnel.kind", "expected \"funnel\""},
      {{{"funnel", funnel_with("order", "unordered")}, {"funnel_step", 0}}, {}, "funnel.order", "ordered or strict"},
      {{{"funnel", funnel_with("window", 5)}, {"funnel_step", 0}},
       {},
       "funnel.window",
       "unknown field (did you mean window_seconds?)"},
      {{{"funnel",
         {{"steps", json::array({{{"event", "a"}}})}, {"date_from", "2026-11-01"}, {"date_to", "2026-11-02"}}},
        {"funnel_step", 0},
        {"mode", "between"}},
       {},
       "funnel_step",
       "at least two steps"},
  };
  for (const Case& c : cases) {
    json q = ok;
    q.update(c.patch);
    for (const auto& k : c.remove) q.erase(k);
    auto st = ParsePathsQuery(q);
    EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, HasSubstr(c.text), c.field)) << q.dump();
    // The registry's check says the same.
    const QueryKind* kind = FindQueryKind("paths");
    ASSERT_NE(kind, nullptr);
    EXPECT_EQ(kind->check(q).field(), c.field);
  }
  // With a funnel the dates are optional; funnel_step and mode default as documented.
  json fq = {{"kind", "paths"}, {"funnel", funnel}, {"funnel_step", 1}};
  auto p = ParsePathsQuery(fq);
  ASSERT_THAT(p, IsOk());
  EXPECT_FALSE(p->has_dates);
  EXPECT_EQ(p->mode, FunnelPathMode::kAfter);
  auto d = ParsePathsQuery(ok);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->step_limit, 5);
  EXPECT_EQ(d->window_ms, 1'800'000);
  EXPECT_EQ(d->edge_limit, 50u);
}

// ---- cohort filters bind like every kind's (filters and the funnel's) ----
class OneCohort : public CohortSource {
 public:
  explicit OneCohort(std::vector<uint32_t> members) : members_(std::move(members)) {}
  StatusOr<std::shared_ptr<const Roaring>> Members(int64_t id, const StoreSnapshot&, const TimeZone&) const override {
    if (id != 1) return NotFound("no cohort " + std::to_string(id));
    auto r = std::make_shared<Roaring>();
    for (uint32_t p : members_) r->add(p);
    return std::shared_ptr<const Roaring>(r);
  }

 private:
  std::vector<uint32_t> members_;
};

TEST_F(PathsExample, CohortFilters) {
  const QueryKind* kind = FindQueryKind("paths");
  ASSERT_NE(kind, nullptr);
  auto snap = store_->Snapshot();
  uint32_t u2 = UINT32_MAX;
  for (uint32_t p = 0; p < snap->persons->size(); p++)
    if (snap->persons->IsPerson(p) && store_->DisplayId(p) == "u2") u2 = p;
  ASSERT_NE(u2, UINT32_MAX);
  OneCohort cohorts({u2});
  QueryContext ctx{*snap, *tz_, nullptr, nullptr, &cohorts, nullptr};
  json q = {{"kind", "paths"},
            {"date_from", "2026-11-02"},
            {"date_to", "2026-11-02"},
            {"filters", json::array({{{"cohort", 1}}})}};
  auto r = kind->run(q, ctx);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ((*r)["persons"], 1);
  EXPECT_EQ((*r)["paths"], 1);
  q["filters"] = json::array({{{"cohort", 1}, {"op", "not_in"}}});
  r = kind->run(q, ctx);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ((*r)["persons"], 2);

  q["filters"] = json::array({{{"cohort", 5}}});
  EXPECT_THAT(kind->run(q, ctx), StatusIs(StatusCode::kInvalidArgument, HasSubstr("no cohort 5"), "filters[0].cohort"));
  json fq = {{"kind", "paths"},
             {"funnel",
              {{"date_from", "2026-11-02"},
               {"date_to", "2026-11-02"},
               {"steps", json::array({{{"event", "product_click"}, {"filters", json::array({{{"cohort", 9}}})}}})}}},
             {"funnel_step", 0}};
  EXPECT_THAT(kind->run(fq, ctx), StatusIs(StatusCode::kInvalidArgument, _, "funnel.steps[0].filters[0].cohort"));
  // Without a cohort source (the local CLI) a cohort filter is refused, as for every kind.
  QueryContext bare{*snap, *tz_, nullptr, nullptr, nullptr, nullptr};
  EXPECT_THAT(kind->run(q, bare), StatusIs(StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace ns
