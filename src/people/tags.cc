#include "people/tags.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_map>

#include "query/person_models.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

// Calls fn(block, row, person) for every row before the as-of end (or one person's).
template <typename Fn>
void ForEachRow(const BaseTagContext& c, Fn&& fn) {
  const PersonTable& pt = *c.snap.persons;
  const int64_t end = c.facts.end_ms;
  if (c.only_person) {
    const uint32_t person = *c.only_person;
    if (c.person_rows) {
      for (const auto& [b, i] : *c.person_rows) fn(*b, i, person);
      return;
    }
    for (const auto& [b, i] : PersonRows(c.snap, person, end)) fn(*b, i, person);
    return;
  }
  for (const auto& bp : c.snap.blocks) {
    const Block& b = *bp;
    if (b.size() == 0 || b.min_ts() >= end) continue;
    const auto& ts = b.ts();
    const auto& did = b.did();
    for (uint32_t i = 0; i < b.size(); i++)
      if (ts[i] < end) fn(b, i, pt.PersonOf(did[i]));
  }
}

}  // namespace

std::vector<std::pair<const Block*, uint32_t>> PersonRows(const StoreSnapshot& snap, uint32_t person, int64_t end_ms) {
  const PersonTable& pt = *snap.persons;
  std::vector<std::pair<const Block*, uint32_t>> rows;
  PersonOrderScan scan(snap, INT64_MIN, end_ms);
  for (const auto& part : scan.parts()) {
    const size_t lo = scan.LowerBound(part, person, pt), hi = scan.LowerBound(part, person + 1, pt);
    PersonOrderScan::ForEachRowIn(scan.blocks(), part, lo, hi, [&](uint32_t b, uint32_t i) {
      const Block* blk = scan.blocks()[b];
      if (blk->ts()[i] < end_ms) rows.emplace_back(blk, i);
    });
  }
  return rows;
}

namespace {

bool Wanted(const BaseTagContext& c, uint32_t p) { return !c.only_person || *c.only_person == p; }

// The value of the first property of `keys` present on the person (person properties),
// else on their latest (first = false) or earliest (first = true) event that has one.
BaseTag PropTag(const char* key, const char* zh, const char* en, std::vector<std::string> keys, bool first,
                const char* rule) {
  return {key, zh, en, rule, [keys, first](const BaseTagContext& c, const TagSink& out) {
            const PersonTable& pt = *c.snap.persons;
            std::unordered_map<uint32_t, std::pair<int64_t, std::string>> best;
            for (const auto& k : keys) {
              const PersonColumn* col = pt.Column(k);
              if (!col) continue;
              col->ForEach([&](uint32_t p, const PropValue& v) {
                if (Wanted(c, p) && c.facts.Has(p) && !best.count(p)) best[p] = {0, v.AsString()};
              });
            }
            std::unordered_map<uint32_t, std::pair<int64_t, std::string>> ev;
            ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
              if (best.count(p)) return;
              for (const auto& k : keys) {
                const PropColumn* col = b.prop(k);
                if (!col || !col->Present(i)) continue;
                const int64_t ts = b.ts()[i];
                std::string v = col->Get(i).AsString();
                auto [it, fresh] = ev.try_emplace(p, ts, v);
                // Events of one instant: the smallest value, so the whole-store pass and the
                // person page (rows in another order) agree.
                if (!fresh && ((first ? ts < it->second.first : ts > it->second.first) ||
                               (ts == it->second.first && v < it->second.second)))
                  it->second = {ts, std::move(v)};
                break;
              }
            });
            for (auto& [p, v] : best) out(p, v.second);
            for (auto& [p, v] : ev) out(p, v.second);
          }};
}

std::string Band(double x, const std::vector<std::pair<double, const char*>>& upper, const char* last) {
  for (const auto& [u, name] : upper)
    if (x < u) return name;
  return last;
}

// A band of the number of events named `event` per person (0 included for persons seen).
// With `setting`, the event is that people setting (pay_event, share_event), not `event`.
BaseTag CountTag(const char* key, const char* zh, const char* en, std::string event, int last_days,
                 std::vector<std::pair<double, const char*>> upper, const char* top, const char* rule,
                 std::string PeopleSettings::*setting = nullptr) {
  return {key, zh, en, rule, [=](const BaseTagContext& c, const TagSink& out) {
            const EventMatcher m = EventMatcher::Make(setting ? c.settings.*setting : event, *c.snap.events);
            const int64_t from = last_days > 0 ? c.tz.DayStartMs(c.facts.as_of_day - last_days + 1) : INT64_MIN;
            std::unordered_map<uint32_t, double> n;
            if (!m.none)
              ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                if (b.ts()[i] >= from && (m.any || b.ev()[i] == m.code)) n[p]++;
              });
            for (uint32_t p = 0; p < c.facts.size(); p++)
              if (c.facts.Has(p) && Wanted(c, p)) out(p, Band(n.count(p) ? n[p] : 0, upper, top));
          }};
}

// A value computed from the facts alone (no row pass).
BaseTag FactTag(const char* key, const char* zh, const char* en, const char* rule,
                std::function<std::string(const BaseTagContext&, uint32_t)> f) {
  return {key, zh, en, rule, [f](const BaseTagContext& c, const TagSink& out) {
            for (uint32_t p = 0; p < c.facts.size(); p++) {
              if (!c.facts.Has(p) || !Wanted(c, p)) continue;
              std::string v = f(c, p);
              if (!v.empty()) out(p, v);
            }
          }};
}

std::string Month(const TimeZone& tz, int64_t ts) { return FormatDate(tz.LocalDay(ts)).substr(0, 7); }

// The most frequent value of the category (or product) property among the person's orders:
// the payments of one order id count once, with the value of the earliest of them that
// carries the property (at one instant, the smallest value); a payment without an order id
// is an order by itself. Equal counts: the smallest value.
BaseTag TopPayTag(const char* key, const char* zh, const char* en, bool category, const char* rule) {
  return {key, zh, en, rule, [category](const BaseTagContext& c, const TagSink& out) {
            const std::string& prop = category ? c.settings.category_property : c.settings.product_property;
            const std::string& order_prop = c.settings.order_property;
            const EventMatcher pay = EventMatcher::Make(c.settings.pay_event, *c.snap.events);
            struct Order {
              int64_t ts;
              std::string value;
            };
            std::unordered_map<uint32_t, std::map<std::string, Order>> orders;  // person -> order id -> first
            std::unordered_map<uint32_t, std::map<std::string, int>> n;         // person -> value -> orders
            if (!pay.none && !pay.any)
              ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                if (b.ev()[i] != pay.code) return;
                const PropColumn* col = b.prop(prop);
                if (!col || !col->Present(i)) return;
                std::string v = col->Get(i).AsString();
                const PropColumn* oc = order_prop.empty() ? nullptr : b.prop(order_prop);
                if (!oc || !oc->Present(i)) {
                  n[p][v]++;
                  return;
                }
                const int64_t ts = b.ts()[i];
                auto [it, fresh] = orders[p].try_emplace(oc->Get(i).AsString(), Order{ts, v});
                if (!fresh && std::tie(ts, v) < std::tie(it->second.ts, it->second.value))
                  it->second = Order{ts, std::move(v)};
              });
            for (auto& [p, os] : orders)
              for (auto& [id, o] : os) n[p][o.value]++;
            for (auto& [p, m] : n) {
              auto best = m.begin();  // ties: the smallest value, so the answer is stable
              for (auto it = m.begin(); it != m.end(); ++it)
                if (it->second > best->second) best = it;
              out(p, best->first);
            }
          }};
}

std::vector<BaseTag> MakeBaseTags() {
  const std::vector<std::pair<double, const char*>> kOrders = {{1, "0"}, {2, "1"}, {4, "2-3"}, {10, "4-9"}};
  std::vector<BaseTag> t;
  // Device and place: person properties first, else the latest event carrying one.
  t.push_back(PropTag("platform", "平台", "Platform", {"platform", "$platform", "$os"}, false,
                      "person property platform, else the latest event's platform / $platform / $os"));
  t.push_back(PropTag("os", "操作系统", "Operating system", {"$os", "os"}, false, "latest $os"));
  t.push_back(
      PropTag("os_version", "系统版本", "OS version", {"$os_version", "os_version"}, false, "latest $os_version"));
  t.push_back(PropTag("device_model", "设备型号", "Device model", {"$device_model", "$model", "device_model"}, false,
                      "latest $device_model / $model"));
  t.push_back(PropTag("device_brand", "设备品牌", "Device brand", {"$manufacturer", "$brand", "brand"}, false,
                      "latest $manufacturer / $brand"));
  t.push_back(PropTag("device_type", "设备类型", "Device type", {"$device_type", "device_type"}, false,
                      "latest $device_type (Mobile, Desktop, Tablet)"));
  t.push_back(PropTag("browser", "浏览器", "Browser", {"$browser", "browser"}, false, "latest $browser"));
  t.push_back(
      PropTag("app_version", "应用版本", "App version", {"$app_version", "app_version"}, false, "latest $app_version"));
  t.push_back(PropTag("network", "网络类型", "Network", {"$network_type", "network_type", "$wifi"}, false,
                      "latest $network_type"));
  t.push_back(PropTag("carrier", "运营商", "Carrier", {"$carrier", "carrier"}, false, "latest $carrier"));
  t.push_back(PropTag("language", "语言", "Language", {"language", "$locale", "$language"}, false,
                      "person property language, else the latest $locale"));
  t.push_back(PropTag("country", "国家", "Country", {"country", "$country", "$geoip_country_name"}, false,
                      "person property country, else the latest $country"));
  t.push_back(PropTag("province", "省份", "Province", {"province", "$province", "$geoip_subdivision_1_name"}, false,
                      "person property province, else the latest $province"));
  t.push_back(PropTag("city", "城市", "City", {"city", "$city", "$geoip_city_name"}, false,
                      "person property city, else the latest $city"));
  t.push_back(PropTag("city_tier", "城市等级", "City tier", {"city_tier"}, false, "person property city_tier"));
  t.push_back(PropTag("gender", "性别", "Gender", {"gender"}, false, "person property gender"));
  t.push_back(PropTag("member_level", "会员等级", "Member level", {"member_level", "vip_level", "level"}, false,
                      "person property member_level / vip_level / level"));
  // Acquisition: the earliest event that carries one.
  t.push_back(PropTag("acquisition_channel", "获客渠道", "Acquisition channel",
                      {"utm_source", "$utm_source", "channel", "$latest_referrer"}, true,
                      "the earliest event's utm_source / $utm_source / channel"));
  t.push_back(PropTag("acquisition_campaign", "获客活动", "Acquisition campaign", {"utm_campaign", "$utm_campaign"},
                      true, "the earliest event's utm_campaign"));
  t.push_back(PropTag("acquisition_medium", "获客媒介", "Acquisition medium", {"utm_medium", "$utm_medium"}, true,
                      "the earliest event's utm_medium"));
  t.push_back(PropTag("referring_domain", "来源域名", "Referring domain",
                      {"$referring_domain", "$initial_referring_domain"}, true,
                      "the earliest event's $referring_domain"));
  t.push_back({"first_event", "首个事件", "First event", "the name of the person's earliest event",
               [](const BaseTagContext& c, const TagSink& out) {
                 std::unordered_map<uint32_t, std::pair<int64_t, uint32_t>> first;
                 const auto names = c.snap.events->Names();
                 auto name = [&](uint32_t code) { return code < names.size() ? names[code] : std::string(); };
                 ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                   auto [it, fresh] = first.try_emplace(p, b.ts()[i], b.ev()[i]);
                   // Events of one instant: the smallest name (the row order differs between
                   // the whole store and the person page).
                   if (!fresh && (b.ts()[i] < it->second.first ||
                                  (b.ts()[i] == it->second.first && name(b.ev()[i]) < name(it->second.second))))
                     it->second = {b.ts()[i], b.ev()[i]};
                 });
                 for (auto& [p, v] : first)
                   if (v.second < names.size()) out(p, names[v.second]);
               }});
  t.push_back({"invited", "受邀用户", "Invited", "yes if any of the person's events carries the inviter property",
               [](const BaseTagContext& c, const TagSink& out) {
                 std::unordered_map<uint32_t, bool> inv;
                 ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                   const PropColumn* col = b.prop(c.settings.inviter_property);
                   inv[p] = inv[p] || (col && col->Present(i));
                 });
                 for (auto& [p, v] : inv) out(p, v ? "yes" : "no");
               }});
  t.push_back({"age_band", "年龄段", "Age band", "person property age: <18, 18-24, 25-34, 35-44, 45-54, 55+",
               [](const BaseTagContext& c, const TagSink& out) {
                 const PersonColumn* col = c.snap.persons->Column("age");
                 if (!col) return;
                 col->ForEach([&](uint32_t p, const PropValue& v) {
                   double a = v.kind == PropValue::kNum ? v.num : std::atof(v.str.c_str());
                   // Persons seen by the as-of day only, like every other tag.
                   if (Wanted(c, p) && c.facts.Has(p) && a > 0)
                     out(p, Band(a, {{18, "<18"}, {25, "18-24"}, {35, "25-34"}, {45, "35-44"}, {55, "45-54"}}, "55+"));
                 });
               }});
  // Time.
  t.push_back(FactTag("first_seen_month", "首次访问月份", "First seen month", "local month of the first event",
                      [](const BaseTagContext& c, uint32_t p) { return Month(c.tz, c.facts.first_ts[p]); }));
  t.push_back(FactTag("last_seen_month", "最近访问月份", "Last seen month", "local month of the latest event",
                      [](const BaseTagContext& c, uint32_t p) { return Month(c.tz, c.facts.last_ts[p]); }));
  t.push_back({"first_order_month", "首单月份", "First order month", "local month of the first payment",
               [](const BaseTagContext& c, const TagSink& out) {
                 const EventMatcher pay = EventMatcher::Make(c.settings.pay_event, *c.snap.events);
                 std::unordered_map<uint32_t, int64_t> first;
                 if (!pay.none && !pay.any)
                   ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                     if (b.ev()[i] != pay.code) return;
                     auto [it, fresh] = first.try_emplace(p, b.ts()[i]);
                     if (!fresh) it->second = std::min(it->second, b.ts()[i]);
                   });
                 for (auto& [p, ts] : first) out(p, Month(c.tz, ts));
               }});
  t.push_back(FactTag("last_order_month", "最近下单月份", "Last order month", "local month of the latest payment",
                      [](const BaseTagContext& c, uint32_t p) {
                        return c.facts.Paid(p) ? Month(c.tz, c.facts.last_pay_ts[p]) : std::string();
                      }));
  t.push_back(FactTag("tenure_band", "用户年龄", "Tenure", "days since first seen: <7, 7-29, 30-89, 90-364, 365+",
                      [](const BaseTagContext& c, uint32_t p) {
                        double d = c.facts.as_of_day - c.tz.LocalDay(c.facts.first_ts[p]);
                        return Band(d, {{7, "<7"}, {30, "7-29"}, {90, "30-89"}, {365, "90-364"}}, "365+");
                      }));
  t.push_back(FactTag("recency_band", "距上次购买", "Days since last order",
                      "local days from the latest payment's day to the as-of day: 0-7, 8-30, 31-90, 91-179, "
                      "180+ (180 or more; none: never paid)",
                      [](const BaseTagContext& c, uint32_t p) {
                        if (!c.facts.Paid(p)) return std::string("none");
                        double d = c.facts.as_of_day - c.tz.LocalDay(c.facts.last_pay_ts[p]);
                        return Band(d, {{8, "0-7"}, {31, "8-30"}, {91, "31-90"}, {180, "91-179"}}, "180+");
                      }));
  // Models.
  t.push_back(FactTag(
      "lifecycle", "生命周期", "Lifecycle", "lifecycle stage (new, active, silent, churned)",
      [](const BaseTagContext& c, uint32_t p) { return std::string(LifecycleStage(c.facts, c.settings, c.tz, p)); }));
  t.push_back({"rfm_segment", "RFM分层", "RFM segment", "RFM segment (quintile scoring) of payers",
               [](const BaseTagContext& c, const TagSink& out) {
                 RfmModel m = RfmModel::Build(c.facts, c.tz, RfmScoring{});
                 for (const RfmPerson& r : m.persons())
                   if (Wanted(c, r.person)) out(r.person, RfmSegment(r.segment).key);
               }});
  for (int d = 0; d < kTierDimensions; d++) {
    static const char* kKeys[] = {"value_tier", "activity_tier", "need_tier", "social_tier"};
    static const char* kZh[] = {"价值分层", "活跃分层", "需求分层", "社交分层"};
    static const char* kEn[] = {"Value tier", "Activity tier", "Need tier", "Social tier"};
    t.push_back(FactTag(kKeys[d], kZh[d], kEn[d], "the tier of docs/people.md \"Tiers\"",
                        [d](const BaseTagContext& c, uint32_t p) {
                          const int l = c.tiers.Level(static_cast<TierDimension>(d), p);
                          return l < 0 ? std::string() : std::string(TierLevels(static_cast<TierDimension>(d))[l]);
                        }));
  }
  // Spending.
  t.push_back(
      FactTag("order_count_band", "订单数", "Orders", "orders: 0, 1, 2-3, 4-9, 10+",
              [kOrders](const BaseTagContext& c, uint32_t p) { return Band(c.facts.orders[p], kOrders, "10+"); }));
  t.push_back(FactTag(
      "spend_band", "累计消费", "Total spend", "amount paid: 0, <100, 100-499, 500-1999, 2000-9999, 10000+",
      [](const BaseTagContext& c, uint32_t p) {
        return Band(c.facts.monetary[p],
                    {{1e-9, "0"}, {100, "<100"}, {500, "100-499"}, {2000, "500-1999"}, {10000, "2000-9999"}}, "10000+");
      }));
  t.push_back(FactTag("price_band", "客单价", "Average order value",
                      "amount per order: <50, 50-99, 100-199, 200-499, 500+ (payers)",
                      [](const BaseTagContext& c, uint32_t p) {
                        if (!c.facts.Paid(p)) return std::string();
                        return Band(c.facts.monetary[p] / c.facts.orders[p],
                                    {{50, "<50"}, {100, "50-99"}, {200, "100-199"}, {500, "200-499"}}, "500+");
                      }));
  t.push_back(TopPayTag("favourite_category", "偏好品类", "Favourite category", true,
                        "the category most frequent among the person's orders (one order id counts once, with the "
                        "category of its earliest payment carrying one; equal counts: the smallest value)"));
  t.push_back(TopPayTag("favourite_product", "偏好商品", "Favourite product", false,
                        "the product most frequent among the person's orders (one order id counts once, with the "
                        "product of its earliest payment carrying one; equal counts: the smallest value)"));
  t.push_back({"category_breadth", "品类广度", "Category breadth", "distinct categories paid for: 1, 2-3, 4+",
               [](const BaseTagContext& c, const TagSink& out) {
                 const EventMatcher pay = EventMatcher::Make(c.settings.pay_event, *c.snap.events);
                 std::unordered_map<uint32_t, std::map<std::string, int>> n;
                 if (!pay.none && !pay.any)
                   ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                     const PropColumn* col = b.prop(c.settings.category_property);
                     if (b.ev()[i] == pay.code && col && col->Present(i)) n[p][col->Get(i).AsString()]++;
                   });
                 for (auto& [p, m] : n) out(p, Band(static_cast<double>(m.size()), {{2, "1"}, {4, "2-3"}}, "4+"));
               }});
  t.push_back({"coupon_use_rate", "用券率", "Coupon use rate",
               "coupon_use events (coupon_use_event) per order: none, low (<30%), medium (30-70%), high (>70%) "
               "(payers)",
               [](const BaseTagContext& c, const TagSink& out) {
                 const EventMatcher m = EventMatcher::Make(c.settings.coupon_use_event, *c.snap.events);
                 std::unordered_map<uint32_t, double> n;
                 if (!m.none && !m.any)
                   ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                     if (b.ev()[i] == m.code) n[p]++;
                   });
                 for (uint32_t p = 0; p < c.facts.size(); p++) {
                   if (!c.facts.Paid(p) || !Wanted(c, p)) continue;
                   const double r = (n.count(p) ? n[p] : 0) / c.facts.orders[p];
                   out(p, r == 0 ? "none" : r < 0.3 ? "low" : r <= 0.7 ? "medium" : "high");
                 }
               }});
  // Habits.
  t.push_back({"preferred_time", "活跃时段", "Preferred time of day",
               "the local time band with most events: night (0-5), morning (6-11), afternoon (12-17), evening (18-23)",
               [](const BaseTagContext& c, const TagSink& out) {
                 std::unordered_map<uint32_t, std::array<int, 4>> n;
                 // Local wall-clock hours: per local day, the instants of 06:00, 12:00 and 18:00
                 // (the time since midnight is an hour off on a DST change day).
                 std::unordered_map<int32_t, std::array<int64_t, 3>> bounds;
                 ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                   const int64_t ts = b.ts()[i];
                   const int32_t day = c.tz.LocalDay(ts);
                   auto [it, fresh] = bounds.try_emplace(day);
                   if (fresh)
                     for (int k = 0; k < 3; k++)
                       it->second[static_cast<size_t>(k)] = c.tz.LocalToUtcMs(day, (k + 1) * 21'600'000);
                   size_t band = 0;
                   while (band < 3 && ts >= it->second[band]) band++;
                   n[p][band]++;
                 });
                 static const char* kBands[] = {"night", "morning", "afternoon", "evening"};
                 for (auto& [p, a] : n) out(p, kBands[std::max_element(a.begin(), a.end()) - a.begin()]);
               }});
  t.push_back({"weekend_share", "周末偏好", "Weekend activity",
               "share of events on Saturday/Sunday (local): weekday (<20%), mixed, weekend (>50%)",
               [](const BaseTagContext& c, const TagSink& out) {
                 std::unordered_map<uint32_t, std::pair<int, int>> n;
                 ForEachRow(c, [&](const Block& b, uint32_t i, uint32_t p) {
                   const int32_t day = c.tz.LocalDay(b.ts()[i]);
                   const int dow = ((day % 7) + 7 + 3) % 7;  // 1970-01-01 was a Thursday; 0 = Monday
                   auto& x = n[p];
                   x.first += dow >= 5;
                   x.second++;
                 });
                 for (auto& [p, x] : n) {
                   const double r = static_cast<double>(x.first) / x.second;
                   out(p, r < 0.2 ? "weekday" : r > 0.5 ? "weekend" : "mixed");
                 }
               }});
  // Counts of common e-commerce and engagement events.
  t.push_back(CountTag("events_30d_band", "近30天事件数", "Events in 30 days", "$any", 30,
                       {{1, "0"}, {10, "1-9"}, {50, "10-49"}, {200, "50-199"}}, "200+",
                       "events in the last 30 days: 0, 1-9, 10-49, 50-199, 200+"));
  t.push_back(CountTag("events_total_band", "累计事件数", "Events in all", "$any", 0,
                       {{10, "1-9"}, {50, "10-49"}, {200, "50-199"}}, "200+", "events: 1-9, 10-49, 50-199, 200+"));
  t.push_back(CountTag("cart_count_band", "加购次数", "Add-to-carts", "add_to_cart", 0, {{1, "0"}, {5, "1-4"}}, "5+",
                       "add_to_cart events (cart_event): 0, 1-4, 5+", &PeopleSettings::cart_event));
  t.push_back(CountTag("share_count_band", "分享次数", "Shares", "share", 0, {{1, "0"}, {3, "1-2"}}, "3+",
                       "share events (share_event): 0, 1-2, 3+", &PeopleSettings::share_event));
  t.push_back(CountTag("check_in_band", "签到次数", "Check-ins (30 days)", "check_in", 30, {{1, "0"}, {5, "1-4"}}, "5+",
                       "check_in events (check_in_event) in the last 30 days: 0, 1-4, 5+",
                       &PeopleSettings::check_in_event));
  t.push_back(CountTag("review_count_band", "评价次数", "Reviews", "review", 0, {{1, "0"}, {3, "1-2"}}, "3+",
                       "review events (review_event): 0, 1-2, 3+", &PeopleSettings::review_event));
  t.push_back(CountTag("refund_count_band", "退款次数", "Refunds", "refund", 0, {{1, "0"}, {2, "1"}}, "2+",
                       "refund events (refund_event): 0, 1, 2+", &PeopleSettings::refund_event));
  t.push_back(CountTag("coupon_receive_band", "领券次数", "Coupons received", "coupon_receive", 0,
                       {{1, "0"}, {3, "1-2"}}, "3+", "coupon_receive events (coupon_receive_event): 0, 1-2, 3+",
                       &PeopleSettings::coupon_receive_event));
  t.push_back(CountTag("search_count_band", "搜索次数", "Searches (30 days)", "search", 30, {{1, "0"}, {5, "1-4"}},
                       "5+", "search events (search_event) in the last 30 days: 0, 1-4, 5+",
                       &PeopleSettings::search_event));
  t.push_back(CountTag("pay_30d_band", "近30天订单", "Payments in 30 days", "pay", 30, {{1, "0"}, {2, "1"}, {4, "2-3"}},
                       "4+", "pay events (pay_event) in the last 30 days: 0, 1, 2-3, 4+", &PeopleSettings::pay_event));
  return t;
}

std::vector<RuleTag> MakeRuleTags() {
  return {
      {"carted_not_paid_24h", "加购未支付(24小时)", "Carted, not paid (24h)",
       R"({"op":"and","conditions":[{"type":"performed","event":"add_to_cart","last_days":2},{"type":"not_performed","event":"pay","last_days":2}]})"},
      {"cart_abandoner_7d", "加购未支付(7天)", "Cart abandoner (7 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"add_to_cart","last_days":7},{"type":"not_performed","event":"pay","last_days":7}]})"},
      {"browsed_not_carted_7d", "浏览未加购(7天)", "Browsed, not carted (7 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"product_click","last_days":7},{"type":"not_performed","event":"add_to_cart","last_days":7}]})"},
      {"registered_no_order_24h", "注册未下单(24小时)", "Registered, no order (24h)",
       R"({"op":"and","conditions":[{"type":"first_performed","event":"register","last_days":2},{"type":"not_performed","event":"pay","last_days":2}]})"},
      {"new_7d", "新用户(7天)", "New (7 days)",
       R"({"op":"and","conditions":[{"type":"first_performed","event":"$any","last_days":7}]})"},
      {"first_order_7d", "新客首单(7天)", "First order (7 days)",
       R"({"op":"and","conditions":[{"type":"first_performed","event":"pay","last_days":7}]})"},
      {"silent_7d", "沉默7天", "Silent 7 days",
       R"({"op":"and","conditions":[{"type":"performed","event":"$any"},{"type":"not_performed","event":"$any","last_days":7}]})"},
      {"silent_30d", "沉默30天", "Silent 30 days",
       R"({"op":"and","conditions":[{"type":"performed","event":"$any"},{"type":"not_performed","event":"$any","last_days":30}]})"},
      {"churned_90d", "流失90天", "Churned (90 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"$any"},{"type":"not_performed","event":"$any","last_days":90}]})"},
      {"never_paid", "从未付费", "Never paid",
       R"({"op":"and","conditions":[{"type":"performed","event":"$any"},{"type":"not_performed","event":"pay"}]})"},
      {"one_time_buyer", "单次购买", "One-time buyer",
       R"({"op":"and","conditions":[{"type":"performed","event":"pay","count":{"op":"eq","value":1}}]})"},
      {"repeat_buyer", "复购用户", "Repeat buyer",
       R"({"op":"and","conditions":[{"type":"performed","event":"pay","count":{"op":"gte","value":2}}]})"},
      {"frequent_buyer_30d", "高频购买(30天)", "Frequent buyer (30 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"pay","count":{"op":"gte","value":3},"last_days":30}]})"},
      {"coupon_hunter", "羊毛党", "Coupon hunter",
       R"({"op":"and","conditions":[{"type":"performed","event":"coupon_use","count":{"op":"gte","value":3},"last_days":90},{"type":"tag","tag":"coupon_use_rate","value":"high"}]})"},
      {"high_aov", "高客单价", "High AOV",
       R"({"op":"and","conditions":[{"type":"tag","tag":"price_band","values":["200-499","500+"]}]})"},
      {"weekend_buyer", "周末购物者", "Weekend buyer",
       R"({"op":"and","conditions":[{"type":"performed","event":"pay"},{"type":"tag","tag":"weekend_share","value":"weekend"}]})"},
      {"night_owl", "夜猫子", "Night owl",
       R"({"op":"and","conditions":[{"type":"tag","tag":"preferred_time","value":"night"}]})"},
      {"champion", "重要价值客户", "Champion",
       R"({"op":"and","conditions":[{"type":"rfm_segment","segment":"champions"}]})"},
      {"at_risk_valuable", "高价值流失风险", "Valuable, at risk",
       R"({"op":"or","conditions":[{"type":"rfm_segment","segment":"at_risk_loyal"},{"type":"rfm_segment","segment":"cant_lose"}]})"},
      {"high_value_silent_30d", "高价值沉默30天", "High value, silent 30 days",
       R"({"op":"and","conditions":[{"type":"tier","dimension":"value","level":"high"},{"type":"not_performed","event":"$any","last_days":30}]})"},
      {"sharer_30d", "分享达人(30天)", "Sharer (30 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"share","last_days":30}]})"},
      {"spreader", "传播者", "Spreader",
       R"({"op":"and","conditions":[{"type":"tier","dimension":"social","level":"spreader"}]})"},
      {"daily_checker", "签到达人", "Daily check-in",
       R"({"op":"and","conditions":[{"type":"performed","event":"check_in","count":{"op":"gte","value":5},"last_days":7}]})"},
      {"reviewer_90d", "评价用户(90天)", "Reviewer (90 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"review","last_days":90}]})"},
      {"refunder_90d", "退款用户(90天)", "Refunder (90 days)",
       R"({"op":"and","conditions":[{"type":"performed","event":"refund","last_days":90}]})"},
      // The riskiest tenth by the churn model's latest scores (models/, docs/models.md).
      {"high_churn_risk", "高流失风险", "High churn risk",
       R"({"op":"and","conditions":[{"type":"property","property":"$churn_risk_decile","op":"gte","value":10}]})"},
      // The referral attributes of the models layer (models/referral_attributes.h).
      {"top_inviter", "邀请达人", "Top inviter",
       R"({"op":"and","conditions":[{"type":"property","property":"$clean_invitees","op":"gte","value":3}]})"},
      {"referred", "受邀用户", "Referred",
       R"({"op":"and","conditions":[{"type":"property","property":"$referred_by","op":"is_set"}]})"},
  };
}

}  // namespace

const std::vector<BaseTag>& BaseTags() {
  static const std::vector<BaseTag> tags = MakeBaseTags();
  return tags;
}

const BaseTag* FindBaseTag(std::string_view key) {
  for (const auto& t : BaseTags())
    if (key == t.key) return &t;
  return nullptr;
}

const std::vector<RuleTag>& RuleTags() {
  static const std::vector<RuleTag> tags = MakeRuleTags();
  return tags;
}

const RuleTag* FindRuleTag(std::string_view key) {
  for (const auto& t : RuleTags())
    if (key == t.key) return &t;
  return nullptr;
}

json TagCatalogue() {
  json base = json::array(), rules = json::array();
  for (const auto& t : BaseTags())
    base.push_back({{"key", t.key}, {"label_zh", t.label_zh}, {"label", t.label_en}, {"rule", t.rule}});
  for (const auto& t : RuleTags())
    rules.push_back(
        {{"key", t.key}, {"label_zh", t.label_zh}, {"label", t.label_en}, {"definition", json::parse(t.definition)}});
  return json{{"base_tags", base}, {"rule_tags", rules}};
}

}  // namespace ns
