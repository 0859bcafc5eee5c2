// RFM: recency (whole local days from the last payment to the as-of day), frequency
// (orders) and monetary (their amounts) per payer, scored 1-5 and put in one of eight
// segments (docs/people.md "RFM").
//
// Quintile scores are rank-based so that equal values always score the same: a value x of
// F or M scores 1 + floor(5 * #(values < x) / N); a recency scores 1 + floor(5 * #(values >
// x) / N) (fewer days is better). A segment compares each score with the mean score of the
// population: strictly above is high.
#include <algorithm>
#include <cmath>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_models.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr RfmSegmentInfo kSegments[8] = {
    // r f m (low = 0, high = 1)
    {"hibernating", "一般挽留客户", "Hibernating"},        // 0 0 0
    {"cant_lose", "重要挽留客户", "Can't lose"},           // 0 0 1
    {"need_attention", "一般保持客户", "Need attention"},  // 0 1 0
    {"at_risk_loyal", "重要保持客户", "At-risk loyal"},    // 0 1 1
    {"promising", "一般发展客户", "Promising"},            // 1 0 0
    {"potential", "重要发展客户", "Potential"},            // 1 0 1
    {"loyal", "一般价值客户", "Loyal"},                    // 1 1 0
    {"champions", "重要价值客户", "Champions"},            // 1 1 1
};

// The order segments are listed in answers: the classic table's order.
constexpr int kSegmentOrder[8] = {7, 5, 3, 1, 6, 4, 2, 0};

StatusOr<std::vector<double>> ParseEdges(const json& j, const char* key) {
  std::string field = std::string("scoring.") + key;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 4)
    return InvalidArgument(field + ": expected 4 ascending bin edges (5 scores)", field);
  std::vector<double> e;
  for (size_t i = 0; i < 4; i++) {
    if (!(*it)[i].is_number()) return InvalidArgument(field + "[" + std::to_string(i) + "]: expected a number", field);
    e.push_back((*it)[i].get<double>());
    if (i > 0 && e[i] <= e[i - 1]) return InvalidArgument(field + ": edges must be strictly ascending", field);
  }
  return e;
}

// Rank counts of whole-number values (recency days, order counts) by counting rather than
// by a sort and a binary search per person: O(n + range). Build fails (false) when the
// range is too wide for a count table; the caller sorts then.
class IntRanks {
 public:
  bool Build(const std::vector<double>& v) {
    if (v.empty()) return false;
    const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
    if (*mx - *mn > 4.0 * static_cast<double>(v.size()) + 4096) return false;
    lo_ = static_cast<int64_t>(*mn);
    n_ = v.size();
    below_.assign(static_cast<size_t>(*mx - *mn) + 2, 0);
    for (double x : v) below_[static_cast<size_t>(static_cast<int64_t>(x) - lo_) + 1]++;
    for (size_t i = 1; i < below_.size(); i++) below_[i] += below_[i - 1];
    return true;
  }
  size_t Less(double x) const { return below_[Index(x)]; }
  size_t Greater(double x) const { return n_ - below_[Index(x) + 1]; }
  // The value at position i of the values in ascending order.
  double At(size_t i) const {
    const auto it = std::upper_bound(below_.begin(), below_.end(), static_cast<uint32_t>(i));
    return static_cast<double>(lo_ + (it - below_.begin()) - 1);
  }

 private:
  size_t Index(double x) const { return static_cast<size_t>(static_cast<int64_t>(x) - lo_); }
  int64_t lo_ = 0;
  size_t n_ = 0;
  std::vector<uint32_t> below_;  // below_[k] = #values < lo_ + k
};

}  // namespace

const RfmSegmentInfo& RfmSegment(int index) { return kSegments[index & 7]; }

int RfmSegmentIndex(std::string_view key) {
  for (int i = 0; i < 8; i++)
    if (key == kSegments[i].key) return i;
  return -1;
}

std::string RfmSegmentList() {
  std::string out;
  for (int k = 0; k < 8; k++) out += std::string(k ? ", " : "") + kSegments[kSegmentOrder[k]].key;
  return out;
}

StatusOr<RfmQuery> ParseRfmQuery(const json& j, int32_t today) {
  NS_RETURN_IF_ERROR(CheckFields(
      j, "", {"kind", "as_of", "date_from", "scoring", "filters", "cohort", "segment", "limit", "offset", "order_by"}));
  RfmQuery q;
  NS_ASSIGN_OR_RETURN(std::string as_of, GetString(j, "as_of", "", false));
  if (as_of.empty()) {
    q.as_of_day = today;
  } else {
    NS_ASSIGN_OR_RETURN(q.as_of_day, ParseDate(as_of, "as_of"));
  }
  NS_ASSIGN_OR_RETURN(std::string from, GetString(j, "date_from", "", false));
  if (!from.empty()) {
    NS_ASSIGN_OR_RETURN(int32_t d, ParseDate(from, "date_from"));
    if (d > q.as_of_day) return InvalidArgument("date_from (" + from + ") is after as_of", "date_from");
    q.from_day = d;
  }
  if (auto it = j.find("scoring"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      if (*it != "quintiles")
        return InvalidArgument("scoring: expected \"quintiles\" or {\"r\":[...],\"f\":[...],\"m\":[...]}", "scoring");
    } else if (it->is_object()) {
      NS_RETURN_IF_ERROR(CheckFields(*it, "scoring", {"r", "f", "m"}));
      q.scoring.quintiles = false;
      NS_ASSIGN_OR_RETURN(q.scoring.edges[0], ParseEdges(*it, "r"));
      NS_ASSIGN_OR_RETURN(q.scoring.edges[1], ParseEdges(*it, "f"));
      NS_ASSIGN_OR_RETURN(q.scoring.edges[2], ParseEdges(*it, "m"));
    } else {
      return InvalidArgument("scoring: expected \"quintiles\" or {\"r\":[...],\"f\":[...],\"m\":[...]}", "scoring");
    }
  }
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  for (const Filter& f : q.filters)
    if (!f.person)
      return InvalidArgument(
          "filters: rfm filters persons: use person.<property> or a cohort, not the event property '" + f.property +
              "'",
          "filters");
  NS_RETURN_IF_ERROR(AppendCohortField(j, &q.filters));
  NS_ASSIGN_OR_RETURN(q.segment, GetString(j, "segment", "", false));
  if (!q.segment.empty() && RfmSegmentIndex(q.segment) < 0)
    return InvalidArgument("segment: unknown segment '" + q.segment + "' (expected " + RfmSegmentList() + ")",
                           "segment");
  NS_ASSIGN_OR_RETURN(int64_t limit, GetInt(j, "limit", "", 100, 0, 100000));
  NS_ASSIGN_OR_RETURN(int64_t offset, GetInt(j, "offset", "", 0, 0, INT32_MAX));
  q.limit = static_cast<size_t>(limit);
  q.offset = static_cast<size_t>(offset);
  NS_ASSIGN_OR_RETURN(q.order_by, GetString(j, "order_by", "", false, "monetary"));
  if (q.order_by != "monetary" && q.order_by != "frequency" && q.order_by != "recency_days")
    return InvalidArgument("order_by: expected monetary, frequency or recency_days", "order_by");
  return q;
}

RfmModel RfmModel::Build(const PersonFacts& facts, const TimeZone& tz, const RfmScoring& scoring,
                         const std::vector<uint8_t>* include) {
  RfmModel m;
  int64_t min_pay = INT64_MAX;
  size_t payers = 0;
  for (uint32_t p = 0; p < facts.size(); p++) payers += facts.Paid(p);
  m.persons_.reserve(payers);
  for (uint32_t p = 0; p < facts.size(); p++) {
    if (!facts.Paid(p) || (include && (p >= include->size() || !(*include)[p]))) continue;
    RfmPerson r;
    r.person = p;
    r.frequency = facts.orders[p];
    r.monetary = facts.monetary[p];
    min_pay = std::min(min_pay, facts.last_pay_ts[p]);
    m.persons_.push_back(r);
  }
  if (m.persons_.empty()) return m;
  DayIndex days(tz, tz.LocalDay(min_pay), facts.as_of_day);
  for (RfmPerson& r : m.persons_) r.recency_days = facts.as_of_day - days.Day(facts.last_pay_ts[r.person]);

  const size_t n = m.persons_.size();
  std::vector<double> rv(n), fv(n), mv(n);
  for (size_t i = 0; i < n; i++) {
    rv[i] = m.persons_[i].recency_days;
    fv[i] = m.persons_[i].frequency;
    mv[i] = m.persons_[i].monetary;
  }
  IntRanks r_ranks, f_ranks;
  const bool r_counted = scoring.quintiles && r_ranks.Build(rv);
  const bool f_counted = scoring.quintiles && f_ranks.Build(fv);
  if (!r_counted) std::sort(rv.begin(), rv.end());
  if (!f_counted) std::sort(fv.begin(), fv.end());
  if (scoring.quintiles) std::sort(mv.begin(), mv.end());
  // #(values < x): a binary search without branches (a conditional move per step), since the
  // steps of a search for a random payer's value mispredict half the time.
  auto less = [](const std::vector<double>& v, double x) {
    if (v.empty()) return size_t{0};
    const double* base = v.data();
    for (size_t len = v.size(); len > 1;) {
      const size_t half = len / 2;
      base = base[half] < x ? base + half : base;
      len -= half;
    }
    return static_cast<size_t>(base - v.data()) + (*base < x ? 1 : 0);
  };
  auto greater = [](const std::vector<double>& v, double x) {
    return static_cast<size_t>(v.end() - std::upper_bound(v.begin(), v.end(), x));
  };
  auto quint = [n](size_t k) { return 1 + static_cast<int>(5 * k / n); };
  auto binned = [](const std::vector<double>& e, double x) {
    return static_cast<int>(std::upper_bound(e.begin(), e.end(), x) - e.begin());
  };
  double sums[3] = {0, 0, 0};
  for (RfmPerson& r : m.persons_) {
    if (scoring.quintiles) {
      r.r = quint(r_counted ? r_ranks.Greater(r.recency_days) : greater(rv, r.recency_days));
      r.f = quint(f_counted ? f_ranks.Less(r.frequency) : less(fv, r.frequency));
      r.m = quint(less(mv, r.monetary));
    } else {
      r.r = 5 - binned(scoring.edges[0], r.recency_days);
      r.f = 1 + binned(scoring.edges[1], r.frequency);
      r.m = 1 + binned(scoring.edges[2], r.monetary);
    }
    sums[0] += r.r;
    sums[1] += r.f;
    sums[2] += r.m;
  }
  for (int k = 0; k < 3; k++) m.means_[static_cast<size_t>(k)] = sums[k] / static_cast<double>(n);
  for (RfmPerson& r : m.persons_)
    r.segment = (r.r > m.means_[0] ? 4 : 0) | (r.f > m.means_[1] ? 2 : 0) | (r.m > m.means_[2] ? 1 : 0);
  if (scoring.quintiles) {
    // The smallest value scoring s (s = 2..5): where a reader's "quintile edge" lies.
    const std::vector<double>* sorted[3] = {&rv, &fv, &mv};
    const IntRanks* counted[3] = {r_counted ? &r_ranks : nullptr, f_counted ? &f_ranks : nullptr, nullptr};
    for (int k = 0; k < 3; k++) {
      const auto& v = *sorted[k];
      for (int s = 1; s < 5; s++) {
        size_t i = std::min(n - 1, (static_cast<size_t>(s) * n + 4) / 5);
        const size_t at = k == 0 ? n - 1 - i : i;
        m.edges_[static_cast<size_t>(k)].push_back(counted[k] ? counted[k]->At(at) : v[at]);
      }
    }
  } else {
    m.edges_ = scoring.edges;
  }
  return m;
}

const RfmPerson* RfmModel::Find(uint32_t person) const {
  auto it = std::lower_bound(persons_.begin(), persons_.end(), person,
                             [](const RfmPerson& r, uint32_t p) { return r.person < p; });
  return it != persons_.end() && it->person == person ? &*it : nullptr;
}

StatusOr<RfmResult> RunRfm(const RfmQuery& q, const QueryContext& ctx) {
  const PeopleSettings& settings = ctx.people_settings();
  auto facts = GetPersonFacts(ctx.snap, ctx.tz, settings, q.as_of_day, q.from_day, /*payments_only=*/true);
  std::vector<uint8_t> include;
  if (!q.filters.empty()) {
    include = FilterSet(q.filters, ctx.snap).PersonVerdicts();
    include.resize(facts->size(), 0);
  }
  RfmModel model = RfmModel::Build(*facts, ctx.tz, q.scoring, q.filters.empty() ? nullptr : &include);
  RfmResult out;
  out.timezone = ctx.tz.name();
  out.as_of_day = q.as_of_day;
  out.persons_scored = model.persons().size();
  out.mean_scores = model.mean_scores();
  out.edges = model.edges();
  out.quintiles = q.scoring.quintiles;
  std::array<RfmSegmentResult, 8> seg;
  double revenue = 0;
  for (const RfmPerson& r : model.persons()) {
    RfmSegmentResult& s = seg[static_cast<size_t>(r.segment)];
    s.persons++;
    s.avg_recency_days += r.recency_days;
    s.avg_frequency += r.frequency;
    s.avg_monetary += r.monetary;
    s.revenue += r.monetary;
    revenue += r.monetary;
  }
  for (int k = 0; k < 8; k++) {
    RfmSegmentResult s = seg[static_cast<size_t>(kSegmentOrder[k])];
    s.segment = kSegmentOrder[k];
    if (s.persons) {
      double n = static_cast<double>(s.persons);
      s.avg_recency_days /= n;
      s.avg_frequency /= n;
      s.avg_monetary /= n;
    }
    s.share = out.persons_scored ? static_cast<double>(s.persons) / static_cast<double>(out.persons_scored) : 0;
    s.revenue_share = revenue > 0 ? s.revenue / revenue : 0;
    out.segments.push_back(s);
  }
  const int want = q.segment.empty() ? -1 : RfmSegmentIndex(q.segment);
  std::vector<const RfmPerson*> list;
  for (const RfmPerson& r : model.persons())
    if (want < 0 || r.segment == want) list.push_back(&r);
  out.persons_total = list.size();
  auto key = [&](const RfmPerson* r) {
    return q.order_by == "recency_days" ? static_cast<double>(r->recency_days)
           : q.order_by == "frequency"  ? -static_cast<double>(r->frequency)
                                        : -r->monetary;
  };
  const size_t end = std::min(list.size(), q.offset + q.limit);
  if (q.offset < end) {
    std::partial_sort(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(end), list.end(),
                      [&](const RfmPerson* a, const RfmPerson* b) {
                        double ka = key(a), kb = key(b);
                        return ka != kb ? ka < kb : a->person < b->person;
                      });
    for (size_t i = q.offset; i < end; i++) {
      out.persons.push_back(*list[i]);
      out.person_ids.push_back(ctx.namer ? ctx.namer(list[i]->person) : std::to_string(list[i]->person));
    }
  }
  return out;
}

json RfmPersonJson(const RfmPerson& p) {
  return json{{"recency_days", p.recency_days},
              {"frequency", p.frequency},
              {"monetary", p.monetary},
              {"r", p.r},
              {"f", p.f},
              {"m", p.m},
              {"segment", RfmSegment(p.segment).key}};
}

json ToJson(const RfmResult& r) {
  json segs = json::array();
  for (const auto& s : r.segments) {
    const RfmSegmentInfo& info = RfmSegment(s.segment);
    segs.push_back(
        {{"segment", info.key},
         {"label", info.label_en},
         {"label_zh", info.label_zh},
         {"r", s.segment & 4 ? "high" : "low"},
         {"f", s.segment & 2 ? "high" : "low"},
         {"m", s.segment & 1 ? "high" : "low"},
         {"persons", s.persons},
         {"share", s.share},
         {"avg_recency_days", s.avg_recency_days},
         {"avg_frequency", s.avg_frequency},
         {"avg_monetary", s.avg_monetary},
         {"revenue", s.revenue},
         {"revenue_share", s.revenue_share},
         // Saving the segment as a cohort is one POST /api/v1/cohorts with this
         // definition (evaluated with quintile scoring, as of each day it is read).
         {"cohort_definition",
          {{"op", "and"}, {"conditions", json::array({{{"type", "rfm_segment"}, {"segment", info.key}}})}}}});
  }
  json persons = json::array();
  for (size_t i = 0; i < r.persons.size(); i++) {
    json p = RfmPersonJson(r.persons[i]);
    p["distinct_id"] = r.person_ids[i];
    persons.push_back(std::move(p));
  }
  return json{{"kind", "rfm"},
              {"timezone", r.timezone},
              {"as_of", FormatDate(r.as_of_day)},
              {"scoring", r.quintiles ? "quintiles" : "bins"},
              {"persons_scored", r.persons_scored},
              {"mean_scores", {{"r", r.mean_scores[0]}, {"f", r.mean_scores[1]}, {"m", r.mean_scores[2]}}},
              {"edges", {{"r", r.edges[0]}, {"f", r.edges[1]}, {"m", r.edges[2]}}},
              {"segments", segs},
              {"persons", persons},
              {"persons_total", r.persons_total}};
}

const QueryKind kRfmKind{
    "rfm",
    {},
    [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
      NS_ASSIGN_OR_RETURN(RfmQuery q, ParseRfmQuery(request, ctx.tz.LocalDay(NowMs())));
      NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
      NS_ASSIGN_OR_RETURN(RfmResult r, RunRfm(q, ctx));
      return ToJson(r);
    },
    [](const json& request) { return ParseRfmQuery(request, 0).status(); },
    [](const json& r) {
      ResultTable rows;
      rows.push_back({"segment", "label", "persons", "share", "avg_recency_days", "avg_frequency", "avg_monetary",
                      "revenue", "revenue_share"});
      for (const auto& s : r["segments"])
        rows.push_back({s["segment"], s["label_zh"], s["persons"], s["share"], s["avg_recency_days"],
                        s["avg_frequency"], s["avg_monetary"], s["revenue"], s["revenue_share"]});
      return rows;
    }};

}  // namespace ns
