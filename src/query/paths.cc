// Paths. Semantics (docs/queries.md §Paths), PostHog's paths where it has one:
// - The events: every event of the person with ts in the range that passes `filters`, whose
//   event name or node name is in include_events (if given) and neither is in exclude_events;
//   funnel paths keep only the events of the persons and moments the funnel step selects.
// - A node's name is the event name, except page views ($pageview, page_view) with a
//   page_property value: its text, one trailing "/" dropped ("/a/" -> "/a"; "/" stays), then
//   every path_replacements rule in order. A name given in start_event, end_event,
//   include_events or exclude_events matches an event when it equals the event's name or
//   its node name.
// - A person's events in order (ts, node name, event name) are cut into sessions at every gap
//   longer than window_seconds; inside a session consecutive events with the same node name
//   are one element (a run) at the time of its last event.
// - The path of a session: its first step_limit elements; with start_event from the first
//   element whose run has a start_event match; with end_event the last step_limit elements up
//   to the first element (at or after the start) whose run has an end_event match. With both,
//   a path longer than step_limit keeps its first ceil(L/2) and last floor(L/2) elements
//   joined by a "..." node (the time of the first element it hides). Sessions without the
//   start (or end) have no path.
// - Every path counts (a person with three sessions has three paths); `persons` of a node or
//   an edge counts a person once however many of their paths go through it.
//
// Algorithm: one pass in per-person time order (ScanPersonGroups) with per-person state in
// dense arrays: the open session's elements (at most step_limit of them, the last ones in a
// ring), the current run, and the node and edge keys the person already counted (bits for
// the common ones). A session's path is emitted when the person's next event is more than
// the window later, or at the end of the scan. Node names (event names, cleaned URLs) are
// interned before the parallel part, once per distinct raw URL. Cost: O(rows) plus
// O(step_limit) per path; memory O(persons x step_limit).
#include "query/paths.h"

#include <algorithm>
#include <unordered_map>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr uint32_t kNoName = UINT32_MAX;
constexpr uint32_t kMaxNames = 1u << 29;  // edge keys pack two names and a step in 64 bits
constexpr std::string_view kDotsName = "...";

bool IsPageViewEvent(std::string_view name) {
  for (std::string_view p : kPageViewEvents)
    if (p == name) return true;
  return false;
}

StatusOr<std::vector<std::string>> ParseNameList(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return InvalidArgument(std::string(key) + ": expected an array of event names", key);
  if (it->size() > 100) return InvalidArgument(std::string(key) + ": at most 100 names", key);
  for (size_t i = 0; i < it->size(); i++) {
    const std::string f = std::string(key) + "[" + std::to_string(i) + "]";
    const json& v = (*it)[i];
    if (!v.is_string() || v.get_ref<const std::string&>().empty())
      return InvalidArgument(f + ": expected a non-empty event name", f);
    if (v == kAnyEvent)
      return InvalidArgument(f + ": $any is not accepted here (leave include_events out to keep every event)", f);
    out.push_back(v);
  }
  return out;
}

StatusOr<std::string> ParseEndpoint(const json& j, const char* key) {
  NS_ASSIGN_OR_RETURN(std::string s, GetString(j, key, "", false));
  if (s == kAnyEvent)
    return InvalidArgument(std::string(key) + ": $any is not accepted here (leave " + key + " out instead)", key);
  if (j.contains(key) && !j[key].is_null() && s.empty())
    return InvalidArgument(std::string(key) + ": must not be empty", key);
  return s;
}

// "funnel.steps[1].event: ..." for an error of the embedded funnel.
Status InFunnel(const Status& s) {
  std::string field = s.field().empty() ? "funnel" : "funnel." + s.field();
  return InvalidArgument("funnel." + s.message(), field);
}

// Longer page URLs are cut (at a UTF-8 character boundary) before cleaning: std::regex
// recurses once per character matched, and a property value may be a megabyte long.
constexpr size_t kMaxPageChars = 2000;

// The node name of a page URL: one trailing "/" dropped, then the cleaning rules in order.
StatusOr<std::string> CleanPageName(const PathsQuery& q, std::string url) {
  if (url.size() > kMaxPageChars) {
    size_t cut = kMaxPageChars;
    while (cut > 0 && (static_cast<unsigned char>(url[cut]) & 0xC0) == 0x80) cut--;
    url.resize(cut);
  }
  if (url.size() > 1 && url.back() == '/') url.pop_back();
  for (size_t i = 0; i < q.replacements.size(); i++) {
    const PathReplacement& r = q.replacements[i];
    std::string alias;  // literal: "$" is the format escape of regex_replace
    for (char c : r.alias) {
      alias += c;
      if (c == '$') alias += '$';
    }
    try {
      url = std::regex_replace(url, *r.compiled, alias);
    } catch (const std::regex_error& e) {
      const std::string f = "path_replacements[" + std::to_string(i) + "].regex";
      return InvalidArgument(f + ": the expression failed on a value (" + e.what() + ")", f);
    }
  }
  return url;
}

// Node names of one query, interned once (single-threaded, before the scan).
class NodeNames {
 public:
  uint32_t Intern(const std::string& s) {
    auto [it, ins] = index_.try_emplace(s, static_cast<uint32_t>(names_.size()));
    if (ins) names_.push_back(s);
    return it->second;
  }
  const std::string& operator[](uint32_t id) const { return names_[id]; }
  size_t size() const { return names_.size(); }
  // rank[id]: position of the name in byte order (the tie order at equal timestamps).
  std::vector<uint32_t> Ranks() const {
    std::vector<uint32_t> order(names_.size());
    for (uint32_t i = 0; i < order.size(); i++) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return names_[a] < names_[b]; });
    std::vector<uint32_t> rank(names_.size());
    for (uint32_t i = 0; i < order.size(); i++) rank[order[i]] = i;
    return rank;
  }

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> index_;
};

// Flags of an event (by its event name or its node name).
enum : uint8_t { kInclude = 1, kExclude = 2, kStart = 4, kEnd = 8 };

uint8_t NameFlags(const PathsQuery& q, const std::string& name) {
  uint8_t f = 0;
  for (const auto& s : q.include_events) f |= s == name ? kInclude : 0;
  for (const auto& s : q.exclude_events) f |= s == name ? kExclude : 0;
  if (!q.start_event.empty() && q.start_event == name) f |= kStart;
  if (!q.end_event.empty() && q.end_event == name) f |= kEnd;
  return f;
}

// Node and edge keys: a node is (step, name) with the top bit set; an edge is (source step,
// source name, target name).
uint64_t NodeKey(int step, uint32_t name) { return (1ULL << 63) | (static_cast<uint64_t>(step) << 32) | name; }
uint64_t EdgeKey(int step, uint32_t from, uint32_t to) {
  return (static_cast<uint64_t>(step) << 58) | (static_cast<uint64_t>(from) << 29) | to;
}

struct Agg {
  uint64_t paths = 0, persons = 0, drop_paths = 0, drop_persons = 0;
  int64_t sum_ms = 0;
};

// Per-slot aggregates: keys to dense ids by open addressing (a few thousand keys, looked up
// once per path element).
class SlotAggs {
 public:
  // names: the query's node names. Nodes and edges get their ids through direct tables when
  // those are small (at most 1 MiB each: some 20,000 names for nodes, 150 for edges).
  explicit SlotAggs(size_t names) : table_(1024, kEmpty), names_(names) {
    if (names * 12 <= (1u << 18)) node_ids_.assign(names * 12, kEmpty);
    if (names * names * 11 <= (1u << 18)) edge_ids_.assign(names * names * 11, kEmpty);
  }
  uint32_t NodeId(int step, uint32_t name) {
    if (node_ids_.empty()) return Id(NodeKey(step, name));
    uint32_t& id = node_ids_[static_cast<size_t>(step) * names_ + name];
    if (id == kEmpty) id = Id(NodeKey(step, name));
    return id;
  }
  uint32_t EdgeId(int step, uint32_t from, uint32_t to) {
    if (edge_ids_.empty()) return Id(EdgeKey(step, from, to));
    uint32_t& id = edge_ids_[(static_cast<size_t>(step - 1) * names_ + from) * names_ + to];
    if (id == kEmpty) id = Id(EdgeKey(step, from, to));
    return id;
  }
  uint32_t Id(uint64_t key) {
    size_t mask = table_.size() - 1;
    for (size_t h = Hash(key) & mask;; h = (h + 1) & mask) {
      uint32_t id = table_[h];
      if (id == kEmpty) {
        id = static_cast<uint32_t>(keys.size());
        keys.push_back(key);
        aggs.emplace_back();
        table_[h] = id;
        if (keys.size() * 2 > table_.size()) Grow();
        return id;
      }
      if (keys[id] == key) return id;
    }
  }
  std::vector<uint64_t> keys;
  std::vector<Agg> aggs;
  uint64_t paths = 0, persons = 0;

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  static size_t Hash(uint64_t k) { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ULL) >> 20); }
  void Grow() {
    std::vector<uint32_t> t(table_.size() * 2, kEmpty);
    size_t mask = t.size() - 1;
    for (uint32_t id = 0; id < keys.size(); id++) {
      size_t h = Hash(keys[id]) & mask;
      while (t[h] != kEmpty) h = (h + 1) & mask;
      t[h] = id;
    }
    table_.swap(t);
  }
  std::vector<uint32_t> table_;
  size_t names_;
  std::vector<uint32_t> node_ids_;  // step * names + name -> id (steps 1..11), when small
  std::vector<uint32_t> edge_ids_;  // ((step - 1) * names + from) * names + to -> id, when small
};

struct Elem {
  uint32_t name;
  int64_t ts;
};

enum Phase : uint8_t { kWait, kCollect, kEnded, kClosed };

// A person's open session: read on every event of the person, so it is small and apart from
// the counting state. The session's elements live in a parallel array (front, then ring).
struct PersonPaths {
  int64_t last_ts = 0;  // the previous kept event: a gap longer than the window ends the session
  int64_t mid_ts = 0;   // with both ends: time of element `front` (the first a "..." may hide)
  uint32_t run_name = kNoName;
  int32_t k = 0;        // elements of the path so far (from the start element on)
  int8_t run_pos = -1;  // where the current run's element is stored, -1 if nowhere
  Phase phase = kWait;
  uint8_t run_flags = 0;  // kStart/kEnd of the run's events so far
  bool run_is_mid = false;
  bool active = false;  // a session is open
};

// What a person already counts in, touched once per path.
struct PersonCounted {
  bool counted = false;  // the person is in the totals
  // The keys (agg id << 1 | dropoff) the person already counts in: the first ids (the common
  // nodes and edges, numbered first) in bits, others in a sorted list.
  static constexpr uint32_t kInlineKeys = 256;
  uint64_t seen_bits[kInlineKeys / 64] = {};
  std::vector<uint32_t> seen;

  // True the first time the person counts in `key`.
  bool FirstTime(uint32_t key) {
    if (key < kInlineKeys) {
      uint64_t& w = seen_bits[key >> 6];
      const uint64_t bit = 1ULL << (key & 63);
      if (w & bit) return false;
      w |= bit;
      return true;
    }
    auto it = std::lower_bound(seen.begin(), seen.end(), key);
    if (it != seen.end() && *it == key) return false;
    seen.insert(it, key);
    return true;
  }
};

// The path of one session from its events, streaming; see the file comment.
class PathBuilder {
 public:
  PathBuilder(const PathsQuery& q, uint32_t dots)
      : window_ms_(q.window_ms), start_(!q.start_event.empty()), end_(!q.end_event.empty()), dots_(dots) {
    const int L = q.step_limit;
    front_ = start_ && end_ ? (L + 1) / 2 : end_ ? 0 : L;
    ring_ = L - front_;
  }
  int slots_per_person() const { return front_ + ring_; }

  // One kept event of the person (in the person's time order).
  template <typename Emit>
  void Event(PersonPaths& st, Elem* el, uint32_t name, uint8_t flags, int64_t ts, Emit&& emit) const {
    if (!st.active || ts - st.last_ts > window_ms_) {
      if (st.active) Finish(st, el, emit);
      Reset(st);
    }
    st.last_ts = ts;
    if (st.phase == kClosed) return;
    if (name == st.run_name) {  // the run goes on: its element takes this event's time
      st.run_flags |= flags;
      if (st.phase == kWait) {
        if (st.run_flags & kStart) Begin(st, el, name, ts);
        return;
      }
      if (st.run_pos >= 0) el[st.run_pos].ts = ts;
      if (st.run_is_mid) st.mid_ts = ts;
      if (st.phase == kCollect && end_ && (st.run_flags & kEnd)) st.phase = kEnded;
      return;
    }
    st.run_name = name;
    st.run_flags = flags;
    if (st.phase == kEnded) {  // the end element's run is over
      st.phase = kClosed;
      return;
    }
    if (st.phase == kWait) {
      if (flags & kStart) Begin(st, el, name, ts);
      return;
    }
    Add(st, el, name, ts);
  }

  // Emits the open session's path, if it has one.
  template <typename Emit>
  void Finish(PersonPaths& st, const Elem* el, Emit&& emit) const {
    st.active = false;
    if (st.phase == kWait || st.k == 0 || (end_ && st.phase == kCollect)) return;
    path_.clear();
    const int k = st.k;
    for (int i = 0; i < std::min(k, front_); i++) path_.push_back(el[i]);
    if (ring_ > 0 && k > front_) {
      const int stored = std::min(k - front_, ring_);
      if (start_ && end_ && k > front_ + ring_) path_.push_back({dots_, st.mid_ts});
      for (int idx = k - stored; idx < k; idx++) path_.push_back(el[front_ + (idx - front_) % ring_]);
    }
    emit(path_);
  }

 private:
  void Reset(PersonPaths& st) const {
    st.active = true;
    st.k = 0;
    st.run_name = kNoName;
    st.run_pos = -1;
    st.run_flags = 0;
    st.run_is_mid = false;
    st.phase = start_ ? kWait : kCollect;
  }
  void Begin(PersonPaths& st, Elem* el, uint32_t name, int64_t ts) const {
    st.phase = kCollect;
    Add(st, el, name, ts);
  }
  void Add(PersonPaths& st, Elem* el, uint32_t name, int64_t ts) const {
    const int idx = st.k++;
    st.run_is_mid = false;
    if (idx < front_) {
      el[idx] = {name, ts};
      st.run_pos = static_cast<int8_t>(idx);
    } else if (ring_ > 0) {
      const int pos = front_ + (idx - front_) % ring_;
      el[pos] = {name, ts};
      st.run_pos = static_cast<int8_t>(pos);
      if (idx == front_ && start_ && end_) {
        st.mid_ts = ts;
        st.run_is_mid = true;
      }
    } else {
      st.run_pos = -1;
      st.phase = kClosed;  // the front is full and its last run is over: nothing more changes
      return;
    }
    if (end_ && (st.run_flags & kEnd)) st.phase = kEnded;
  }

  const int64_t window_ms_;
  const bool start_, end_;
  const uint32_t dots_;
  int front_ = 0, ring_ = 0;
  static thread_local std::vector<Elem> path_;
};

thread_local std::vector<Elem> PathBuilder::path_;

std::string_view ModeName(FunnelPathMode m) {
  switch (m) {
    case FunnelPathMode::kAfter: return "after";
    case FunnelPathMode::kBefore: return "before";
    case FunnelPathMode::kBetween: return "between";
  }
  return "after";
}

}  // namespace

StatusOr<PathsQuery> ParsePathsQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(j, "",
                                 {"kind", "date_from", "date_to", "start_event", "end_event", "step_limit",
                                  "include_events", "exclude_events", "window_seconds", "edge_limit", "page_property",
                                  "path_replacements", "filters", "funnel", "funnel_step", "mode"}));
  PathsQuery q;
  auto fj = j.find("funnel");
  const bool with_funnel = fj != j.end() && !fj->is_null();
  const bool any_date =
      (j.contains("date_from") && !j["date_from"].is_null()) || (j.contains("date_to") && !j["date_to"].is_null());
  if (!with_funnel || any_date) {
    NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
    q.has_dates = true;
  }
  NS_ASSIGN_OR_RETURN(q.start_event, ParseEndpoint(j, "start_event"));
  NS_ASSIGN_OR_RETURN(q.end_event, ParseEndpoint(j, "end_event"));
  NS_ASSIGN_OR_RETURN(int64_t limit, GetInt(j, "step_limit", "", 5, 2, 10));
  q.step_limit = static_cast<int>(limit);
  NS_ASSIGN_OR_RETURN(q.include_events, ParseNameList(j, "include_events"));
  NS_ASSIGN_OR_RETURN(q.exclude_events, ParseNameList(j, "exclude_events"));
  NS_ASSIGN_OR_RETURN(q.window_ms, GetInt(j, "window_seconds", "", 1800, 0, 366LL * 86400));
  q.window_ms *= 1000;
  NS_ASSIGN_OR_RETURN(int64_t edges, GetInt(j, "edge_limit", "", 50, 1, 1000));
  q.edge_limit = static_cast<size_t>(edges);
  NS_ASSIGN_OR_RETURN(q.page_property, GetString(j, "page_property", "", false, "$current_url"));
  if (q.page_property.empty()) return InvalidArgument("page_property: must not be empty", "page_property");
  if (q.page_property.rfind("person.", 0) == 0)
    return InvalidArgument("page_property: expected an event property, not a person property", "page_property");
  auto rj = j.find("path_replacements");
  if (rj != j.end() && !rj->is_null()) {
    if (!rj->is_array()) return InvalidArgument("path_replacements: expected an array", "path_replacements");
    if (rj->size() > 20) return InvalidArgument("path_replacements: at most 20 rules", "path_replacements");
    for (size_t i = 0; i < rj->size(); i++) {
      const std::string f = "path_replacements[" + std::to_string(i) + "]";
      const json& r = (*rj)[i];
      if (!r.is_object()) return InvalidArgument(f + ": expected an object {\"regex\", \"alias\"}", f);
      NS_RETURN_IF_ERROR(CheckFields(r, f, {"regex", "alias"}));
      PathReplacement rep;
      NS_ASSIGN_OR_RETURN(rep.regex, GetString(r, "regex", f, true));
      NS_ASSIGN_OR_RETURN(rep.alias, GetString(r, "alias", f, false));
      if (rep.regex.empty()) return InvalidArgument(f + ".regex: must not be empty", f + ".regex");
      if (rep.regex.size() > 1000 || rep.alias.size() > 1000)
        return InvalidArgument(f + ": regex and alias are limited to 1000 characters", f);
      try {
        rep.compiled = std::make_shared<const std::regex>(rep.regex, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return InvalidArgument(f + ".regex: invalid regular expression '" + rep.regex + "' (" + e.what() + ")",
                               f + ".regex");
      }
      q.replacements.push_back(std::move(rep));
    }
  }
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  if (!with_funnel) {
    for (const char* k : {"funnel_step", "mode"})
      if (j.contains(k) && !j[k].is_null())
        return InvalidArgument(std::string(k) + ": only with \"funnel\" (funnel paths)", k);
    return q;
  }
  if (!fj->is_object()) return InvalidArgument("funnel: expected a funnel query object", "funnel");
  json f = *fj;
  if (auto k = f.find("kind"); k != f.end() && !(k->is_string() && (*k == "funnel" || *k == "funnels")))
    return InvalidArgument("funnel.kind: expected \"funnel\" (or leave it out)", "funnel.kind");
  auto parsed = ParseFunnelQuery(f);
  if (!parsed.ok()) return InFunnel(parsed.status());
  q.funnel = std::move(*parsed);
  auto in_funnel = [](std::vector<Filter>& fs) {  // cohort errors name "funnel.steps[0].filters[1].cohort"
    for (Filter& flt : fs) flt.field = "funnel." + flt.field;
  };
  in_funnel(q.funnel->filters);
  for (auto& st : q.funnel->steps) in_funnel(st.filters);
  for (auto& ex : q.funnel->exclusions) in_funnel(ex.filters);
  if (q.funnel->order == FunnelOrder::kUnordered)
    return InvalidArgument(
        "funnel.order: funnel paths need an ordered or strict funnel (unordered funnels have "
        "no step times)",
        "funnel.order");
  q.funnel->dropoff_limit = 1;  // the drop-off list is not used
  NS_ASSIGN_OR_RETURN(std::string mode, GetString(j, "mode", "", false, "after"));
  if (mode == "after")
    q.mode = FunnelPathMode::kAfter;
  else if (mode == "before")
    q.mode = FunnelPathMode::kBefore;
  else if (mode == "between")
    q.mode = FunnelPathMode::kBetween;
  else
    return InvalidArgument("mode: unknown funnel path mode '" + mode + "' (expected after, before or between)", "mode");
  if (!j.contains("funnel_step") || j["funnel_step"].is_null())
    return InvalidArgument("funnel_step: required with \"funnel\" (the 0-based step of the funnel)", "funnel_step");
  const int64_t n = static_cast<int64_t>(q.funnel->steps.size());
  const int64_t hi = q.mode == FunnelPathMode::kAfter ? n - 1 : n - 2;
  if (hi < 0)
    return InvalidArgument("funnel_step: mode '" + mode + "' needs a funnel of at least two steps", "funnel_step");
  NS_ASSIGN_OR_RETURN(int64_t step, GetInt(j, "funnel_step", "", 0, 0, hi));
  q.funnel_step = static_cast<int>(step);
  return q;
}

StatusOr<PathsResult> RunPaths(const PathsQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                               const Deadline* deadline) {
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size();
  const EventDict& dict = *snap.events;

  // The range of path events and, for funnel paths, each person's window [lo, hi].
  int64_t range_from = 0, range_to = 0;
  std::vector<int64_t> lo, hi;  // funnel paths only; lo > hi: not a funnel person
  if (q.has_dates) {
    range_from = tz.DayStartMs(q.from_day);
    range_to = tz.DayStartMs(q.to_day + 1);
  }
  if (q.funnel) {
    const FunnelQuery& f = *q.funnel;
    if (!q.has_dates) {
      range_from = tz.DayStartMs(f.from_day);
      range_to = tz.DayStartMs(f.to_day + 1) + f.window_ms;
    }
    std::vector<FunnelReach> reaches;
    NS_ASSIGN_OR_RETURN(FunnelResult fr, RunFunnel(f, snap, tz, nullptr, deadline, &reaches));
    (void)fr;
    const uint32_t n = static_cast<uint32_t>(q.funnel_step);
    std::vector<int64_t> t_n(np, INT64_MIN), t_next(np, INT64_MIN);
    for (const FunnelReach& r : reaches) {
      if (r.person >= np) continue;
      if (r.step == n) t_n[r.person] = r.ts;
      if (r.step == n + 1) t_next[r.person] = r.ts;
    }
    lo.assign(np, 1);
    hi.assign(np, 0);
    for (size_t p = 0; p < np; p++) {
      if (t_n[p] == INT64_MIN) continue;
      switch (q.mode) {
        case FunnelPathMode::kAfter:
          lo[p] = t_n[p];
          hi[p] = INT64_MAX;
          break;
        case FunnelPathMode::kBefore:
          if (t_next[p] != INT64_MIN) break;
          lo[p] = t_n[p];
          hi[p] = t_n[p] + f.window_ms;
          break;
        case FunnelPathMode::kBetween:
          if (t_next[p] == INT64_MIN) break;
          lo[p] = t_n[p];
          hi[p] = t_next[p];
          break;
      }
    }
  }
  const bool funnel_bounds = q.funnel.has_value();

  // Names and flags per event code.
  NodeNames names;
  const size_t ncodes = dict.size();
  std::vector<uint32_t> event_name(ncodes);
  std::vector<uint8_t> event_flags(ncodes), is_page(ncodes);
  std::vector<uint32_t> page_codes;
  for (uint32_t c = 0; c < ncodes; c++) {
    const std::string nm = dict.Name(c);
    event_name[c] = names.Intern(nm);
    event_flags[c] = NameFlags(q, nm);
    is_page[c] = IsPageViewEvent(nm);
    if (is_page[c]) page_codes.push_back(c);
  }
  const uint32_t dots = names.Intern(std::string(kDotsName));

  PersonOrderScan scan(snap, range_from, range_to);
  const auto& blocks = scan.blocks();
  FilterSet filters(q.filters, snap);

  // Per block, before the threads (filters and page names intern): the columns and the node
  // name of each page URL (per dictionary code, or per row for a numeric column).
  struct BlockState {
    const uint32_t* ev = nullptr;
    const uint32_t* did = nullptr;
    const int64_t* ts = nullptr;
    FilterSet::BlockEval eval;
    const PropColumn* page = nullptr;
    std::vector<uint32_t> page_name;  // by dictionary code, or by row when the column is numeric
  };
  std::vector<BlockState> states(blocks.size());
  std::unordered_map<std::string, uint32_t> page_cache;  // raw URL -> name id
  auto page_name_of = [&](const std::string& raw) -> StatusOr<uint32_t> {
    auto it = page_cache.find(raw);
    if (it != page_cache.end()) return it->second;
    NS_ASSIGN_OR_RETURN(std::string clean, CleanPageName(q, raw));
    uint32_t id = names.Intern(clean);
    page_cache.emplace(raw, id);
    return id;
  };
  for (size_t bi = 0; bi < blocks.size(); bi++) {
    const Block& b = *blocks[bi];
    BlockState& st = states[bi];
    st.ev = b.ev().data();
    st.did = b.did().data();
    st.ts = b.ts().data();
    if (!filters.empty()) st.eval = filters.ForBlock(b);
    bool has_page = false;
    for (uint32_t c : page_codes) has_page |= b.HasEvent(c);
    if (!has_page) continue;
    st.page = b.prop(q.page_property);
    if (!st.page) continue;
    if (!st.page->numeric) {
      st.page_name.assign(st.page->dict.size(), kNoName);
      for (size_t c = 1; c < st.page->dict.size(); c++) {
        NS_ASSIGN_OR_RETURN(st.page_name[c], page_name_of(st.page->dict[c]));
      }
    } else {
      st.page_name.assign(b.size(), kNoName);
      for (size_t i = 0; i < b.size(); i++) {
        if (!st.page->Present(i) || st.ev[i] >= ncodes || !is_page[st.ev[i]]) continue;
        NS_ASSIGN_OR_RETURN(st.page_name[i], page_name_of(PropValue::Num(st.page->NumAt(i)).AsString()));
      }
    }
  }
  if (names.size() >= kMaxNames)
    return InvalidArgument("paths: too many distinct node names (" + std::to_string(names.size()) + ")",
                           "path_replacements");
  const std::vector<uint32_t> rank = names.Ranks();
  std::vector<uint8_t> name_flags(names.size());
  for (uint32_t id = 0; id < names.size(); id++) name_flags[id] = NameFlags(q, names[id]);
  name_flags[dots] = 0;

  // Rows only of included events, when include_events names no page (a URL): the event index.
  const bool has_include = !q.include_events.empty();
  std::vector<uint32_t> needed_codes;
  bool restrict_codes = has_include;
  if (has_include) {
    for (uint32_t c = 0; c < ncodes; c++)
      if ((event_flags[c] & kInclude) || is_page[c]) needed_codes.push_back(c);
  }
  const std::vector<uint32_t>* codes = restrict_codes ? &needed_codes : nullptr;

  const PathBuilder builder(q, dots);
  const int L = builder.slots_per_person();
  const int slots = QueryThreads();
  // Per-person state in person order (only canonical persons have rows), so each range walks
  // its persons' states in order; a person is only ever touched by one slot.
  std::vector<uint32_t> state_of(np, UINT32_MAX);
  uint32_t nstates = 0;
  for (uint32_t p = 0; p < np; p++)
    if (pt.PersonOf(p) == p) state_of[p] = nstates++;
  std::vector<PersonPaths> states_of_persons(nstates);
  std::vector<PersonCounted> counted_of_persons(nstates);
  std::vector<Elem> elems(static_cast<size_t>(nstates) * static_cast<size_t>(L));
  std::vector<SlotAggs> aggs(static_cast<size_t>(slots), SlotAggs(names.size()));

  // Counts one path of person state `st` in the slot's aggregates; `persons` grows only by
  // the keys the person has not counted yet.
  auto emit_path = [&](int slot, PersonCounted& st, const std::vector<Elem>& path) {
    SlotAggs& a = aggs[static_cast<size_t>(slot)];
    a.paths++;
    if (!st.counted) {
      st.counted = true;
      a.persons++;
    }
    const size_t m = path.size();
    for (size_t i = 0; i < m; i++) {
      const uint32_t id = a.NodeId(static_cast<int>(i + 1), path[i].name);
      Agg& g = a.aggs[id];
      g.paths++;
      g.persons += st.FirstTime(id << 1);
      if (i + 1 == m) {
        g.drop_paths++;
        g.drop_persons += st.FirstTime((id << 1) | 1);
        break;
      }
      const uint32_t e = a.EdgeId(static_cast<int>(i + 1), path[i].name, path[i + 1].name);
      Agg& ge = a.aggs[e];
      ge.paths++;
      ge.sum_ms += path[i + 1].ts - path[i].ts;
      ge.persons += st.FirstTime(e << 1);
    }
  };

  struct Tie {
    uint32_t name_rank;
    uint32_t event_rank;
    uint32_t name;
    uint8_t flags;
  };
  ScanPersonGroups<Tie>(
      scan, pt, slots, codes,
      [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, Tie* tie) {
        const BlockState& st = states[b];
        const int64_t ts = st.ts[i];
        if (ts < range_from || ts >= range_to) return false;
        const uint32_t c = st.ev[i];
        if (c >= ncodes) return false;
        const uint32_t p = pt.PersonOf(st.did[i]);
        if (funnel_bounds && (p >= np || ts < lo[p] || ts > hi[p])) return false;
        if (!filters.empty() && !st.eval.Match(i)) return false;
        uint32_t name = event_name[c];
        if (is_page[c] && st.page) {
          const uint32_t pn = st.page->numeric ? st.page_name[i] : st.page_name[st.page->CodeAt(i)];
          if (pn != kNoName) name = pn;
        }
        const uint8_t flags = event_flags[c] | name_flags[name];
        if (has_include && !(flags & kInclude)) return false;
        if (flags & kExclude) return false;
        *person = p;
        *ts_out = ts;
        *tie = {rank[name], rank[event_name[c]], name, flags};
        return true;
      },
      [&](int slot, uint32_t p, int64_t ts, std::vector<Tie>& ties) {
        if (ties.size() > 1)
          std::sort(ties.begin(), ties.end(), [](const Tie& a, const Tie& b) {
            return a.name_rank != b.name_rank ? a.name_rank < b.name_rank : a.event_rank < b.event_rank;
          });
        const uint32_t s = state_of[p];
        PersonPaths& st = states_of_persons[s];
        Elem* e = elems.data() + static_cast<size_t>(s) * static_cast<size_t>(L);
        for (const Tie& t : ties)
          builder.Event(st, e, t.name, t.flags, ts,
                        [&](const std::vector<Elem>& path) { emit_path(slot, counted_of_persons[s], path); });
      },
      deadline);
  if (deadline && deadline->fired()) return deadline->ToStatus();
  // Sessions still open at the end of the range (counted in slot 0's aggregates: a person's
  // distinct counting lives in their own state, so any slot adds up the same).
  for (uint32_t s = 0; s < nstates; s++) {
    PersonPaths& st = states_of_persons[s];
    const Elem* e = elems.data() + static_cast<size_t>(s) * static_cast<size_t>(L);
    if (st.active)
      builder.Finish(st, e, [&](const std::vector<Elem>& path) { emit_path(0, counted_of_persons[s], path); });
  }

  // Merge the slots (each person counts a key once, in whichever slot, so counts add up).
  PathsResult out;
  out.timezone = tz.name();
  if (q.has_dates) {
    out.date_from = q.from_day;
    out.date_to = q.to_day;
  } else {
    out.date_from = q.funnel->from_day;
    out.date_to = q.funnel->to_day;
  }
  out.step_limit = q.step_limit;
  out.window_seconds = q.window_ms / 1000;
  out.edge_limit = q.edge_limit;
  out.start_event = q.start_event;
  out.end_event = q.end_event;
  if (q.funnel) {
    out.funnel_step = q.funnel_step;
    out.mode = q.mode;
  }
  std::unordered_map<uint64_t, Agg> total;
  for (const SlotAggs& a : aggs) {
    out.paths += a.paths;
    out.persons += a.persons;
    for (size_t i = 0; i < a.keys.size(); i++) {
      Agg& t = total[a.keys[i]];
      const Agg& g = a.aggs[i];
      t.paths += g.paths;
      t.persons += g.persons;
      t.drop_paths += g.drop_paths;
      t.drop_persons += g.drop_persons;
      t.sum_ms += g.sum_ms;
    }
  }
  auto node_id = [&](int step, uint32_t name) { return std::to_string(step) + "_" + names[name]; };
  struct EdgeRow {
    int step;
    uint32_t from, to;
    std::string source, target;
    const Agg* agg;
  };
  std::vector<EdgeRow> edges;
  struct NodeRow {
    int step;
    uint32_t name;
    const Agg* agg;
  };
  std::vector<NodeRow> step1;
  for (const auto& [key, agg] : total) {
    if (key >> 63) {
      const int step = static_cast<int>((key >> 32) & 0x7fffffff);
      if (step == 1) step1.push_back({step, static_cast<uint32_t>(key & 0xffffffff), &agg});
      continue;
    }
    const int step = static_cast<int>(key >> 58);
    const uint32_t from = static_cast<uint32_t>((key >> 29) & (kMaxNames - 1)),
                   to = static_cast<uint32_t>(key & (kMaxNames - 1));
    edges.push_back({step, from, to, node_id(step, from), node_id(step + 1, to), &agg});
  }
  // Top edge_limit edges by persons (then paths, then ids), then only those reachable from a
  // step-1 node through the kept edges: the Sankey diagram has no floating flows.
  std::sort(edges.begin(), edges.end(), [](const EdgeRow& a, const EdgeRow& b) {
    if (a.agg->persons != b.agg->persons) return a.agg->persons > b.agg->persons;
    if (a.agg->paths != b.agg->paths) return a.agg->paths > b.agg->paths;
    if (a.source != b.source) return a.source < b.source;
    return a.target < b.target;
  });
  if (edges.size() > q.edge_limit) edges.resize(q.edge_limit);
  std::vector<size_t> by_step(edges.size());
  for (size_t i = 0; i < by_step.size(); i++) by_step[i] = i;
  std::stable_sort(by_step.begin(), by_step.end(), [&](size_t a, size_t b) { return edges[a].step < edges[b].step; });
  std::unordered_map<uint64_t, bool> reachable;  // node key -> reached
  std::vector<uint8_t> keep(edges.size(), 0);
  for (size_t i : by_step) {
    const EdgeRow& e = edges[i];
    if (e.step != 1 && !reachable.count(NodeKey(e.step, e.from))) continue;
    keep[i] = 1;
    reachable[NodeKey(e.step, e.from)] = true;
    reachable[NodeKey(e.step + 1, e.to)] = true;
  }
  for (size_t i = 0; i < edges.size(); i++) {
    if (!keep[i]) continue;
    const EdgeRow& e = edges[i];
    PathsEdge pe;
    pe.source = e.source;
    pe.target = e.target;
    pe.persons = e.agg->persons;
    pe.paths = e.agg->paths;
    pe.average_seconds = static_cast<double>(e.agg->sum_ms) / static_cast<double>(e.agg->paths) / 1000.0;
    out.edges.push_back(std::move(pe));
  }
  // Nodes: the ends of the kept edges, and the step-1 nodes with most persons (at most
  // edge_limit of them) so a path that never continues still shows where it started.
  std::sort(step1.begin(), step1.end(), [&](const NodeRow& a, const NodeRow& b) {
    if (a.agg->persons != b.agg->persons) return a.agg->persons > b.agg->persons;
    if (a.agg->paths != b.agg->paths) return a.agg->paths > b.agg->paths;
    return names[a.name] < names[b.name];
  });
  if (step1.size() > q.edge_limit) step1.resize(q.edge_limit);
  for (const NodeRow& r : step1) reachable[NodeKey(1, r.name)] = true;
  for (const auto& [key, unused] : reachable) {
    const Agg& g = total.at(key);
    PathsNode n;
    n.step = static_cast<int>((key >> 32) & 0x7fffffff);
    n.name = names[static_cast<uint32_t>(key & 0xffffffff)];
    n.id = std::to_string(n.step) + "_" + n.name;
    n.persons = g.persons;
    n.paths = g.paths;
    n.dropoff_persons = g.drop_persons;
    n.dropoff_paths = g.drop_paths;
    out.nodes.push_back(std::move(n));
  }
  std::sort(out.nodes.begin(), out.nodes.end(), [](const PathsNode& a, const PathsNode& b) {
    if (a.step != b.step) return a.step < b.step;
    if (a.persons != b.persons) return a.persons > b.persons;
    if (a.paths != b.paths) return a.paths > b.paths;
    return a.name < b.name;
  });
  return out;
}

json ToJson(const PathsResult& r) {
  json out;
  out["kind"] = "paths";
  out["timezone"] = r.timezone;
  out["date_from"] = FormatDate(r.date_from);
  out["date_to"] = FormatDate(r.date_to);
  out["step_limit"] = r.step_limit;
  out["window_seconds"] = r.window_seconds;
  out["edge_limit"] = r.edge_limit;
  out["start_event"] = r.start_event.empty() ? json(nullptr) : json(r.start_event);
  out["end_event"] = r.end_event.empty() ? json(nullptr) : json(r.end_event);
  if (r.funnel_step) {
    out["funnel_step"] = *r.funnel_step;
    out["mode"] = ModeName(r.mode);
  }
  out["paths"] = r.paths;
  out["persons"] = r.persons;
  json nodes = json::array();
  for (const PathsNode& n : r.nodes)
    nodes.push_back({{"id", n.id},
                     {"step", n.step},
                     {"event", n.name},
                     {"persons", n.persons},
                     {"paths", n.paths},
                     {"dropoff_persons", n.dropoff_persons},
                     {"dropoff_paths", n.dropoff_paths}});
  out["nodes"] = std::move(nodes);
  json edges = json::array();
  for (const PathsEdge& e : r.edges)
    edges.push_back({{"source", e.source},
                     {"target", e.target},
                     {"persons", e.persons},
                     {"paths", e.paths},
                     {"average_seconds", e.average_seconds}});
  out["edges"] = std::move(edges);
  return out;
}

// ---------------------------------------------------------------- registration

const QueryKind kPathsKind{
    "paths",
    {},
    [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
      NS_ASSIGN_OR_RETURN(PathsQuery q, ParsePathsQuery(request));
      NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
      if (q.funnel) {
        NS_RETURN_IF_ERROR(ctx.BindCohorts(q.funnel->filters));
        for (auto& s : q.funnel->steps) NS_RETURN_IF_ERROR(ctx.BindCohorts(s.filters));
        for (auto& e : q.funnel->exclusions) NS_RETURN_IF_ERROR(ctx.BindCohorts(e.filters));
      }
      NS_ASSIGN_OR_RETURN(PathsResult r, RunPaths(q, ctx.snap, ctx.tz, ctx.deadline));
      return ToJson(r);
    },
    [](const json& request) { return ParsePathsQuery(request).status(); },
    [](const json& r) {
      ResultTable rows{{"source", "target", "persons", "paths", "average s"}};
      for (const auto& e : r["edges"])
        rows.push_back({e["source"], e["target"], e["persons"], e["paths"], e["average_seconds"]});
      return rows;
    }};

}  // namespace ns
