#include "query/relative_dates.h"

#include <date/date.h>

#include <cctype>
#include <charconv>

#include "core/time_zone.h"

namespace ns {

namespace {

constexpr const char* kForms =
    "expected YYYY-MM-DD or a relative date: today, yesterday, -Nd, -Nw, -Nm, -Ny, this_week, last_week, "
    "this_month, last_month, this_quarter, last_quarter, this_year, last_year or last_N_days";

date::year_month_day Ymd(int32_t day) { return date::year_month_day{date::sys_days{date::days{day}}}; }
int32_t Day(date::year_month_day ymd) { return static_cast<int32_t>(date::sys_days{ymd}.time_since_epoch().count()); }
int32_t Day(date::year_month ym) { return Day(ym / 1); }

// The same day of the month n months earlier, clamped to that month's last day.
int32_t MonthsBefore(int32_t today, int n) {
  date::year_month_day t = Ymd(today);
  date::year_month ym = date::year_month{t.year(), t.month()} - date::months{n};
  date::year_month_day last = ym / date::last;
  return Day(t.day() > last.day() ? last : ym / t.day());
}

// A whole number of 1 to 5 digits.
bool Count(std::string_view s, int* n) {
  if (s.empty() || s.size() > 5) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *n);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

bool IsRelativeDate(std::string_view s) { return s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])); }

StatusOr<DayRange> ResolveRelativeDate(std::string_view s, int32_t today, const std::string& field) {
  auto bad = [&] { return InvalidArgument(field + ": " + kForms + ", got '" + std::string(s) + "'", field); };
  auto one = [](int32_t d) { return DayRange{d, d}; };
  if (s == "today") return one(today);
  if (s == "yesterday") return one(today - 1);
  const date::year_month_day t = Ymd(today);
  const date::year_month month{t.year(), t.month()};
  const int32_t week = TimeZone::PeriodStartDay(today, Interval::kWeek);
  const unsigned q0 = (static_cast<unsigned>(t.month()) - 1) / 3 * 3 + 1;  // first month of the quarter
  const date::year_month quarter{t.year(), date::month{q0}};
  if (s == "this_week") return DayRange{week, today};
  if (s == "last_week") return DayRange{week - 7, week - 1};
  if (s == "this_month") return DayRange{Day(month), today};
  if (s == "last_month") return DayRange{Day(month - date::months{1}), Day(month) - 1};
  if (s == "this_quarter") return DayRange{Day(quarter), today};
  if (s == "last_quarter") return DayRange{Day(quarter - date::months{3}), Day(quarter) - 1};
  if (s == "this_year") return DayRange{Day(t.year() / 1 / 1), today};
  if (s == "last_year") return DayRange{Day((t.year() - date::years{1}) / 1 / 1), Day(t.year() / 1 / 1) - 1};
  int n = 0;
  if (s.size() > 10 && s.substr(0, 5) == "last_" && s.substr(s.size() - 5) == "_days") {
    if (!Count(s.substr(5, s.size() - 10), &n) || n < 1 || n > 3660) return bad();
    return DayRange{today - n + 1, today};
  }
  if (s.size() >= 3 && s[0] == '-') {
    if (!Count(s.substr(1, s.size() - 2), &n)) return bad();
    switch (s.back()) {
      case 'd':
        if (n <= 3660) return one(today - n);
        break;
      case 'w':
        if (n <= 523) return one(today - 7 * n);
        break;
      case 'm':
        if (n <= 120) return one(MonthsBefore(today, n));
        break;
      case 'y':
        if (n <= 10) return one(MonthsBefore(today, 12 * n));
        break;
    }
  }
  return bad();
}

Status ResolveRelativeDates(nlohmann::json& request, int32_t today) {
  if (!request.is_object()) return Status::OK();
  for (const char* key : {"date_from", "date_to"}) {
    auto it = request.find(key);
    if (it == request.end() || !it->is_string() || !IsRelativeDate(it->get_ref<const std::string&>())) continue;
    NS_ASSIGN_OR_RETURN(DayRange r, ResolveRelativeDate(it->get_ref<const std::string&>(), today, key));
    *it = FormatDate(std::string_view(key) == "date_from" ? r.from : r.to);
  }
  return Status::OK();
}

}  // namespace ns
