#include "people/cohort_eval.h"

#include <algorithm>
#include <limits>

#include "query/person_models.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

namespace {

constexpr int64_t kNoTs = std::numeric_limits<int64_t>::min();

struct Range {
  int64_t from = std::numeric_limits<int64_t>::min();
  int64_t to = std::numeric_limits<int64_t>::max();
};

Range RangeOf(const CohortCondition& c, const CohortEvalContext& ctx) {
  Range r;
  if (c.last_days > 0) {
    r.from = ctx.tz.DayStartMs(ctx.today - static_cast<int32_t>(c.last_days) + 1);
    // The last N days end with today: rows dated after it (a client clock ahead, or a
    // `today` in the past) are not in them. Found by tests/unit/cohort_reference_test.cc.
    r.to = ctx.tz.DayStartMs(ctx.today + 1);
  }
  if (c.from_day) r.from = ctx.tz.DayStartMs(*c.from_day);
  if (c.to_day) r.to = ctx.tz.DayStartMs(*c.to_day + 1);
  return r;
}

// Calls fn(person, ts) for every row of `step` (event and filters) with ts in r.
template <typename Fn>
void ForEachStepRow(const CohortEvalContext& ctx, const CohortCondition::Step& step, Range r, Fn&& fn) {
  const StoreSnapshot& snap = ctx.snap;
  const PersonTable& pt = *snap.persons;
  const EventMatcher m = EventMatcher::Make(step.event, *snap.events);
  if (m.none) return;
  const FilterSet filters(step.filters, snap);
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    if (b.size() == 0 || !m.MayMatch(b) || b.max_ts() < r.from || b.min_ts() >= r.to) continue;
    const FilterSet::BlockEval e = filters.ForBlock(b);
    if (e.always_false) continue;
    const auto& ts = b.ts();
    const auto& did = b.did();
    auto visit = [&](uint32_t i) {
      if (ts[i] < r.from || ts[i] >= r.to) return;
      if (!e.always_true && !e.Match(i)) return;
      const uint32_t p = pt.PersonOf(did[i]);
      if (p < pt.size()) fn(p, ts[i]);
    };
    if (m.any) {
      for (uint32_t i = 0; i < b.size(); i++) visit(i);
    } else {
      auto [rb, re] = b.EventRows(m.code);
      for (const uint32_t* q = rb; q < re; q++) visit(*q);
    }
  }
}

bool CountMatches(CountOp op, uint64_t have, int64_t want) {
  const uint64_t w = static_cast<uint64_t>(want);
  return op == CountOp::kGte ? have >= w : op == CountOp::kLte ? have <= w : have == w;
}

Roaring Performed(const CohortCondition& c, const CohortEvalContext& ctx) {
  const PersonTable& pt = *ctx.snap.persons;
  std::vector<uint32_t> count(pt.size(), 0);
  ForEachStepRow(ctx, c.steps[0], RangeOf(c, ctx), [&](uint32_t p, int64_t) { count[p]++; });
  Roaring out;
  const bool not_performed = c.type == CohortCondition::Type::kNotPerformed;
  for (uint32_t p = 0; p < pt.size(); p++) {
    if (!pt.IsPerson(p)) continue;
    const bool in = not_performed ? count[p] == 0 : CountMatches(c.count_op, count[p], c.count);
    if (in) out.add(p);
  }
  return out;
}

Roaring FirstPerformed(const CohortCondition& c, const CohortEvalContext& ctx) {
  const PersonTable& pt = *ctx.snap.persons;
  std::vector<int64_t> first(pt.size(), std::numeric_limits<int64_t>::max());
  ForEachStepRow(ctx, c.steps[0], Range{}, [&](uint32_t p, int64_t ts) { first[p] = std::min(first[p], ts); });
  const Range r = RangeOf(c, ctx);
  Roaring out;
  for (uint32_t p = 0; p < pt.size(); p++)
    if (pt.IsPerson(p) && first[p] >= r.from && first[p] < r.to) out.add(p);
  return out;
}

// Steps in order within the window from the first step's time. Events at one instant are
// taken in step order (the funnel's rule: the row matching the earliest step first).
Roaring Sequence(const CohortCondition& c, const CohortEvalContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const PersonTable& pt = *snap.persons;
  const Range r = RangeOf(c, ctx);
  const size_t k = c.steps.size();
  std::vector<EventMatcher> ms;
  std::vector<FilterSet> fs;
  std::vector<uint32_t> codes;
  bool any = false;
  for (const auto& s : c.steps) {
    ms.push_back(EventMatcher::Make(s.event, *snap.events));
    fs.emplace_back(s.filters, snap);
    if (ms.back().any) any = true;
    if (!ms.back().any && !ms.back().none) codes.push_back(ms.back().code);
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  PersonOrderScan scan(snap, r.from, r.to);
  const auto& blocks = scan.blocks();
  std::vector<std::vector<FilterSet::BlockEval>> evals(blocks.size());
  for (size_t b = 0; b < blocks.size(); b++)
    for (size_t s = 0; s < k; s++) evals[b].push_back(fs[s].ForBlock(*blocks[b]));
  std::vector<int64_t> best(pt.size() * k, kNoTs);
  std::vector<uint8_t> done(pt.size(), 0);
  ScanPersonGroups<uint64_t>(
      scan, pt, QueryThreads(), any ? nullptr : &codes,
      [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, uint64_t* tie) {
        const Block& blk = *blocks[b];
        const int64_t ts = blk.ts()[i];
        if (ts < r.from || ts >= r.to) return false;
        const uint32_t p = pt.PersonOf(blk.did()[i]);
        if (done[p]) return false;
        const uint32_t ev = blk.ev()[i];
        uint64_t mask = 0;
        for (size_t s = 0; s < k; s++) {
          if (ms[s].none || (!ms[s].any && ms[s].code != ev)) continue;
          const auto& e = evals[b][s];
          if (e.always_false || (!e.always_true && !e.Match(i))) continue;
          mask |= 1ULL << s;
        }
        if (!mask) return false;
        *person = p;
        *ts_out = ts;
        *tie = mask;
        return true;
      },
      [&](int, uint32_t p, int64_t ts, std::vector<uint64_t>& ties) {
        // Rows matching the same earliest step are then ordered by their step sets (as the
        // funnel does): with the earliest step alone the order was arbitrary, and a row
        // matching steps {0} and one matching {0,1} at one instant did or did not make the
        // sequence depending on it. Found by tests/unit/cohort_reference_test.cc.
        if (ties.size() > 1)
          std::sort(ties.begin(), ties.end(), [](uint64_t a, uint64_t b) {
            const int x = __builtin_ctzll(a), y = __builtin_ctzll(b);
            return x != y ? x < y : a < b;
          });
        int64_t* bp = &best[static_cast<size_t>(p) * k];
        for (uint64_t mask : ties) {
          for (size_t s = k; s-- > 0;) {
            if (!((mask >> s) & 1)) continue;
            if (s == 0) {
              bp[0] = ts;
            } else if (bp[s - 1] != kNoTs && ts - bp[s - 1] <= c.window_ms) {
              bp[s] = std::max(bp[s], bp[s - 1]);
            }
          }
        }
        if (bp[k - 1] != kNoTs) done[p] = 1;
      });
  Roaring out;
  for (uint32_t p = 0; p < pt.size(); p++)
    if (done[p]) out.add(p);
  return out;
}

StatusOr<Roaring> Eval(const CohortCondition& c, const CohortEvalContext& ctx, const Roaring& all);

StatusOr<Roaring> Group(const CohortCondition& c, const CohortEvalContext& ctx, const Roaring& all) {
  Roaring acc = c.any ? Roaring() : all;
  for (const auto& sub : c.conditions) {
    NS_ASSIGN_OR_RETURN(Roaring s, Eval(sub, ctx, all));
    if (c.any) {
      acc |= s;
    } else {
      acc &= s;
    }
  }
  return acc;
}

StatusOr<Roaring> Eval(const CohortCondition& c, const CohortEvalContext& ctx, const Roaring& all) {
  using T = CohortCondition::Type;
  switch (c.type) {
    case T::kGroup: return Group(c, ctx, all);
    case T::kPerformed:
    case T::kNotPerformed: return Performed(c, ctx);
    case T::kFirstPerformed: return FirstPerformed(c, ctx);
    case T::kSequence: return Sequence(c, ctx);
    case T::kProperty: {
      std::vector<uint8_t> ok = FilterSet({c.property}, ctx.snap).PersonVerdicts();
      Roaring out;
      for (uint32_t p = 0; p < ok.size(); p++)
        if (ok[p]) out.add(p);
      return out;
    }
    case T::kCohort: {
      if (!ctx.cohort) return FailedPrecondition(c.field + ": cohort conditions need the cohort service");
      NS_ASSIGN_OR_RETURN(std::shared_ptr<const Roaring> m, ctx.cohort(c.cohort_id, c.field));
      if (!c.negate) return *m;
      Roaring out = all;
      out -= *m;
      return out;
    }
    case T::kRfmSegment: {
      auto facts = GetPersonFacts(ctx.snap, ctx.tz, ctx.settings, ctx.today);
      RfmModel model = RfmModel::Build(*facts, ctx.tz, RfmScoring{});
      const int want = RfmSegmentIndex(c.value);
      Roaring out;
      for (const RfmPerson& r : model.persons())
        if (r.segment == want) out.add(r.person);
      return out;
    }
    case T::kLifecycle: {
      auto facts = GetPersonFacts(ctx.snap, ctx.tz, ctx.settings, ctx.today);
      Roaring out;
      for (uint32_t p = 0; p < facts->size(); p++)
        if (ctx.snap.persons->IsPerson(p) && LifecycleStage(*facts, ctx.settings, ctx.tz, p) == c.value) out.add(p);
      return out;
    }
    case T::kTier: {
      TierDimension dim;
      ParseTierDimension(c.key, &dim);
      auto tiers = GetPersonTiers(ctx.snap, ctx.tz, ctx.settings, ctx.today, ctx.find);
      const auto& levels = TierLevels(dim);
      const int want = static_cast<int>(std::find(levels.begin(), levels.end(), c.value) - levels.begin());
      Roaring out;
      const auto& v = tiers->level[static_cast<size_t>(dim)];
      for (uint32_t p = 0; p < v.size(); p++)
        if (v[p] == want && ctx.snap.persons->IsPerson(p)) out.add(p);
      return out;
    }
    case T::kTag: {
      if (!ctx.tag) return FailedPrecondition(c.field + ": tag conditions need the people service");
      NS_ASSIGN_OR_RETURN(std::shared_ptr<const Roaring> m, ctx.tag(c.key, c.values));
      return *m;
    }
  }
  return InvalidArgument(c.field + ": this condition type is not available yet", c.field);
}

}  // namespace

Roaring AllPersons(const PersonTable& pt) {
  Roaring all;
  for (uint32_t p = 0; p < pt.size(); p++)
    if (pt.IsPerson(p)) all.add(p);
  return all;
}

StatusOr<Roaring> EvaluateCohort(const CohortCondition& definition, const CohortEvalContext& ctx) {
  const Roaring all = AllPersons(*ctx.snap.persons);
  NS_ASSIGN_OR_RETURN(Roaring out, Eval(definition, ctx, all));
  out.runOptimize();
  return out;
}

}  // namespace ns
