// Personal data shown to people who are not admins: values of the properties a project
// names (people settings: phone, email, id card, IP address by default) are masked in every
// answer, export and notification ("138****5678", "a***@example.com"). The raw value never
// goes to a log line (core/log_safe.h covers what is logged).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace ns {

// A masked rendering of one value (the rule depends on what the value looks like).
std::string MaskValue(std::string_view value);
// Whether property `key` is one of `masked` (case-insensitive; "$set.phone" style keys are
// not special).
bool IsMaskedProperty(std::string_view key, const std::vector<std::string>& masked);
// Masks the masked properties of a JSON object of properties in place.
void MaskProperties(nlohmann::json& props, const std::vector<std::string>& masked);

}  // namespace ns
