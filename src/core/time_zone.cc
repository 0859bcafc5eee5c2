#include "core/time_zone.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <charconv>
#include <chrono>

namespace ns {

using std::chrono::milliseconds;
using std::chrono::seconds;

StatusOr<Interval> ParseInterval(std::string_view s) {
  if (s == "hour") return Interval::kHour;
  if (s == "day") return Interval::kDay;
  if (s == "week") return Interval::kWeek;
  if (s == "month") return Interval::kMonth;
  return InvalidArgument("unknown interval '" + std::string(s) + "' (expected hour, day, week or month)", "interval");
}

std::string_view IntervalName(Interval i) {
  switch (i) {
    case Interval::kHour: return "hour";
    case Interval::kDay: return "day";
    case Interval::kWeek: return "week";
    case Interval::kMonth: return "month";
  }
  return "day";
}

StatusOr<TimeZone> TimeZone::Load(std::string_view name) {
  TimeZone tz;
  try {
    tz.zone_ = date::locate_zone(std::string(name));
  } catch (const std::exception&) {
    return InvalidArgument(
        "unknown time zone '" + std::string(name) + "' (expected an IANA name such as Asia/Shanghai or UTC)",
        "timezone");
  }
  tz.name_ = std::string(name);
  return tz;
}

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int32_t TimeZone::LocalDay(int64_t ms) const {
  date::sys_time<milliseconds> t{milliseconds{ms}};
  auto info = zone_->get_info(date::floor<seconds>(t));
  return UtcDay(ms + info.offset.count() * 1000);  // floor of local time, counted like UTC days
}

int64_t TimeZone::LocalToUtcMs(int32_t day, int64_t ms_of_day) const {
  date::local_time<milliseconds> lt{milliseconds{int64_t{day} * kMsPerDay + ms_of_day}};
  auto info = zone_->get_info(date::floor<seconds>(lt));
  if (info.result == date::local_info::nonexistent) {
    // In a DST gap: the first valid instant after it.
    return date::sys_time<milliseconds>(info.first.end).time_since_epoch().count();
  }
  return (lt.time_since_epoch() - date::floor<milliseconds>(info.first.offset)).count();
}

int64_t TimeZone::DayStartMs(int32_t day) const { return LocalToUtcMs(day, 0); }

std::string TimeZone::FormatLocal(int64_t ms) const {
  date::sys_time<milliseconds> t{milliseconds{ms}};
  auto zt = date::make_zoned(zone_, date::floor<seconds>(t));
  return date::format("%Y-%m-%d %H:%M:%S", zt);
}

int32_t TimeZone::PeriodStartDay(int32_t day, Interval interval) {
  date::sys_days d{date::days{day}};
  switch (interval) {
    case Interval::kHour:
    case Interval::kDay: return day;
    case Interval::kWeek: {
      date::weekday wd{d};
      int back = static_cast<int>((wd.c_encoding() + 6) % 7);  // Monday = 0
      return day - back;
    }
    case Interval::kMonth: {
      date::year_month_day ymd{d};
      return static_cast<int32_t>(date::sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch().count());
    }
  }
  return day;
}

int32_t TimeZone::PeriodsBetween(int32_t base_day, int32_t day, Interval interval) {
  switch (interval) {
    case Interval::kHour:
    case Interval::kDay: return day - base_day;
    case Interval::kWeek: return (PeriodStartDay(day, interval) - PeriodStartDay(base_day, interval)) / 7;
    case Interval::kMonth: {
      date::year_month_day a{date::sys_days{date::days{base_day}}}, b{date::sys_days{date::days{day}}};
      return (static_cast<int>(b.year()) - static_cast<int>(a.year())) * 12 +
             (static_cast<int>(static_cast<unsigned>(b.month())) - static_cast<int>(static_cast<unsigned>(a.month())));
    }
  }
  return 0;
}

static int32_t AddMonth(int32_t month_start_day) {
  date::year_month_day ymd{date::sys_days{date::days{month_start_day}}};
  auto next = ymd.year() / ymd.month() / 1 + date::months{1};
  return static_cast<int32_t>(date::sys_days{next}.time_since_epoch().count());
}

std::vector<Bucket> TimeZone::MakeBuckets(int32_t from_day, int32_t to_day, Interval interval) const {
  std::vector<Bucket> out;
  if (to_day < from_day) return out;
  int64_t range_start = DayStartMs(from_day), range_end = DayStartMs(to_day + 1);
  if (interval == Interval::kHour) {
    for (int32_t d = from_day; d <= to_day; d++) {
      for (int h = 0; h < 24; h++) {
        int64_t s = LocalToUtcMs(d, int64_t{h} * 3'600'000);
        int64_t e = h == 23 ? DayStartMs(d + 1) : LocalToUtcMs(d, int64_t{h + 1} * 3'600'000);
        if (e <= s) continue;  // hour skipped by a DST gap
        char buf[8];
        std::snprintf(buf, sizeof buf, " %02d:00", h);
        out.push_back({s, e, FormatDate(d) + buf});
      }
    }
    return out;
  }
  int32_t p = PeriodStartDay(from_day, interval);
  while (p <= to_day) {
    int32_t next = interval == Interval::kDay ? p + 1 : interval == Interval::kWeek ? p + 7 : AddMonth(p);
    int64_t s = std::max(range_start, DayStartMs(p));
    int64_t e = std::min(range_end, DayStartMs(next));
    out.push_back({s, e, FormatDate(p)});
    p = next;
  }
  return out;
}

StatusOr<int32_t> ParseDate(std::string_view s, std::string_view field) {
  auto bad = [&] {
    return InvalidArgument(std::string(field) + ": expected a date YYYY-MM-DD, got '" + std::string(s) + "'",
                           std::string(field));
  };
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return bad();
  int y = 0, m = 0, d = 0;
  if (std::from_chars(s.data(), s.data() + 4, y).ptr != s.data() + 4) return bad();
  if (std::from_chars(s.data() + 5, s.data() + 7, m).ptr != s.data() + 7) return bad();
  if (std::from_chars(s.data() + 8, s.data() + 10, d).ptr != s.data() + 10) return bad();
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(m)}, date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return bad();
  return static_cast<int32_t>(date::sys_days{ymd}.time_since_epoch().count());
}

std::string FormatDate(int32_t day) {
  date::year_month_day ymd{date::sys_days{date::days{day}}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string FormatIsoUtc(int64_t ms) {
  // Beyond years ±290,000 the calendar arithmetic of date::format overflows int64 (found by
  // fuzzing: a rejected timestamp of 9.1e18 ms); such instants are shown as raw numbers.
  constexpr int64_t kLimit = 100'000'000'000'000'000LL;  // ~3 million years
  if (ms > kLimit || ms < -kLimit) return std::to_string(ms) + " ms since 1970-01-01";
  date::sys_time<milliseconds> t{milliseconds{ms}};
  return date::format("%FT%TZ", t);
}

StatusOr<int64_t> ParseIsoTimestamp(std::string_view s, const TimeZone& tz) {
  auto bad = [&](const char* why) {
    // Quote at most 64 bytes, without cutting a UTF-8 character in two (found by fuzzing:
    // error messages must stay valid UTF-8).
    size_t n = std::min<size_t>(s.size(), 64);
    while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n--;
    return InvalidArgument(std::string("invalid ISO-8601 timestamp '") + std::string(s.substr(0, n)) + "': " + why);
  };
  auto num = [&](size_t pos, size_t len, int& out) {  // digits only, at most 4: no overflow
    if (pos + len > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + len; i++) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!num(0, 4, y) || s.size() < 10 || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' || !num(8, 2, d))
    return bad("expected YYYY-MM-DD at the start");
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)}, date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return bad("no such calendar date");
  size_t p = 10;
  int64_t frac_ms = 0;
  if (p < s.size() && (s[p] == 'T' || s[p] == 't' || s[p] == ' ')) {
    p++;
    if (!num(p, 2, h) || p + 2 >= s.size() || s[p + 2] != ':' || !num(p + 3, 2, mi))
      return bad("expected HH:MM after the date");
    p += 5;
    if (p < s.size() && s[p] == ':') {
      if (!num(p + 1, 2, sec)) return bad("expected seconds after HH:MM:");
      p += 3;
      if (p < s.size() && (s[p] == '.' || s[p] == ',')) {
        p++;
        int digits = 0;
        int64_t scale = 100;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
          if (digits < 3) frac_ms += (s[p] - '0') * scale;
          scale /= 10;
          digits++;
          p++;
        }
        if (digits == 0) return bad("expected digits after the decimal point");
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return bad("time of day out of range");
  }
  int32_t day = static_cast<int32_t>(date::sys_days{ymd}.time_since_epoch().count());
  int64_t ms_of_day = (int64_t{h} * 3600 + mi * 60 + sec) * 1000 + frac_ms;
  if (p == s.size()) return tz.LocalToUtcMs(day, ms_of_day);
  int64_t offset_min = 0;
  if (s[p] == 'Z' || s[p] == 'z') {
    p++;
  } else if (s[p] == '+' || s[p] == '-') {
    int sign = s[p] == '-' ? -1 : 1;
    int oh = 0, om = 0;
    if (!num(p + 1, 2, oh)) return bad("expected an offset +HH:MM");
    p += 3;
    if (p < s.size() && s[p] == ':') p++;
    if (p < s.size()) {
      if (!num(p, 2, om)) return bad("expected an offset +HH:MM");
      p += 2;
    }
    if (oh > 18 || om > 59) return bad("offset out of range");
    offset_min = sign * (oh * 60 + om);
  } else {
    return bad("unexpected characters after the time");
  }
  if (p != s.size()) return bad("unexpected characters after the offset");
  return int64_t{day} * kMsPerDay + ms_of_day - offset_min * 60'000;
}

}  // namespace ns
