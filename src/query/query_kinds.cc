// The list of query kinds: adding a kind is its operator file plus one line here.
#include <chrono>

#include "query/cohort_source.h"
#include "query/operators.h"
#include "query/person_facts.h"
#include "query/query_kind.h"
#include "query/relative_dates.h"

namespace ns {

using nlohmann::json;

const std::vector<const QueryKind*>& QueryKinds() {
  static const std::vector<const QueryKind*> kinds = {
      &kTrendsKind,     &kFunnelKind, &kRetentionKind, &kRfmKind, &kLifecycleKind, &kPathsKind,
      &kCommerceKind,    // commerce.cc
      &kLtvKind,         // ltv.cc
      &kChannelsKind,    // channels.cc
      &kClvKind,         // clv.cc
      &kStickinessKind,  // stickiness.cc
      &kReferralKind,    // referral.cc
  };
  return kinds;
}

const QueryKind* FindQueryKind(std::string_view name) {
  for (const QueryKind* k : QueryKinds()) {
    if (k->name == name) return k;
    for (std::string_view a : k->aliases)
      if (a == name) return k;
  }
  return nullptr;
}

std::string QueryKindList() {
  const auto& kinds = QueryKinds();
  std::string out;
  for (size_t i = 0; i < kinds.size(); i++) {
    if (i > 0) out += i + 1 == kinds.size() ? " or " : ", ";
    out += kinds[i]->name;
  }
  return out;
}

StatusOr<const QueryKind*> QueryKindOf(const json& request) {
  if (!request.is_object()) return InvalidArgument("query: expected a JSON object", "kind");
  auto k = request.find("kind");
  if (k == request.end()) return InvalidArgument("kind: required field is missing (" + QueryKindList() + ")", "kind");
  if (!k->is_string()) return InvalidArgument("kind: expected a string", "kind");
  const std::string& name = k->get_ref<const std::string&>();
  const QueryKind* kind = FindQueryKind(name);
  if (kind == nullptr)
    return InvalidArgument("kind: unknown query kind '" + name + "' (expected " + QueryKindList() + ")", "kind");
  return kind;
}

QueryScope::QueryScope(EventStore& store, const TimeZone& tz, const Deadline* deadline)
    : QueryScope(store, tz, QueryOptions{deadline}) {}

QueryScope::QueryScope(EventStore& store, const TimeZone& tz, const QueryOptions& o)
    : snap_(store.Snapshot()), ctx_{*snap_,
                                    tz,
                                    [st = &store](uint32_t person) { return st->DisplayId(person); },
                                    o.deadline,
                                    o.cohorts,
                                    o.people} {
  ctx_.spend = o.spend;
  ctx_.find_distinct_id = [st = &store](std::string_view id) { return st->FindDistinctId(id); };
}

Status QueryContext::BindCohorts(std::vector<Filter>& filters) const {
  return ns::BindCohorts(filters, cohorts, snap, tz);
}

const PeopleSettings& QueryContext::people_settings() const {
  static const PeopleSettings kDefaults;
  return people ? *people : kDefaults;
}

Status BindCohorts(std::vector<Filter>& filters, const CohortSource* source, const StoreSnapshot& snap,
                   const TimeZone& tz) {
  for (Filter& f : filters) {
    if (f.cohort <= 0 || f.members) continue;
    if (!source) return FailedPrecondition(f.field + ": cohort filters are only available through the server's API");
    auto m = source->Members(f.cohort, snap, tz);
    if (!m.ok()) {
      if (m.status().code() == StatusCode::kNotFound)
        return InvalidArgument(f.field + ".cohort: no cohort " + std::to_string(f.cohort) + " in this project",
                               f.field + ".cohort");
      return m.status();
    }
    f.members = *m;
  }
  return Status::OK();
}

static bool IsCohortBreakdown(const json& request) {
  auto it = request.find("breakdown");
  return it != request.end() && it->is_string() && *it == "cohort";
}

// "breakdown":"cohort" with "breakdown_cohorts":[ids]: the query once per cohort (its
// filters plus {"cohort": id}), answered in the kind's breakdown shape with the cohort id
// as breakdown_value. A person in two cohorts counts in both, as in PostHog.
static StatusOr<json> RunCohortBreakdown(const QueryKind& kind, const json& request, const QueryContext& ctx) {
  if (kind.name != "trends" && kind.name != "funnel" && kind.name != "retention")
    return InvalidArgument("breakdown: a cohort breakdown is available for trends, funnel and retention", "breakdown");
  auto ids = request.find("breakdown_cohorts");
  if (ids == request.end() || !ids->is_array() || ids->empty() || ids->size() > 25)
    return InvalidArgument("breakdown_cohorts: expected 1 to 25 cohort ids with \"breakdown\":\"cohort\"",
                           "breakdown_cohorts");
  json base = request;
  base.erase("breakdown");
  base.erase("breakdown_cohorts");
  if (!base.contains("filters") || base["filters"].is_null()) base["filters"] = json::array();
  if (!base["filters"].is_array()) return InvalidArgument("filters: expected an array of filters", "filters");
  NS_ASSIGN_OR_RETURN(json out, kind.run(base, ctx));
  json parts = json::array();
  for (size_t i = 0; i < ids->size(); i++) {
    const json& id = (*ids)[i];
    if (!id.is_number_integer() || id.get<int64_t>() <= 0)
      return InvalidArgument("breakdown_cohorts[" + std::to_string(i) + "]: expected a cohort id", "breakdown_cohorts");
    json sub = base;
    sub["filters"].push_back(json{{"cohort", id}});
    auto r = kind.run(sub, ctx);
    if (!r.ok()) {
      if (r.status().field() == "filters[" + std::to_string(sub["filters"].size() - 1) + "].cohort")
        return InvalidArgument(
            "breakdown_cohorts[" + std::to_string(i) + "]: no cohort " + id.dump() + " in this project",
            "breakdown_cohorts");
      return r.status();
    }
    if (kind.name == "trends") {
      for (auto& sr : (*r)["series"]) {
        sr["breakdown_value"] = id;
        parts.push_back(std::move(sr));
      }
    } else if (kind.name == "funnel") {
      parts.push_back(json{{"breakdown_value", id}, {"steps", (*r)["steps"]}});
    } else {
      for (auto& c : (*r)["cohorts"]) {
        c["breakdown_value"] = id;
        parts.push_back(std::move(c));
      }
    }
  }
  // trends: the series per cohort replace the total; funnel: the total stays and the
  // cohorts are its breakdowns; retention: the cohort rows per cohort replace the total.
  if (kind.name == "trends") {
    out["series"] = parts;
  } else if (kind.name == "funnel") {
    out["breakdowns"] = parts;
  } else {
    out["cohorts"] = parts;
  }
  out["breakdown"] = "cohort";
  return out;
}

StatusOr<json> RunQuery(const json& request, EventStore& store, const TimeZone& tz, const Deadline* deadline) {
  return RunQuery(request, store, tz, QueryOptions{deadline});
}

StatusOr<json> RunQuery(const json& request_in, EventStore& store, const TimeZone& tz, const QueryOptions& options) {
  const Deadline* deadline = options.deadline;
  NS_ASSIGN_OR_RETURN(const QueryKind* kind, QueryKindOf(request_in));
  // Relative dates ("-30d", "last_month") become the project's local days here, once, so
  // every kind (and the answer's date_from/date_to) sees plain dates.
  // A paths query's embedded "funnel" has dates of its own.
  json resolved;
  auto has_relative = [](const json& j) {
    bool r = false;
    for (const char* key : {"date_from", "date_to"}) {
      auto it = j.find(key);
      r |= it != j.end() && it->is_string() && IsRelativeDate(it->get_ref<const std::string&>());
    }
    return r;
  };
  auto funnel = request_in.find("funnel");
  const bool nested = funnel != request_in.end() && funnel->is_object() && has_relative(*funnel);
  const bool relative = has_relative(request_in) || nested;
  if (relative) {
    resolved = request_in;
    NS_RETURN_IF_ERROR(ResolveRelativeDates(resolved, tz.LocalDay(NowMs())));
    if (nested)
      if (Status st = ResolveRelativeDates(resolved["funnel"], tz.LocalDay(NowMs())); !st.ok())
        return InvalidArgument("funnel." + st.message(), "funnel." + st.field());
  }
  const json& request = relative ? resolved : request_in;
  auto t0 = std::chrono::steady_clock::now();
  QueryScope scope(store, tz, options);
  StatusOr<json> out = Status::OK();
  try {
    out =
        IsCohortBreakdown(request) ? RunCohortBreakdown(*kind, request, scope.ctx()) : kind->run(request, scope.ctx());
  } catch (const std::exception& e) {
    return Internal(std::string("query failed: ") + e.what());
  }
  NS_RETURN_IF_ERROR(scope.status());  // a corrupt segment column: an error, never a wrong answer
  if (deadline && deadline->fired()) return deadline->ToStatus();  // cut short: no partial answer
  if (out.ok()) {
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    (*out)["took_ms"] = ms;
  }
  return out;
}

}  // namespace ns
