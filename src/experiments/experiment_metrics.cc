// Sufficient statistics of an experiment from events; the header says what is counted. The
// reference it is checked against is tests/unit/experiment_metrics_test.cc (a naive loop over
// each person's raw events on >= 200 random stores).
#include "experiments/experiment_metrics.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

namespace {

constexpr int64_t kDayMs = 86'400'000;
constexpr int32_t kNoVariant = -1;
constexpr int32_t kMultiple = -2;

// What one row of a block may be: resolved once per block.
struct ExposureBlock {
  const uint32_t* ev = nullptr;
  const uint32_t* did = nullptr;
  const int64_t* ts = nullptr;
  const PropColumn* flag = nullptr;
  const PropColumn* variant = nullptr;
  std::vector<int32_t> variant_of_code;  // dictionary variant column: code -> variant index
  std::vector<uint8_t> flag_ok_code;     // dictionary flag column: code -> matches the key
};

int32_t VariantIndex(const std::vector<std::string>& keys, const std::string& v) {
  for (size_t i = 0; i < keys.size(); i++)
    if (keys[i] == v) return static_cast<int32_t>(i);
  return kNoVariant;
}

// One event name of a metric: its code in this snapshot (`none` if it never occurs).
struct EventRef {
  bool any = false, none = true;
  uint32_t code = 0;
  bool Matches(uint32_t ev, uint32_t exposure_code, bool exposure_known) const {
    if (any) return !(exposure_known && ev == exposure_code);
    return !none && ev == code;
  }
};

EventRef Resolve(const std::string& name, const EventDict& dict) {
  EventMatcher m = EventMatcher::Make(name, dict);
  return EventRef{m.any, m.none, m.code};
}

// The state of one (exposed person, metric).
struct MetricState {
  double a = 0;       // mean: the value; ratio: the numerator
  double b = 0;       // ratio: the denominator
  double pre = 0;     // with CUPED: the pre-exposure value (ratio: its numerator)
  double pre_b = 0;   // ratio with CUPED: the pre-exposure denominator
  uint32_t step = 0;  // funnel: steps completed; retention: 1 if active on the day
};

}  // namespace

StatusOr<ExperimentData> ComputeExperimentData(const ExperimentScanSpec& spec,
                                               const std::vector<ExperimentMetricSpec>& metrics,
                                               const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const TimeZone& tz = ctx.tz;
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size();
  const size_t nv = spec.variants.size();
  const int64_t from_ms = tz.DayStartMs(spec.from_day), to_ms = tz.DayStartMs(spec.to_day + 1);
  const int slots = QueryThreads();

  ExperimentData out;
  out.exposed.assign(nv, 0);
  out.exposures_by_day.assign(nv, std::vector<uint64_t>(static_cast<size_t>(spec.to_day - spec.from_day + 1), 0));

  // ---- scan 1: exposures. Per person: the variant (kMultiple once two differ) and the time
  // of the first exposure.
  const EventMatcher exposure = EventMatcher::Make(kExposureEvent, *snap.events);
  std::vector<int32_t> variant(np, kNoVariant);
  std::vector<int64_t> first_ts(np, INT64_MAX);
  if (!exposure.none) {
    PersonOrderScan scan(snap, from_ms, to_ms);
    const auto& blocks = scan.blocks();
    std::vector<ExposureBlock> states(blocks.size());
    for (size_t b = 0; b < blocks.size(); b++) {
      const Block& blk = *blocks[b];
      if (!blk.HasEvent(exposure.code)) continue;
      ExposureBlock& st = states[b];
      st.flag = blk.prop(kExposureFlagProperty);
      st.variant = blk.prop(kExposureVariantProperty);
      if (!st.flag || !st.variant) continue;
      st.ev = blk.ev().data();
      st.did = blk.did().data();
      st.ts = blk.ts().data();
      if (!st.flag->numeric) {
        st.flag_ok_code.assign(st.flag->dict.size(), 0);
        for (size_t c = 1; c < st.flag->dict.size(); c++) st.flag_ok_code[c] = st.flag->dict[c] == spec.flag_key;
      }
      if (!st.variant->numeric) {
        st.variant_of_code.assign(st.variant->dict.size(), kNoVariant);
        for (size_t c = 1; c < st.variant->dict.size(); c++)
          st.variant_of_code[c] = VariantIndex(spec.variants, st.variant->dict[c]);
      }
    }
    const std::vector<uint32_t> codes{exposure.code};
    ScanPersonGroups<int32_t>(
        scan, pt, slots, &codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, int32_t* tie) {
          const ExposureBlock& st = states[b];
          if (!st.ev || st.ev[i] != exposure.code) return false;
          const int64_t ts = st.ts[i];
          if (ts < from_ms || ts >= to_ms) return false;
          const bool flag_ok = st.flag->numeric ? st.flag->Present(i) && st.flag->Get(i).AsString() == spec.flag_key
                                                : st.flag_ok_code[st.flag->CodeAt(i)] != 0;
          if (!flag_ok) return false;
          const int32_t v =
              st.variant->numeric
                  ? (st.variant->Present(i) ? VariantIndex(spec.variants, st.variant->Get(i).AsString()) : kNoVariant)
                  : st.variant_of_code[st.variant->CodeAt(i)];
          if (v == kNoVariant) return false;  // a response that is none of the variants
          const uint32_t p = pt.PersonOf(st.did[i]);
          if (p >= np) return false;  // newer than the snapshot's person table
          *person = p;
          *ts_out = ts;
          *tie = v;
          return true;
        },
        [&](int, uint32_t p, int64_t ts, std::vector<int32_t>& ties) {
          if (first_ts[p] == INT64_MAX) first_ts[p] = ts;
          for (int32_t v : ties) {
            if (variant[p] == kNoVariant)
              variant[p] = v;
            else if (variant[p] != v)
              variant[p] = kMultiple;
          }
        },
        ctx.deadline);
    if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  }

  // Included persons get a dense index into the metric states.
  std::vector<int32_t> index(np, -1);
  std::vector<uint32_t> included;     // person of each index
  std::vector<int32_t> exposure_day;  // local day of each included person's first exposure
  for (uint32_t p = 0; p < np; p++) {
    if (variant[p] == kMultiple) {
      out.multiple_exposures++;
    } else if (variant[p] >= 0) {
      index[p] = static_cast<int32_t>(included.size());
      included.push_back(p);
      exposure_day.push_back(tz.LocalDay(first_ts[p]));
      const size_t v = static_cast<size_t>(variant[p]);
      out.exposed[v]++;
      out.exposures_by_day[v][static_cast<size_t>(exposure_day.back() - spec.from_day)]++;
    }
  }

  // ---- scan 2: every metric's rows at once, from the earliest pre-exposure window on.
  const size_t nm = metrics.size();
  const int64_t pre_ms = static_cast<int64_t>(spec.cuped_days) * kDayMs;
  const bool exposure_known = !exposure.none;
  struct ResolvedMetric {
    std::vector<EventRef> steps;
    EventRef value, denominator, retention;
  };
  std::vector<ResolvedMetric> resolved(nm);
  std::vector<std::string> properties;  // the distinct summed properties
  auto property_slot = [&](const PersonValueSpec& v) -> int {
    if (!v.sum) return -1;
    auto it = std::find(properties.begin(), properties.end(), v.property);
    if (it != properties.end()) return static_cast<int>(it - properties.begin());
    properties.push_back(v.property);
    return static_cast<int>(properties.size()) - 1;
  };
  std::vector<int> value_prop(nm, -1), denominator_prop(nm, -1);
  bool any_event = false;
  std::vector<uint32_t> codes;
  auto want = [&](const EventRef& r) {
    if (r.any) any_event = true;
    if (!r.any && !r.none) codes.push_back(r.code);
  };
  for (size_t m = 0; m < nm; m++) {
    const ExperimentMetricSpec& ms = metrics[m];
    ResolvedMetric& rm = resolved[m];
    switch (ms.type) {
      case ExperimentMetricType::kFunnel:
        for (const std::string& s : ms.steps) rm.steps.push_back(Resolve(s, *snap.events));
        for (const EventRef& r : rm.steps) want(r);
        break;
      case ExperimentMetricType::kRatio:
        rm.denominator = Resolve(ms.denominator.event, *snap.events);
        want(rm.denominator);
        denominator_prop[m] = property_slot(ms.denominator);
        [[fallthrough]];
      case ExperimentMetricType::kMean:
        rm.value = Resolve(ms.value.event, *snap.events);
        want(rm.value);
        value_prop[m] = property_slot(ms.value);
        break;
      case ExperimentMetricType::kRetention:
        rm.retention = Resolve(ms.retention_event, *snap.events);
        want(rm.retention);
        break;
    }
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());

  std::vector<MetricState> state(included.size() * nm);
  if (!included.empty() && nm > 0 && (any_event || !codes.empty())) {
    PersonOrderScan scan(snap, from_ms - pre_ms, to_ms);
    const auto& blocks = scan.blocks();
    struct RowBlock {
      const uint32_t* ev = nullptr;
      const uint32_t* did = nullptr;
      const int64_t* ts = nullptr;
      std::vector<const PropColumn*> props;
    };
    std::vector<RowBlock> states(blocks.size());
    for (size_t b = 0; b < blocks.size(); b++) {
      const Block& blk = *blocks[b];
      bool needed = any_event;
      for (uint32_t c : codes) needed = needed || blk.HasEvent(c);
      if (!needed) continue;
      RowBlock& st = states[b];
      st.ev = blk.ev().data();
      st.did = blk.did().data();
      st.ts = blk.ts().data();
      for (const std::string& prop : properties) st.props.push_back(blk.prop(prop));
    }
    const DayIndex days(tz, spec.from_day, spec.to_day);
    struct Tie {
      uint32_t block, row;
    };
    auto value_of = [&](const PersonValueSpec& v, int prop, const Tie& t) -> double {
      if (!v.sum) return 1;
      const PropColumn* col = states[t.block].props[static_cast<size_t>(prop)];
      double x = 0;
      if (!col || !col->GetNum(t.row, &x) || !std::isfinite(x)) return 0;
      return x;
    };
    std::vector<std::vector<uint32_t>> funnel_codes(static_cast<size_t>(slots));  // per slot scratch
    ScanPersonGroups<Tie>(
        scan, pt, slots, any_event ? nullptr : &codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, Tie* tie) {
          const RowBlock& st = states[b];
          if (!st.ev) return false;
          const int64_t ts = st.ts[i];
          if (ts >= to_ms) return false;
          if (any_event) {
            if (exposure_known && st.ev[i] == exposure.code) return false;
          } else if (!std::binary_search(codes.begin(), codes.end(), st.ev[i])) {
            return false;
          }
          const uint32_t p = pt.PersonOf(st.did[i]);
          if (p >= np || index[p] < 0 || ts < first_ts[p] - pre_ms) return false;
          *person = p;
          *ts_out = ts;
          *tie = Tie{b, i};
          return true;
        },
        [&](int slot, uint32_t p, int64_t ts, std::vector<Tie>& ties) {
          const int64_t exp_ts = first_ts[p];
          const bool post = ts >= exp_ts;
          const size_t x = static_cast<size_t>(index[p]);
          MetricState* ps = &state[x * nm];
          for (size_t m = 0; m < nm; m++) {
            const ExperimentMetricSpec& ms = metrics[m];
            const ResolvedMetric& rm = resolved[m];
            MetricState& s = ps[m];
            const bool in_window = post && (ms.window_ms == 0 || ts - exp_ts <= ms.window_ms);
            switch (ms.type) {
              case ExperimentMetricType::kFunnel: {
                if (!in_window || s.step >= rm.steps.size()) break;
                // Rows of one instant are distinct rows in any order: a row advances at most one
                // step, and rows of one event name are interchangeable.
                std::vector<uint32_t>& left = funnel_codes[static_cast<size_t>(slot)];
                left.clear();
                for (const Tie& t : ties) left.push_back(states[t.block].ev[t.row]);
                while (s.step < rm.steps.size()) {
                  const EventRef& want_step = rm.steps[s.step];
                  auto it = std::find_if(left.begin(), left.end(),
                                         [&](uint32_t c) { return want_step.Matches(c, exposure.code, true); });
                  if (it == left.end()) break;
                  *it = UINT32_MAX;  // used
                  s.step++;
                }
                break;
              }
              case ExperimentMetricType::kMean: {
                const bool pre = !post && spec.cuped_days > 0;
                if (!in_window && !pre) break;
                for (const Tie& t : ties) {
                  if (!rm.value.Matches(states[t.block].ev[t.row], exposure.code, exposure_known)) continue;
                  (pre ? s.pre : s.a) += value_of(ms.value, value_prop[m], t);
                }
                break;
              }
              case ExperimentMetricType::kRatio: {
                const bool pre = !post && spec.cuped_days > 0;
                if (!in_window && !pre) break;
                for (const Tie& t : ties) {
                  const uint32_t ev = states[t.block].ev[t.row];
                  if (rm.value.Matches(ev, exposure.code, exposure_known))
                    (pre ? s.pre : s.a) += value_of(ms.value, value_prop[m], t);
                  if (rm.denominator.Matches(ev, exposure.code, exposure_known))
                    (pre ? s.pre_b : s.b) += value_of(ms.denominator, denominator_prop[m], t);
                }
                break;
              }
              case ExperimentMetricType::kRetention: {
                if (!post || s.step) break;
                if (days.Day(ts) != exposure_day[x] + ms.retention_day) break;
                for (const Tie& t : ties)
                  if (rm.retention.Matches(states[t.block].ev[t.row], exposure.code, exposure_known)) s.step = 1;
                break;
              }
            }
          }
        },
        ctx.deadline);
    if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  }

  // ---- the sums per variant (the engine's accumulator, one Add per included person).
  for (size_t m = 0; m < nm; m++) {
    const ExperimentMetricSpec& ms = metrics[m];
    ExperimentMetricData md;
    md.kind = ms.type == ExperimentMetricType::kMean    ? stats::MetricKind::kMean
              : ms.type == ExperimentMetricType::kRatio ? stats::MetricKind::kRatio
                                                        : stats::MetricKind::kProportion;
    const bool cuped =
        spec.cuped_days > 0 && (ms.type == ExperimentMetricType::kMean || ms.type == ExperimentMetricType::kRatio);
    double cap = INFINITY, pre_cap = INFINITY;
    if (ms.type == ExperimentMetricType::kMean && spec.winsorize_percentile > 0) {
      std::vector<double> values, pres;
      for (size_t x = 0; x < included.size(); x++) {
        values.push_back(state[x * nm + m].a);
        pres.push_back(state[x * nm + m].pre);
      }
      cap = stats::WinsorizationCap(std::move(values), spec.winsorize_percentile);
      pre_cap = stats::WinsorizationCap(std::move(pres), spec.winsorize_percentile);
      md.winsorize_cap = cap;
    }
    std::vector<stats::VariantAccumulator> acc(nv);
    for (size_t x = 0; x < included.size(); x++) {
      const MetricState& s = state[x * nm + m];
      stats::VariantAccumulator& a = acc[static_cast<size_t>(variant[included[x]])];
      switch (ms.type) {
        case ExperimentMetricType::kFunnel: a.Add(s.step >= ms.steps.size() ? 1 : 0); break;
        case ExperimentMetricType::kRetention:
          // Only persons whose day k has come (is within the analysed days) count.
          if (exposure_day[x] + ms.retention_day <= spec.to_day) a.Add(s.step);
          break;
        case ExperimentMetricType::kMean:
          if (cuped)
            a.Add(std::min(s.a, cap), std::min(s.pre, pre_cap));
          else
            a.Add(std::min(s.a, cap));
          break;
        case ExperimentMetricType::kRatio:
          if (cuped)
            a.AddRatio(s.a, s.b, s.pre, s.pre_b);
          else
            a.AddRatio(s.a, s.b);
          break;
      }
    }
    for (size_t v = 0; v < nv; v++) {
      md.variants.push_back(acc[v].Statistics(spec.variants[v]));
      md.variants.back().has_pre = cuped;  // also for a variant without persons
    }
    out.metrics.push_back(std::move(md));
  }
  return out;
}

}  // namespace ns
