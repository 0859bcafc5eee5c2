// The list of query kinds: adding a kind is its operator file plus one line here.
#include <chrono>

#include "query/cohort_source.h"
#include "query/operators.h"
#include "query/person_facts.h"
#include "query/person_models.h"
#include "query/query_kind.h"

namespace ns {

using nlohmann::json;

const std::vector<const QueryKind*>& QueryKinds() {
  static const std::vector<const QueryKind*> kinds = {
      &kTrendsKind, &kFunnelKind, &kRetentionKind, &kRfmKind, &kLifecycleKind,
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
                                    o.people} {}

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

StatusOr<json> RunQuery(const json& request, EventStore& store, const TimeZone& tz, const Deadline* deadline) {
  return RunQuery(request, store, tz, QueryOptions{deadline});
}

StatusOr<json> RunQuery(const json& request, EventStore& store, const TimeZone& tz, const QueryOptions& options) {
  const Deadline* deadline = options.deadline;
  NS_ASSIGN_OR_RETURN(const QueryKind* kind, QueryKindOf(request));
  auto t0 = std::chrono::steady_clock::now();
  QueryScope scope(store, tz, options);
  StatusOr<json> out = Status::OK();
  try {
    out = kind->run(request, scope.ctx());
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
