#include "people/cohort_definition.h"

#include <algorithm>

#include "people/tags.h"
#include "people/tiers.h"
#include "query/json_fields.h"
#include "query/person_models.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr int kMaxDepth = 8;
constexpr size_t kMaxConditions = 100;

Status ParseRange(const json& j, const std::string& f, CohortCondition* c) {
  NS_ASSIGN_OR_RETURN(std::string from, GetString(j, "date_from", f, false));
  NS_ASSIGN_OR_RETURN(std::string to, GetString(j, "date_to", f, false));
  NS_ASSIGN_OR_RETURN(c->last_days, GetInt(j, "last_days", f, 0, 1, 3660));
  if (c->last_days > 0 && (!from.empty() || !to.empty()))
    return InvalidArgument(f + ".last_days: give either last_days or date_from/date_to, not both", f + ".last_days");
  if (!from.empty()) {
    NS_ASSIGN_OR_RETURN(int32_t d, ParseDate(from, f + ".date_from"));
    c->from_day = d;
  }
  if (!to.empty()) {
    NS_ASSIGN_OR_RETURN(int32_t d, ParseDate(to, f + ".date_to"));
    c->to_day = d;
  }
  if (c->from_day && c->to_day && *c->to_day < *c->from_day)
    return InvalidArgument(f + ".date_to: is before date_from", f + ".date_to");
  return Status::OK();
}

StatusOr<CohortCondition::Step> ParseStep(const json& j, const std::string& f) {
  CohortCondition::Step s;
  NS_ASSIGN_OR_RETURN(s.event, GetString(j, "event", f, true));
  if (s.event.empty()) return InvalidArgument(f + ".event: must not be empty", f + ".event");
  NS_ASSIGN_OR_RETURN(s.filters, ParseFilters(j.value("filters", json::array()), f + ".filters"));
  for (const Filter& x : s.filters)
    if (x.cohort > 0) return InvalidArgument(x.field + ": use a {\"type\":\"cohort\"} condition for cohorts", x.field);
  return s;
}

StatusOr<CohortCondition> ParseCondition(const json& j, const std::string& f, int depth);

StatusOr<CohortCondition> ParseGroup(const json& j, const std::string& f, int depth) {
  if (depth > kMaxDepth) return InvalidArgument(f + ": groups nest deeper than " + std::to_string(kMaxDepth), f);
  NS_RETURN_IF_ERROR(CheckFields(j, f, {"op", "conditions", "type"}));
  CohortCondition c;
  c.type = CohortCondition::Type::kGroup;
  c.field = f;
  NS_ASSIGN_OR_RETURN(std::string op, GetString(j, "op", f, false, "and"));
  if (op != "and" && op != "or") return InvalidArgument(f + ".op: expected and or or, got '" + op + "'", f + ".op");
  c.any = op == "or";
  const std::string cf = f.empty() ? "conditions" : f + ".conditions";
  auto it = j.find("conditions");
  if (it == j.end() || !it->is_array() || it->empty())
    return InvalidArgument(cf + ": expected a non-empty array of conditions", cf);
  if (it->size() > kMaxConditions)
    return InvalidArgument(cf + ": at most " + std::to_string(kMaxConditions) + " conditions per group", cf);
  for (size_t i = 0; i < it->size(); i++) {
    NS_ASSIGN_OR_RETURN(CohortCondition sub, ParseCondition((*it)[i], cf + "[" + std::to_string(i) + "]", depth + 1));
    c.conditions.push_back(std::move(sub));
  }
  return c;
}

StatusOr<CohortCondition> ParseCondition(const json& j, const std::string& f, int depth) {
  if (!j.is_object()) return InvalidArgument(f + ": expected an object", f);
  if (!j.contains("type") || (j.contains("op") && j.contains("conditions"))) return ParseGroup(j, f, depth);
  NS_ASSIGN_OR_RETURN(std::string type, GetString(j, "type", f, true));
  CohortCondition c;
  c.field = f;
  using T = CohortCondition::Type;
  if (type == "performed" || type == "not_performed" || type == "first_performed") {
    c.type = type == "performed" ? T::kPerformed : type == "not_performed" ? T::kNotPerformed : T::kFirstPerformed;
    if (c.type == T::kPerformed) {
      NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "event", "filters", "count", "date_from", "date_to", "last_days"}));
    } else {
      NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "event", "filters", "date_from", "date_to", "last_days"}));
    }
    NS_ASSIGN_OR_RETURN(CohortCondition::Step s, ParseStep(j, f));
    c.steps.push_back(std::move(s));
    NS_RETURN_IF_ERROR(ParseRange(j, f, &c));
    if (c.type == T::kFirstPerformed && c.last_days == 0 && !c.from_day && !c.to_day)
      return InvalidArgument(f + ".last_days: first_performed needs last_days or date_from/date_to", f + ".last_days");
    if (auto cnt = j.find("count"); cnt != j.end() && !cnt->is_null()) {
      const std::string cf = f + ".count";
      if (!cnt->is_object()) return InvalidArgument(cf + ": expected {\"op\":\"gte\"|\"lte\"|\"eq\",\"value\":N}", cf);
      NS_RETURN_IF_ERROR(CheckFields(*cnt, cf, {"op", "value"}));
      NS_ASSIGN_OR_RETURN(std::string op, GetString(*cnt, "op", cf, false, "gte"));
      if (op == "gte") {
        c.count_op = CountOp::kGte;
      } else if (op == "lte") {
        c.count_op = CountOp::kLte;
      } else if (op == "eq") {
        c.count_op = CountOp::kEq;
      } else {
        return InvalidArgument(cf + ".op: expected gte, lte or eq, got '" + op + "'", cf + ".op");
      }
      NS_ASSIGN_OR_RETURN(c.count, GetInt(*cnt, "value", cf, -1, 0, 1'000'000'000));
      if (c.count < 0) return InvalidArgument(cf + ".value: required (a number of times)", cf + ".value");
    }
    return c;
  }
  if (type == "sequence") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "steps", "window_seconds", "date_from", "date_to", "last_days"}));
    c.type = T::kSequence;
    auto it = j.find("steps");
    const std::string sf = f + ".steps";
    if (it == j.end() || !it->is_array() || it->size() < 2 || it->size() > kMaxFunnelSteps)
      return InvalidArgument(sf + ": expected 2 to " + std::to_string(kMaxFunnelSteps) + " steps", sf);
    for (size_t i = 0; i < it->size(); i++) {
      const std::string stf = sf + "[" + std::to_string(i) + "]";
      if (!(*it)[i].is_object()) return InvalidArgument(stf + ": expected {\"event\":...}", stf);
      NS_RETURN_IF_ERROR(CheckFields((*it)[i], stf, {"event", "filters"}));
      NS_ASSIGN_OR_RETURN(CohortCondition::Step s, ParseStep((*it)[i], stf));
      c.steps.push_back(std::move(s));
    }
    NS_ASSIGN_OR_RETURN(int64_t w, GetInt(j, "window_seconds", f, 14 * 86400, 1, 3660LL * 86400));
    c.window_ms = w * 1000;
    NS_RETURN_IF_ERROR(ParseRange(j, f, &c));
    return c;
  }
  if (type == "property") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "property", "op", "value"}));
    c.type = T::kProperty;
    json fj = j;
    fj.erase("type");
    std::string prop = fj.value("property", "");
    if (prop.rfind("person.", 0) != 0 && !prop.empty()) fj["property"] = "person." + prop;
    auto fs = ParseFilters(json::array({fj}), f);
    if (!fs.ok()) {
      // ParseFilters names the list's element ("f[0].op"); here the condition is the filter
      // ("f.op"). Found by tests/unit/cohort_reference_test.cc.
      const std::string elem = f + "[0]";
      auto rename = [&](std::string s) { return s.rfind(elem, 0) == 0 ? f + s.substr(elem.size()) : s; };
      return InvalidArgument(rename(fs.status().message()), rename(fs.status().field()));
    }
    c.property = (*fs)[0];
    c.property.field = f;
    return c;
  }
  if (type == "cohort") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "id", "negate"}));
    c.type = T::kCohort;
    NS_ASSIGN_OR_RETURN(c.cohort_id, GetInt(j, "id", f, 0, 1, INT64_MAX));
    if (c.cohort_id == 0) return InvalidArgument(f + ".id: required (a cohort id)", f + ".id");
    NS_ASSIGN_OR_RETURN(c.negate, GetBool(j, "negate", f, false));
    return c;
  }
  if (type == "rfm_segment") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "segment"}));
    c.type = T::kRfmSegment;
    NS_ASSIGN_OR_RETURN(c.value, GetString(j, "segment", f, true));
    if (RfmSegmentIndex(c.value) < 0)
      return InvalidArgument(f + ".segment: unknown segment '" + c.value + "' (expected " + RfmSegmentList() + ")",
                             f + ".segment");
    return c;
  }
  if (type == "lifecycle") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "stage"}));
    c.type = T::kLifecycle;
    NS_ASSIGN_OR_RETURN(c.value, GetString(j, "stage", f, true));
    if (c.value != "new" && c.value != "active" && c.value != "silent" && c.value != "churned")
      return InvalidArgument(f + ".stage: expected new, active, silent or churned, got '" + c.value + "'",
                             f + ".stage");
    return c;
  }
  if (type == "tier") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "dimension", "level"}));
    c.type = T::kTier;
    NS_ASSIGN_OR_RETURN(c.key, GetString(j, "dimension", f, true));
    TierDimension dim;
    if (!ParseTierDimension(c.key, &dim))
      return InvalidArgument(f + ".dimension: expected value, activity, need or social, got '" + c.key + "'",
                             f + ".dimension");
    NS_ASSIGN_OR_RETURN(c.value, GetString(j, "level", f, true));
    const auto& levels = TierLevels(dim);
    if (std::find(levels.begin(), levels.end(), c.value) == levels.end())
      return InvalidArgument(f + ".level: expected " + std::string(levels[0]) + ", " + std::string(levels[1]) + " or " +
                                 std::string(levels[2]) + ", got '" + c.value + "'",
                             f + ".level");
    return c;
  }
  if (type == "tag") {
    NS_RETURN_IF_ERROR(CheckFields(j, f, {"type", "tag", "value", "values"}));
    c.type = T::kTag;
    NS_ASSIGN_OR_RETURN(c.key, GetString(j, "tag", f, true));
    if (c.key.empty()) return InvalidArgument(f + ".tag: must not be empty", f + ".tag");
    NS_ASSIGN_OR_RETURN(std::string v, GetString(j, "value", f, false));
    if (!v.empty()) c.values.push_back(v);
    if (auto it = j.find("values"); it != j.end() && !it->is_null()) {
      if (!it->is_array() || it->empty())
        return InvalidArgument(f + ".values: expected a non-empty array", f + ".values");
      for (const auto& x : *it) {
        if (!x.is_string()) return InvalidArgument(f + ".values: expected strings", f + ".values");
        c.values.push_back(x.get<std::string>());
      }
    }
    const bool base = FindBaseTag(c.key) != nullptr;
    if (base && c.values.empty())
      return InvalidArgument(f + ".value: base tag '" + c.key + "' needs a value (or values)", f + ".value");
    if (!base && !c.values.empty())
      return InvalidArgument(f + ".value: rule tag '" + c.key + "' takes no value", f + ".value");
    return c;
  }
  return InvalidArgument(f + ".type: unknown condition type '" + type +
                             "' (expected performed, not_performed, sequence, first_performed, property, cohort, "
                             "rfm_segment, lifecycle, tier or tag)",
                         f + ".type");
}

void Collect(const CohortCondition& c, std::vector<int64_t>* out) {
  if (c.type == CohortCondition::Type::kCohort) out->push_back(c.cohort_id);
  for (const auto& s : c.conditions) Collect(s, out);
}

}  // namespace

StatusOr<CohortCondition> ParseCohortDefinition(const json& j) {
  if (!j.is_object())
    return InvalidArgument("definition: expected {\"op\":\"and\",\"conditions\":[...]}", "definition");
  return ParseGroup(j, "definition", 0);
}

std::vector<int64_t> ReferencedCohorts(const CohortCondition& c) {
  std::vector<int64_t> out;
  Collect(c, &out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace ns
