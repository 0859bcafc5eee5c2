// The funnel's visualisations beyond its steps: entry periods ("viz":"trends"), the
// time-to-convert histogram and correlation analysis (docs/queries.md, "Funnel
// visualisations"). The funnel pass itself is in funnel.cc.
#include "query/funnel_viz.h"

#include <algorithm>
#include <map>
#include <memory>
#include <unordered_map>

#include "query/scan.h"

namespace ns {

FunnelPeriods::FunnelPeriods(const TimeZone& tz, int32_t from_day, int32_t to_day, Interval interval) {
  for (int32_t d = from_day; d <= to_day;) {
    const int32_t label = TimeZone::PeriodStartDay(d, interval);
    int32_t next = d + 1;
    while (next <= to_day && TimeZone::PeriodStartDay(next, interval) == label) next++;
    starts_.push_back(tz.DayStartMs(d));
    ends_.push_back(tz.DayStartMs(next));
    labels_.push_back(label);
    d = next;
  }
}

int32_t FunnelPeriods::Of(int64_t ts) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), ts);
  return static_cast<int32_t>(it - starts_.begin()) - 1;
}

FunnelTimeToConvert TimeToConvertHistogram(int from_step, int to_step, std::vector<int64_t> ms, int bins) {
  FunnelTimeToConvert h;
  h.from_step = from_step;
  h.to_step = to_step;
  h.count = ms.size();
  if (ms.empty()) return h;
  std::sort(ms.begin(), ms.end());
  double sum = 0;
  for (int64_t x : ms) sum += static_cast<double>(x);
  h.average_seconds = sum / static_cast<double>(ms.size()) / 1000.0;
  const size_t mid = ms.size() / 2;
  h.median_seconds = (ms.size() % 2 ? static_cast<double>(ms[mid])
                                    : (static_cast<double>(ms[mid - 1]) + static_cast<double>(ms[mid])) / 2) /
                     1000.0;
  int64_t b = bins;
  if (b == 0) {  // auto: the cube root of the count, rounded up, 1..60
    b = 1;
    while (b < 60 && b * b * b < static_cast<int64_t>(ms.size())) b++;
  }
  // Whole-second bins from the shortest time (rounded down): the smallest width at which
  // b bins hold the longest time.
  const int64_t lo = ms.front() / 1000;  // times are >= 0
  const int64_t span = ms.back() - lo * 1000;
  h.bin_seconds = span / (b * 1000) + 1;
  h.bins.resize(static_cast<size_t>(b));
  for (int64_t k = 0; k < b; k++) h.bins[static_cast<size_t>(k)].from_seconds = lo + k * h.bin_seconds;
  for (int64_t x : ms) h.bins[static_cast<size_t>((x - lo * 1000) / (h.bin_seconds * 1000))].count++;
  return h;
}

namespace {

// The odds ratio of a 2x2 table with one added to every cell (no division by zero, and a
// prior that pulls small counts towards 1), as PostHog computes it: the odds of converting
// with the event or value over the odds of converting without it.
double OddsRatio(uint64_t s, uint64_t f, uint64_t success_total, uint64_t failure_total) {
  const double a = static_cast<double>(s) + 1, b = static_cast<double>(failure_total - f) + 1;
  const double c = static_cast<double>(success_total - s) + 1, d = static_cast<double>(f) + 1;
  return (a * b) / (c * d);
}

// Keeps the `limit` strongest of each direction: success by odds ratio descending, then
// failure by odds ratio ascending; ties by more persons, then by name.
std::vector<FunnelCorrelationEntry> Rank(std::vector<FunnelCorrelationEntry> all, size_t limit) {
  auto label = [](const FunnelCorrelationEntry& e) { return e.event + '\x1f' + e.property + '\x1f' + e.value; };
  std::vector<FunnelCorrelationEntry> succ, fail;
  for (auto& e : all) (e.success ? succ : fail).push_back(std::move(e));
  auto by = [&](bool desc) {
    return [&, desc](const FunnelCorrelationEntry& a, const FunnelCorrelationEntry& b) {
      if (a.odds_ratio != b.odds_ratio) return desc ? a.odds_ratio > b.odds_ratio : a.odds_ratio < b.odds_ratio;
      const uint64_t na = a.success_count + a.failure_count, nb = b.success_count + b.failure_count;
      if (na != nb) return na > nb;
      return label(a) < label(b);
    };
  };
  std::sort(succ.begin(), succ.end(), by(true));
  std::sort(fail.begin(), fail.end(), by(false));
  if (succ.size() > limit) succ.resize(limit);
  if (fail.size() > limit) fail.resize(limit);
  succ.insert(succ.end(), std::make_move_iterator(fail.begin()), std::make_move_iterator(fail.end()));
  return succ;
}

}  // namespace

StatusOr<FunnelCorrelation> RunFunnelCorrelation(const FunnelQuery& q, const StoreSnapshot& snap,
                                                 const std::vector<CorrelationWindow>& windows, int64_t scan_from,
                                                 int64_t scan_to, const Deadline* deadline) {
  FunnelCorrelation out;
  for (const CorrelationWindow& w : windows) {
    if (w.outcome == CorrelationWindow::kSuccess) out.success_total++;
    if (w.outcome == CorrelationWindow::kFailure) out.failure_total++;
  }
  const uint64_t st = out.success_total, ft = out.failure_total;
  if (st == 0 || ft == 0) {
    out.skewed = true;  // nothing to compare
    return out;
  }
  out.skewed = st > 10 * ft || ft > 10 * st;

  const EventDict& dict = *snap.events;
  const PersonTable& pt = *snap.persons;
  // Event names never correlated: the funnel's own steps (they decide the outcome) and the
  // excluded ones. A "$any" step leaves no name to correlate.
  const size_t ncodes = dict.size();
  std::vector<uint8_t> skip_code(ncodes, 0);
  bool all_skipped = false;
  for (const FunnelStep& s : q.steps) {
    EventMatcher m = EventMatcher::Make(s.event, dict);
    if (m.any) all_skipped = true;
    if (!m.none && !m.any && m.code < ncodes) skip_code[m.code] = 1;
  }
  for (const std::string& e : q.correlation_exclude_events)
    if (auto c = dict.Find(e); c && *c < ncodes) skip_code[*c] = 1;

  // Keys: an event code (kind 0), or (property index + 1, value id). Marks are (key,
  // person); a per-key "last person" drops the repeats of a person's consecutive rows.
  std::vector<std::pair<uint64_t, uint32_t>> marks;
  std::unordered_map<uint64_t, uint32_t> last_person;
  auto mark = [&](uint64_t key, uint32_t p) {
    auto [it, ins] = last_person.try_emplace(key, p);
    if (!ins) {
      if (it->second == p) return;
      it->second = p;
    }
    marks.push_back({key, p});
  };
  auto key_of = [](size_t prop_index, uint32_t value) { return (static_cast<uint64_t>(prop_index + 1) << 32) | value; };

  std::vector<std::unique_ptr<BreakdownResolver>> event_props(q.correlation_properties.size());
  for (size_t i = 0; i < q.correlation_properties.size(); i++)
    if (!q.correlation_properties[i].person)
      event_props[i] = std::make_unique<BreakdownResolver>(std::vector<PropertyRef>{q.correlation_properties[i]}, snap);
  const bool any_event_props =
      std::any_of(event_props.begin(), event_props.end(), [](const auto& r) { return r != nullptr; });
  if (!all_skipped || any_event_props) {
    BlockGroups groups;
    for (const auto& bp : snap.blocks) {
      const Block& b = *bp;
      if (b.size() == 0 || b.max_ts() < scan_from || b.min_ts() >= scan_to) continue;
      if (deadline && deadline->Expired()) return deadline->ToStatus();
      const auto& ts = b.ts();
      const auto& did = b.did();
      const auto& ev = b.ev();
      std::vector<uint32_t> rows;  // rows inside their person's window
      for (uint32_t i = 0; i < b.size(); i++) {
        const uint32_t p = pt.PersonOf(did[i]);
        if (p >= windows.size()) continue;
        const CorrelationWindow& w = windows[p];
        if (w.outcome == CorrelationWindow::kNone || ts[i] < w.from || ts[i] > w.to) continue;
        rows.push_back(i);
        if (!all_skipped && ev[i] < ncodes && !skip_code[ev[i]]) mark(ev[i], p);
      }
      if (rows.empty()) continue;
      for (size_t k = 0; k < event_props.size(); k++) {
        if (!event_props[k]) continue;
        event_props[k]->ResolveBlock(b, &groups);
        for (uint32_t i : rows)
          if (uint32_t g = groups[i]; g != 0) mark(key_of(k, g), pt.PersonOf(did[i]));
      }
    }
  }
  // Person properties: the person's current value, once per person.
  std::vector<std::map<std::string, uint32_t>> person_value_ids(q.correlation_properties.size());
  std::vector<std::vector<std::string>> person_values(q.correlation_properties.size());
  for (size_t k = 0; k < q.correlation_properties.size(); k++) {
    const PropertyRef& ref = q.correlation_properties[k];
    if (!ref.person) continue;
    const PersonColumn* col = pt.Column(ref.name);
    if (!col) continue;
    for (uint32_t p = 0; p < windows.size(); p++) {
      if (windows[p].outcome == CorrelationWindow::kNone) continue;
      const PropValue* v = col->Get(p);
      if (!v) continue;
      std::string s = v->AsString();
      auto [it, ins] = person_value_ids[k].try_emplace(s, static_cast<uint32_t>(person_values[k].size()));
      if (ins) person_values[k].push_back(s);
      marks.push_back({key_of(k, it->second), p});
    }
  }

  std::sort(marks.begin(), marks.end());
  marks.erase(std::unique(marks.begin(), marks.end()), marks.end());
  // Too rare to say anything: fewer persons than 25 or 2% of all, whichever is smaller.
  const double min_persons = std::min(25.0, 0.02 * static_cast<double>(st + ft));
  std::vector<FunnelCorrelationEntry> events, props;
  for (size_t i = 0; i < marks.size();) {
    const uint64_t key = marks[i].first;
    uint64_t s = 0, f = 0;
    for (; i < marks.size() && marks[i].first == key; i++)
      (windows[marks[i].second].outcome == CorrelationWindow::kSuccess ? s : f)++;
    if (static_cast<double>(s + f) < min_persons) continue;
    FunnelCorrelationEntry e;
    e.success_count = s;
    e.failure_count = f;
    e.odds_ratio = OddsRatio(s, f, st, ft);
    e.success = e.odds_ratio > 1;
    const uint64_t kind = key >> 32;
    const uint32_t id = static_cast<uint32_t>(key);
    if (kind == 0) {
      e.event = dict.Name(id);
      events.push_back(std::move(e));
      continue;
    }
    const size_t k = static_cast<size_t>(kind - 1);
    e.property = q.correlation_properties[k].display;
    e.value = q.correlation_properties[k].person ? person_values[k][id] : event_props[k]->Value(id).get<std::string>();
    props.push_back(std::move(e));
  }
  out.events = Rank(std::move(events), q.correlation_limit);
  out.properties = Rank(std::move(props), q.correlation_limit);
  return out;
}

}  // namespace ns
