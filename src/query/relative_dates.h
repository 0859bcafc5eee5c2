// Relative dates in a query's "date_from"/"date_to" (docs/queries.md, "Relative dates"):
// "today", "yesterday", "-30d", "-4w", "-3m", "-1y", and the named ranges "this_week",
// "last_week", "this_month", "last_month", "this_quarter", "last_quarter", "this_year",
// "last_year" and "last_N_days". They resolve to local days of the project's zone against its
// current day, so a saved query or a dashboard keeps meaning "the last 30 days".
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ns {

struct DayRange {
  int32_t from = 0, to = 0;  // inclusive local days
};

// Whether `s` is written as a relative date: anything not starting with a digit (a text
// starting with one is a YYYY-MM-DD date for ParseDate to check).
bool IsRelativeDate(std::string_view s);
// The days a relative expression stands for: a single day ("today", "-7d") is [d, d]; a
// named range its first and last day ("this_*" end today: the period so far).
// InvalidArgument naming `field` (with the accepted forms) for anything else.
StatusOr<DayRange> ResolveRelativeDate(std::string_view s, int32_t today, const std::string& field);
// Replaces the relative "date_from"/"date_to" of a request object by YYYY-MM-DD: date_from
// takes the first day of its expression, date_to the last. Absolute dates, absent fields and
// non-strings are left to the kind's parser.
Status ResolveRelativeDates(nlohmann::json& request, int32_t today);

}  // namespace ns
