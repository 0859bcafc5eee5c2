#include "query/json_fields.h"

#include <cmath>

#include "core/time_zone.h"

namespace ns {

using nlohmann::json;

std::string TypeName(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_string()) return "string";
  if (v.is_object()) return "object";
  if (v.is_array()) return "array";
  return "number";
}

Status ExpectType(const json& v, json::value_t t, const std::string& field, const char* what) {
  bool ok = t == json::value_t::number_integer ? v.is_number_integer() : v.type() == t;
  if (t == json::value_t::number_float) ok = v.is_number();
  if (!ok) return InvalidArgument(field + ": expected " + what + ", got " + TypeName(v), field);
  return Status::OK();
}

StatusOr<std::string> GetString(const json& j, const char* key, const std::string& prefix, bool required,
                                std::string def) {
  std::string field = prefix.empty() ? key : prefix + "." + key;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgument(field + ": required field is missing", field);
    return def;
  }
  NS_RETURN_IF_ERROR(ExpectType(*it, json::value_t::string, field, "a string"));
  return it->get<std::string>();
}

StatusOr<int64_t> GetInt(const json& j, const char* key, const std::string& prefix, int64_t def, int64_t lo,
                         int64_t hi) {
  std::string field = prefix.empty() ? key : prefix + "." + key;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  const bool whole_float = it->is_number_float() && std::fabs(it->get<double>()) < 9e18 &&
                           it->get<double>() == std::floor(it->get<double>());
  if (!it->is_number_integer() && !whole_float)
    return InvalidArgument(field + ": expected an integer, got " + TypeName(*it), field);
  // Range before conversion: 2^64-1 must not become -1.
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi))
    return InvalidArgument(
        field + ": " + it->dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", field);
  int64_t v = whole_float ? static_cast<int64_t>(it->get<double>()) : it->get<int64_t>();
  if (v < lo || v > hi)
    return InvalidArgument(
        field + ": " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
        field);
  return v;
}

StatusOr<bool> GetBool(const json& j, const char* key, const std::string& prefix, bool def) {
  std::string field = prefix.empty() ? key : prefix + "." + key;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  NS_RETURN_IF_ERROR(ExpectType(*it, json::value_t::boolean, field, "true or false"));
  return it->get<bool>();
}

Status CheckFields(const json& j, const std::string& prefix, std::initializer_list<const char*> known) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    bool ok = false;
    for (const char* n : known) ok |= k == n;
    if (ok) continue;
    std::string list, hint;
    for (const char* n : known) {
      list += (list.empty() ? "" : ", ") + std::string(n);
      std::string_view nv(n);
      if (hint.empty() && !k.empty() && (nv.rfind(k, 0) == 0 || k.rfind(nv, 0) == 0)) hint = n;
    }
    std::string field = prefix.empty() ? k : prefix + "." + k;
    return InvalidArgument(
        field + ": unknown field" + (hint.empty() ? "" : " (did you mean " + hint + "?)") + "; known fields: " + list,
        field);
  }
  return Status::OK();
}

Status ParseDateRange(const json& j, int32_t* from, int32_t* to) {
  NS_ASSIGN_OR_RETURN(std::string f, GetString(j, "date_from", "", true));
  NS_ASSIGN_OR_RETURN(std::string t, GetString(j, "date_to", "", true));
  NS_ASSIGN_OR_RETURN(*from, ParseDate(f, "date_from"));
  NS_ASSIGN_OR_RETURN(*to, ParseDate(t, "date_to"));
  if (*to < *from) return InvalidArgument("date_to (" + t + ") is before date_from (" + f + ")", "date_to");
  if (*to - *from > 3660) return InvalidArgument("date range is longer than 10 years", "date_to");
  return Status::OK();
}

}  // namespace ns
