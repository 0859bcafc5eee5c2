// Reading the fields of a request object: every query kind's parser (and the people layer's
// cohort definitions) validates with these, so errors read the same everywhere and always
// name the field ("steps[2].window_seconds: expected an integer, got string").
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/status.h"

namespace ns {

// "null", "boolean", "string", "object", "array" or "number".
std::string TypeName(const nlohmann::json& v);
Status ExpectType(const nlohmann::json& v, nlohmann::json::value_t t, const std::string& field, const char* what);
// Field `key` of object j (`prefix` names j in errors: "steps[1]").
StatusOr<std::string> GetString(const nlohmann::json& j, const char* key, const std::string& prefix, bool required,
                                std::string def = {});
StatusOr<int64_t> GetInt(const nlohmann::json& j, const char* key, const std::string& prefix, int64_t def, int64_t lo,
                         int64_t hi);
StatusOr<bool> GetBool(const nlohmann::json& j, const char* key, const std::string& prefix, bool def);
// Unknown fields are refused with the field named (a typo such as "window" for
// "window_seconds" would otherwise silently fall back to the default): docs/queries.md.
Status CheckFields(const nlohmann::json& j, const std::string& prefix, std::initializer_list<const char*> known);
// Required "date_from"/"date_to" (YYYY-MM-DD, local days), to >= from, at most 10 years.
Status ParseDateRange(const nlohmann::json& j, int32_t* from, int32_t* to);

}  // namespace ns
