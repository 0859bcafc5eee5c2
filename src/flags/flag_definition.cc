#include "flags/flag_definition.h"

#include <cmath>
#include <regex>
#include <set>

#include "query/json_fields.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr size_t kMaxGroups = 100;
constexpr size_t kMaxConditions = 50;
constexpr size_t kMaxVariants = 50;

const std::set<std::string>& PersonOperators() {
  static const std::set<std::string> ops = {"exact", "is_not", "icontains", "not_icontains", "regex",  "not_regex",
                                            "gt",    "gte",    "lt",        "lte",           "is_set", "is_not_set"};
  return ops;
}

std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& x : s) out += (out.empty() ? "" : ", ") + x;
  return out;
}

StatusOr<double> GetPercentage(const json& j, const char* key, const std::string& prefix, double def) {
  const std::string field = prefix.empty() ? key : prefix + "." + key;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number())
    return InvalidArgument(field + ": expected a number from 0 to 100, got " + TypeName(*it), field);
  const double v = it->get<double>();
  if (!(v >= 0 && v <= 100)) return InvalidArgument(field + ": " + it->dump() + " is not between 0 and 100", field);
  return v;
}

StatusOr<FlagCondition> ParseCondition(const json& j, const std::string& prefix) {
  if (!j.is_object()) return InvalidArgument(prefix + ": expected an object, got " + TypeName(j), prefix);
  NS_RETURN_IF_ERROR(CheckFields(j, prefix, {"key", "type", "operator", "value"}));
  FlagCondition c;
  NS_ASSIGN_OR_RETURN(c.type, GetString(j, "type", prefix, false, "person"));
  if (c.type == "cohort") {
    NS_ASSIGN_OR_RETURN(c.key, GetString(j, "key", prefix, false, "id"));
    NS_ASSIGN_OR_RETURN(c.op, GetString(j, "operator", prefix, false, "in"));
    if (c.op != "in" && c.op != "not_in")
      return InvalidArgument(prefix + ".operator: a cohort condition's operator is in or not_in, got '" + c.op + "'",
                             prefix + ".operator");
    auto v = j.find("value");
    const std::string field = prefix + ".value";
    if (v == j.end()) return InvalidArgument(field + ": required field is missing (the cohort's id)", field);
    int64_t id = 0;
    if (v->is_number_integer()) {
      id = v->get<int64_t>();
    } else if (v->is_string() && !v->get<std::string>().empty() &&
               v->get<std::string>().find_first_not_of("0123456789") == std::string::npos &&
               v->get<std::string>().size() < 18) {
      id = std::stoll(v->get<std::string>());
    } else {
      return InvalidArgument(field + ": expected a cohort id, got " + v->dump(), field);
    }
    if (id <= 0) return InvalidArgument(field + ": expected a cohort id, got " + v->dump(), field);
    c.value = id;
    return c;
  }
  if (c.type != "person")
    return InvalidArgument(prefix + ".type: expected person or cohort, got '" + c.type + "'", prefix + ".type");
  NS_ASSIGN_OR_RETURN(c.key, GetString(j, "key", prefix, true));
  if (c.key.empty() || c.key.size() > 400)
    return InvalidArgument(prefix + ".key: a property name of 1 to 400 bytes", prefix + ".key");
  NS_ASSIGN_OR_RETURN(c.op, GetString(j, "operator", prefix, false, "exact"));
  if (!PersonOperators().count(c.op))
    return InvalidArgument(
        prefix + ".operator: unknown operator '" + c.op + "'; expected one of " + Join(PersonOperators()),
        prefix + ".operator");
  const std::string field = prefix + ".value";
  auto v = j.find("value");
  if (c.op == "is_set" || c.op == "is_not_set") {
    c.value = v == j.end() ? json(c.op) : *v;
    return c;
  }
  if (v == j.end() || v->is_null()) return InvalidArgument(field + ": required field is missing", field);
  if (v->is_object()) return InvalidArgument(field + ": expected a value or a list of values, got object", field);
  if (v->is_array()) {
    if (c.op != "exact" && c.op != "is_not")
      return InvalidArgument(field + ": only exact and is_not take a list of values", field);
    if (v->empty()) return InvalidArgument(field + ": the list of values is empty", field);
    for (const json& x : *v)
      if (x.is_object() || x.is_array() || x.is_null())
        return InvalidArgument(field + ": list items must be strings, numbers or booleans", field);
  }
  if (c.op == "gt" || c.op == "gte" || c.op == "lt" || c.op == "lte") {
    if (!v->is_number() && !v->is_string())
      return InvalidArgument(field + ": " + c.op + " compares with a number or a text", field);
  }
  if (c.op == "regex" || c.op == "not_regex") {
    if (!v->is_string()) return InvalidArgument(field + ": a regular expression is a string", field);
    if (v->get<std::string>().size() > 1000)
      return InvalidArgument(field + ": a regular expression of at most 1000 bytes", field);
    try {
      std::regex re(v->get<std::string>(), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return InvalidArgument(field + ": not a valid regular expression: " + e.what(), field);
    }
  }
  c.value = *v;
  return c;
}

}  // namespace

bool ValidFlagKey(const std::string& key) {
  if (key.empty() || key.size() > 400) return false;
  for (char ch : key)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') return false;
  return true;
}

StatusOr<FlagDefinition> ParseFlagDefinition(const json& in) {
  if (!in.is_object()) return InvalidArgument("expected a JSON object, got " + TypeName(in));
  json body = in;
  // PostHog's shape: {"filters": {"groups", "multivariate": {"variants"}, "payloads"}}.
  if (auto f = body.find("filters"); f != body.end()) {
    if (!f->is_object()) return InvalidArgument("filters: expected an object, got " + TypeName(*f), "filters");
    json filters = *f;
    body.erase("filters");
    NS_RETURN_IF_ERROR(
        CheckFields(filters, "filters", {"groups", "multivariate", "payloads", "aggregation_group_type_index"}));
    if (filters.contains("aggregation_group_type_index") && !filters["aggregation_group_type_index"].is_null())
      return InvalidArgument("filters.aggregation_group_type_index: flags on groups are not supported; persons only",
                             "filters.aggregation_group_type_index");
    if (filters.contains("groups")) body["groups"] = filters["groups"];
    if (filters.contains("payloads")) body["payloads"] = filters["payloads"];
    if (filters.contains("multivariate") && !filters["multivariate"].is_null()) {
      const json& mv = filters["multivariate"];
      if (!mv.is_object() || !mv.contains("variants"))
        return InvalidArgument("filters.multivariate: expected {\"variants\": [...]}", "filters.multivariate");
      body["variants"] = mv["variants"];
    }
  }
  NS_RETURN_IF_ERROR(CheckFields(body, "",
                                 {"key", "name", "description", "active", "rollout_percentage", "groups", "variants",
                                  "payloads", "id", "version", "created_by", "created_at", "updated_at"}));
  FlagDefinition f;
  NS_ASSIGN_OR_RETURN(f.key, GetString(body, "key", "", true));
  if (!ValidFlagKey(f.key))
    return InvalidArgument("key: '" + f.key + "' is not a flag key: 1 to 400 letters, digits, '-' or '_'", "key");
  NS_ASSIGN_OR_RETURN(f.name, GetString(body, "name", "", false, f.key));
  if (f.name.size() > 400) return InvalidArgument("name: at most 400 bytes", "name");
  NS_ASSIGN_OR_RETURN(f.description, GetString(body, "description", "", false));
  if (f.description.size() > 10000) return InvalidArgument("description: at most 10000 bytes", "description");
  NS_ASSIGN_OR_RETURN(f.active, GetBool(body, "active", "", true));
  NS_ASSIGN_OR_RETURN(f.rollout_percentage, GetPercentage(body, "rollout_percentage", "", 100));

  if (auto g = body.find("groups"); g != body.end() && !g->is_null()) {
    NS_RETURN_IF_ERROR(ExpectType(*g, json::value_t::array, "groups", "a list of condition groups"));
    if (g->size() > kMaxGroups) return InvalidArgument("groups: at most 100 groups", "groups");
    for (size_t i = 0; i < g->size(); i++) {
      const std::string prefix = "groups[" + std::to_string(i) + "]";
      const json& gj = (*g)[i];
      if (!gj.is_object()) return InvalidArgument(prefix + ": expected an object, got " + TypeName(gj), prefix);
      NS_RETURN_IF_ERROR(CheckFields(gj, prefix, {"properties", "rollout_percentage", "variant"}));
      FlagGroup group;
      if (gj.contains("rollout_percentage") && !gj["rollout_percentage"].is_null()) {
        NS_ASSIGN_OR_RETURN(double pct, GetPercentage(gj, "rollout_percentage", prefix, 100));
        group.rollout_percentage = pct;
      }
      NS_ASSIGN_OR_RETURN(group.variant, GetString(gj, "variant", prefix, false));
      if (auto p = gj.find("properties"); p != gj.end() && !p->is_null()) {
        NS_RETURN_IF_ERROR(ExpectType(*p, json::value_t::array, prefix + ".properties", "a list of conditions"));
        if (p->size() > kMaxConditions)
          return InvalidArgument(prefix + ".properties: at most 50 conditions", prefix + ".properties");
        for (size_t k = 0; k < p->size(); k++) {
          NS_ASSIGN_OR_RETURN(FlagCondition c,
                              ParseCondition((*p)[k], prefix + ".properties[" + std::to_string(k) + "]"));
          group.properties.push_back(std::move(c));
        }
      }
      f.groups.push_back(std::move(group));
    }
  }

  if (auto v = body.find("variants"); v != body.end() && !v->is_null()) {
    NS_RETURN_IF_ERROR(ExpectType(*v, json::value_t::array, "variants", "a list of variants"));
    if (v->size() > kMaxVariants) return InvalidArgument("variants: at most 50 variants", "variants");
    std::set<std::string> seen;
    int64_t sum = 0;
    for (size_t i = 0; i < v->size(); i++) {
      const std::string prefix = "variants[" + std::to_string(i) + "]";
      const json& vj = (*v)[i];
      if (!vj.is_object()) return InvalidArgument(prefix + ": expected an object, got " + TypeName(vj), prefix);
      NS_RETURN_IF_ERROR(CheckFields(vj, prefix, {"key", "name", "rollout_percentage"}));
      FlagVariant var;
      NS_ASSIGN_OR_RETURN(var.key, GetString(vj, "key", prefix, true));
      if (!ValidFlagKey(var.key))
        return InvalidArgument(prefix + ".key: '" + var.key + "' is not a variant key: letters, digits, '-' or '_'",
                               prefix + ".key");
      if (!seen.insert(var.key).second)
        return InvalidArgument(prefix + ".key: variant '" + var.key + "' appears twice", prefix + ".key");
      NS_ASSIGN_OR_RETURN(var.name, GetString(vj, "name", prefix, false));
      NS_ASSIGN_OR_RETURN(int64_t pct, GetInt(vj, "rollout_percentage", prefix, -1, 0, 100));
      if (pct < 0)
        return InvalidArgument(prefix + ".rollout_percentage: required field is missing (the variant's weight, 0-100)",
                               prefix + ".rollout_percentage");
      var.rollout_percentage = static_cast<int>(pct);
      sum += pct;
      f.variants.push_back(std::move(var));
    }
    if (!f.variants.empty() && sum != 100)
      return InvalidArgument("variants: the weights sum to " + std::to_string(sum) + ", not 100", "variants");
  }
  for (size_t i = 0; i < f.groups.size(); i++) {
    const std::string& ov = f.groups[i].variant;
    if (ov.empty()) continue;
    bool known = false;
    for (const FlagVariant& v : f.variants) known |= v.key == ov;
    if (!known) {
      const std::string field = "groups[" + std::to_string(i) + "].variant";
      return InvalidArgument(field + ": the flag has no variant '" + ov + "'", field);
    }
  }

  if (auto p = body.find("payloads"); p != body.end() && !p->is_null()) {
    NS_RETURN_IF_ERROR(ExpectType(*p, json::value_t::object, "payloads", "an object of variant key -> JSON"));
    for (auto it = p->begin(); it != p->end(); ++it) {
      const std::string field = "payloads." + it.key();
      bool known = f.variants.empty() && it.key() == "true";
      for (const FlagVariant& v : f.variants) known |= v.key == it.key();
      if (!known)
        return InvalidArgument(field + (f.variants.empty() ? ": a boolean flag has one payload, under \"true\""
                                                           : ": the flag has no variant '" + it.key() + "'"),
                               field);
      if (it->dump().size() > 100000) return InvalidArgument(field + ": at most 100000 bytes of JSON", field);
      if (!it->is_null()) f.payloads[it.key()] = *it;
    }
  }
  return f;
}

StatusOr<FlagDefinition> PatchFlagDefinition(const FlagDefinition& base, const json& patch) {
  if (!patch.is_object()) return InvalidArgument("expected a JSON object, got " + TypeName(patch));
  json merged = FlagDefinitionJson(base);
  for (auto it = patch.begin(); it != patch.end(); ++it) merged[it.key()] = it.value();
  if (patch.contains("filters")) {
    // PostHog's shape replaces the conditions, variants and payloads as a whole.
    merged.erase("groups");
    merged.erase("variants");
    merged.erase("payloads");
  }
  return ParseFlagDefinition(merged);
}

json FlagDefinitionJson(const FlagDefinition& f) {
  json groups = json::array();
  for (const FlagGroup& g : f.groups) {
    json props = json::array();
    for (const FlagCondition& c : g.properties)
      props.push_back({{"key", c.key}, {"type", c.type}, {"operator", c.op}, {"value", c.value}});
    groups.push_back({{"properties", props},
                      {"rollout_percentage", g.rollout_percentage ? json(*g.rollout_percentage) : json()},
                      {"variant", g.variant.empty() ? json() : json(g.variant)}});
  }
  json variants = json::array();
  for (const FlagVariant& v : f.variants)
    variants.push_back({{"key", v.key}, {"name", v.name}, {"rollout_percentage", v.rollout_percentage}});
  return json{{"key", f.key},
              {"name", f.name},
              {"description", f.description},
              {"active", f.active},
              {"rollout_percentage", f.rollout_percentage},
              {"groups", groups},
              {"variants", variants},
              {"payloads", f.payloads}};
}

}  // namespace ns
