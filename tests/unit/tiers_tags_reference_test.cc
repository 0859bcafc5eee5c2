// The four tiers (GetPersonTiers) and every base tag (BaseTags()) against a deliberately
// naive reference written here from docs/people.md ("Settings", "Tiers", "Tags") and the
// rule text of each tag: plain loops over a vector of events, persons by a union-find over
// distinct ids, local days and hours from the date library (not ns::TimeZone). Random data
// on many seeds: identity merges after the fact, equal timestamps, events a millisecond
// either side of local midnight (Asia/Shanghai; some seeds America/New_York across a DST
// change), pay events with amount / order_id (repeating: one order reported more than once)
// / product_id / category, product views shortly before a purchase, share events, events
// whose inviter property names another person's distinct id (sometimes an unknown id,
// sometimes the person's own), person properties (platform, city, age, ...), event
// properties ($os, $browser, utm_source, ...), coupon_use, check_in, review, refund, ...
// Some seeds use other event names (pay, share, cart, coupon, check-in, review, refund,
// search: docs/people.md "Settings") and property names and thresholds. Each base tag is computed
// over the whole store (cohort conditions) and for single persons (the person page): both
// must give the naive value.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "core/env.h"
#include "people/tags.h"
#include "people/tiers.h"
#include "people_test_util.h"
#include "query/person_facts.h"
#include "storage/event_store.h"
#include "storage/person_table.h"
#include "test_util.h"

namespace ns {
namespace {

// ---- local days and hours with the date library ----

int LocalHour(const date::time_zone* z, int64_t ms) {
  auto lt = z->to_local(date::sys_time<std::chrono::milliseconds>{std::chrono::milliseconds{ms}});
  return static_cast<int>(date::floor<std::chrono::hours>(lt - date::floor<date::days>(lt)).count());
}

std::string MonthString(int days) { return DayString(days).substr(0, 7); }

// ---- the naive world ----

struct TEvent {
  std::string uuid, did, event;
  std::string root;  // the naive person (World::Union)
  int64_t ts = 0;
  std::vector<std::string> merge_with;
  std::vector<std::pair<std::string, PropValue>> props;
  std::vector<std::string> person_keys;  // person properties this event sets (values by person)
  int day = 0, hour = 0;

  const PropValue* Prop(const std::string& k) const {
    for (auto& [key, v] : props)
      if (key == k) return &v;
    return nullptr;
  }
};

struct World {
  const date::time_zone* zone = nullptr;
  std::vector<TEvent> events;
  std::map<std::string, std::string> parent;
  std::map<std::string, std::map<std::string, PropValue>> person_props;  // root -> key -> value

  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  void Union() {
    for (auto& e : events) {
      Root(e.did);
      for (auto& o : e.merge_with) {
        std::string a = Root(e.did), b = Root(o);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
      }
    }
    for (auto& e : events) {
      e.root = Root(e.did);
      e.day = LocalDay(zone, e.ts);
      e.hour = LocalHour(zone, e.ts);
    }
  }
};

// A person property's value: one per (final person, key), so every event setting it agrees
// whatever order merges and sets take.
PropValue PersonValue(const std::string& key, const std::string& root) {
  const size_t h = std::hash<std::string>{}(key + "/" + root);
  if (key == "age") {
    static const PropValue kAges[] = {PropValue::Num(15),        PropValue::Num(20), PropValue::Num(30),
                                      PropValue::Str("41"),      PropValue::Num(50), PropValue::Num(66),
                                      PropValue::Str("unknown"), PropValue::Num(0),  PropValue::Num(24.5)};
    return kAges[h % 9];
  }
  return PropValue::Str(key.substr(0, 3) + std::to_string(h % 3));
}

double AmountOf(const PropValue* v) {
  double x = 0;
  return v && NaiveNumber(*v, &x) ? x : 0;
}

struct NSettings {
  std::string pay = "pay", amount = "amount", order = "order_id", product = "product_id", category = "category",
              share = "share", inviter = "inviter_id";
  // The other events the tags count (docs/people.md "Settings").
  std::string cart = "add_to_cart", coupon_use = "coupon_use", coupon_receive = "coupon_receive", check_in = "check_in",
              review = "review", refund = "refund", search = "search";
  int new_days = 7, active_days = 30, churn_days = 90;
  int value_pct = 80, value_min_orders = 2, core_days = 10, loyal_min_orders = 3, loyal_share = 60,
      impulse_minutes = 30, spreader = 3;

  PeopleSettings ToPeople() const {
    PeopleSettings p;
    p.pay_event = pay;
    p.amount_property = amount;
    p.order_property = order;
    p.product_property = product;
    p.category_property = category;
    p.share_event = share;
    p.inviter_property = inviter;
    p.new_days = new_days;
    p.active_days = active_days;
    p.churn_days = churn_days;
    p.value_high_percentile = value_pct;
    p.value_high_min_orders = value_min_orders;
    p.core_active_days = core_days;
    p.loyal_min_orders = loyal_min_orders;
    p.loyal_share = loyal_share;
    p.impulse_minutes = impulse_minutes;
    p.spreader_invitees = spreader;
    p.cart_event = cart;
    p.coupon_use_event = coupon_use;
    p.coupon_receive_event = coupon_receive;
    p.check_in_event = check_in;
    p.review_event = review;
    p.refund_event = refund;
    p.search_event = search;
    return p;
  }
};

// The order id of a payment ("" = none: the event is an order by itself).
std::string OrderOf(const TEvent& e, const NSettings& s) {
  if (s.order.empty()) return "";
  const PropValue* v = e.Prop(s.order);
  return v ? v->AsString() : "";
}

std::map<std::string, NFacts> NaiveFacts(World& w, int as_of, const NSettings& s) {
  NaiveFactsBuilder<std::string> facts;
  for (const TEvent& e : w.events) {
    if (e.day > as_of) continue;
    facts.Event(e.root, e.ts);
    if (e.event == s.pay) facts.Payment(e.root, e.ts, AmountOf(e.Prop(s.amount)), OrderOf(e, s));
  }
  return facts.Finish();
}

// ---- naive tiers (docs/people.md "Tiers") ----

// root -> level index per dimension (-1: none).
std::map<std::string, std::array<int, 4>> NaiveTiers(World& w, int as_of, const NSettings& s) {
  const auto facts = NaiveFacts(w, as_of, s);
  std::map<std::string, std::array<int, 4>> out;
  for (auto& [root, f] : facts) out[root] = {-1, -1, -1, -1};
  // Value.
  std::vector<double> spends;
  for (auto& [root, f] : facts)
    if (f.orders) spends.push_back(f.monetary);
  for (auto& [root, f] : facts) {
    if (!f.orders) {
      out[root][0] = 2;
      continue;
    }
    size_t more = 0;
    for (double x : spends) more += x > f.monetary;
    const bool top = static_cast<double>(more) * 100 < (100.0 - s.value_pct) * static_cast<double>(spends.size());
    out[root][0] = top && f.orders >= static_cast<uint32_t>(s.value_min_orders) ? 0 : 1;
  }
  // Activity: distinct local days with events among the last 30.
  std::map<std::string, std::set<int>> days;
  for (const TEvent& e : w.events)
    if (e.day <= as_of && e.day > as_of - 30) days[e.root].insert(e.day);
  for (auto& [root, f] : facts) {
    const int n = static_cast<int>(days[root].size());
    out[root][1] = n >= s.core_days ? 0 : n > 0 ? 1 : 2;
  }
  // Need: orders naming a product (one per order id: its earliest payment naming one; ties
  // by product, then category).
  struct Buy {
    int64_t ts;
    std::string product, category;
  };
  std::map<std::string, std::map<std::string, Buy>> by_order;  // root -> order key -> buy
  std::map<std::string, std::vector<Buy>> loose;               // payments without an order id
  for (const TEvent& e : w.events) {
    if (e.day > as_of || e.event != s.pay) continue;
    const PropValue* prod = e.Prop(s.product);
    if (!prod) continue;
    const PropValue* cat = e.Prop(s.category);
    Buy b{e.ts, prod->AsString(), cat ? cat->AsString() : ""};
    const std::string root = e.root, o = OrderOf(e, s);
    if (o.empty()) {
      loose[root].push_back(b);
      continue;
    }
    auto [it, fresh] = by_order[root].try_emplace(o, b);
    if (!fresh &&
        std::tie(b.ts, b.product, b.category) < std::tie(it->second.ts, it->second.product, it->second.category))
      it->second = b;
  }
  for (auto& [root, os] : by_order)
    for (auto& [o, b] : os) loose[root].push_back(b);
  for (auto& [root, buys] : loose) {
    std::map<std::string, int> kinds;
    std::vector<double> minutes;
    for (const Buy& b : buys) {
      kinds[b.category.empty() ? "product:" + b.product : b.category]++;
      int64_t first = b.ts;
      for (const TEvent& e : w.events) {
        if (e.day > as_of || e.root != root) continue;
        const PropValue* p = e.Prop(s.product);
        if (p && p->AsString() == b.product) first = std::min(first, e.ts);
      }
      minutes.push_back(static_cast<double>(b.ts - first) / 60000.0);
    }
    int fav = 0;
    for (auto& [k, c] : kinds) fav = std::max(fav, c);
    std::sort(minutes.begin(), minutes.end());
    const size_t m = minutes.size();
    const double median = m % 2 ? minutes[m / 2] : (minutes[m / 2 - 1] + minutes[m / 2]) / 2;
    const int n = static_cast<int>(buys.size());
    out[root][2] = n >= s.loyal_min_orders && fav * 100 >= s.loyal_share * n ? 0 : median <= s.impulse_minutes ? 1 : 2;
  }
  // Social.
  std::set<std::pair<std::string, std::string>> invited;
  std::map<std::string, int> shares;
  for (const TEvent& e : w.events) {
    if (e.day > as_of) continue;
    if (e.event == s.share) shares[e.root]++;
    const PropValue* inv = e.Prop(s.inviter);
    if (!inv || !w.parent.count(inv->AsString())) continue;
    const std::string a = w.Root(inv->AsString()), b = e.root;
    if (a != b) invited.insert({a, b});
  }
  std::map<std::string, int> invitees;
  for (auto& [a, b] : invited) invitees[a]++;
  for (auto& [root, f] : facts) {
    const int n = invitees[root];
    out[root][3] = n >= s.spreader ? 0 : (n > 0 || shares[root] > 0) ? 1 : 2;
  }
  return out;
}

// ---- naive base tags ----

std::string Band(double x, const std::vector<std::pair<double, const char*>>& upper, const char* last) {
  for (const auto& [u, name] : upper)
    if (x < u) return name;
  return last;
}

using TagValues = std::map<std::string, std::string>;  // root -> value

// Every base tag the naive side knows (docs/people.md "Tags").
const char* kTagKeys[] = {"platform",
                          "os",
                          "os_version",
                          "device_model",
                          "device_brand",
                          "device_type",
                          "browser",
                          "app_version",
                          "network",
                          "carrier",
                          "language",
                          "country",
                          "province",
                          "city",
                          "city_tier",
                          "gender",
                          "member_level",
                          "age_band",
                          "acquisition_channel",
                          "acquisition_campaign",
                          "acquisition_medium",
                          "referring_domain",
                          "first_event",
                          "invited",
                          "first_seen_month",
                          "last_seen_month",
                          "first_order_month",
                          "last_order_month",
                          "tenure_band",
                          "recency_band",
                          "lifecycle",
                          "rfm_segment",
                          "value_tier",
                          "activity_tier",
                          "need_tier",
                          "social_tier",
                          "order_count_band",
                          "spend_band",
                          "price_band",
                          "favourite_category",
                          "favourite_product",
                          "category_breadth",
                          "coupon_use_rate",
                          "preferred_time",
                          "weekend_share",
                          "events_30d_band",
                          "events_total_band",
                          "cart_count_band",
                          "share_count_band",
                          "check_in_band",
                          "review_count_band",
                          "refund_count_band",
                          "coupon_receive_band",
                          "search_count_band",
                          "pay_30d_band"};

std::map<std::string, TagValues> NaiveBaseTags(World& w, int as_of, const NSettings& s) {
  const auto facts = NaiveFacts(w, as_of, s);
  const auto tiers = NaiveTiers(w, as_of, s);
  std::map<std::string, TagValues> out;
  for (const char* k : kTagKeys) out[k];
  std::vector<const TEvent*> rows;  // events before the end of the as-of day
  for (const TEvent& e : w.events)
    if (e.day <= as_of) rows.push_back(&e);

  // Person property first (keys in order), else the latest (earliest) event carrying one of
  // the keys (the first key present on it); events of one instant: the smallest value.
  auto prop_tag = [&](const char* key, std::vector<std::string> keys, bool first) {
    TagValues& t = out[key];
    for (auto& [root, f] : facts) {
      auto pp = w.person_props.find(root);
      if (pp != w.person_props.end()) {
        bool done = false;
        for (auto& k : keys) {
          auto it = pp->second.find(k);
          if (it != pp->second.end()) {
            t[root] = it->second.AsString();
            done = true;
            break;
          }
        }
        if (done) continue;
      }
      std::optional<std::pair<int64_t, std::string>> best;
      for (const TEvent* e : rows) {
        if (e->root != root) continue;
        for (auto& k : keys) {
          const PropValue* v = e->Prop(k);
          if (!v) continue;
          std::pair<int64_t, std::string> c{first ? e->ts : -e->ts, v->AsString()};
          if (!best || c < *best) best = c;
          break;
        }
      }
      if (best) t[root] = best->second;
    }
  };
  prop_tag("platform", {"platform", "$platform", "$os"}, false);
  prop_tag("os", {"$os", "os"}, false);
  prop_tag("os_version", {"$os_version", "os_version"}, false);
  prop_tag("device_model", {"$device_model", "$model", "device_model"}, false);
  prop_tag("device_brand", {"$manufacturer", "$brand", "brand"}, false);
  prop_tag("device_type", {"$device_type", "device_type"}, false);
  prop_tag("browser", {"$browser", "browser"}, false);
  prop_tag("app_version", {"$app_version", "app_version"}, false);
  prop_tag("network", {"$network_type", "network_type", "$wifi"}, false);
  prop_tag("carrier", {"$carrier", "carrier"}, false);
  prop_tag("language", {"language", "$locale", "$language"}, false);
  prop_tag("country", {"country", "$country", "$geoip_country_name"}, false);
  prop_tag("province", {"province", "$province", "$geoip_subdivision_1_name"}, false);
  prop_tag("city", {"city", "$city", "$geoip_city_name"}, false);
  prop_tag("city_tier", {"city_tier"}, false);
  prop_tag("gender", {"gender"}, false);
  prop_tag("member_level", {"member_level", "vip_level", "level"}, false);
  prop_tag("acquisition_channel", {"utm_source", "$utm_source", "channel", "$latest_referrer"}, true);
  prop_tag("acquisition_campaign", {"utm_campaign", "$utm_campaign"}, true);
  prop_tag("acquisition_medium", {"utm_medium", "$utm_medium"}, true);
  prop_tag("referring_domain", {"$referring_domain", "$initial_referring_domain"}, true);

  // Per person aggregates over the rows.
  struct Agg {
    std::optional<std::pair<int64_t, std::string>> first_event;
    bool invited = false;
    std::optional<int64_t> first_pay;
    std::map<std::string, int> cats, prods;  // value -> orders
    // order id -> the earliest (time, value) of its payments carrying the category / product
    std::map<std::string, std::pair<int64_t, std::string>> order_cat, order_prod;
    std::set<std::string> all_cats;
    int coupon_use = 0;
    std::array<int, 4> bands{};
    int weekend = 0, all = 0;
    std::map<std::string, int> count_all, count_30;
  };
  std::map<std::string, Agg> agg;
  for (const TEvent* e : rows) {
    Agg& a = agg[e->root];
    std::pair<int64_t, std::string> fe{e->ts, e->event};
    if (!a.first_event || fe < *a.first_event) a.first_event = fe;
    a.invited = a.invited || e->Prop(s.inviter);
    if (e->event == s.pay) {
      a.first_pay = std::min(a.first_pay.value_or(e->ts), e->ts);
      // Favourites count orders: one per order id (its earliest payment carrying the value).
      const std::string o = OrderOf(*e, s);
      auto add = [&](const PropValue* v, std::map<std::string, int>& loose,
                     std::map<std::string, std::pair<int64_t, std::string>>& by_order) {
        if (!v) return;
        if (o.empty()) {
          loose[v->AsString()]++;
          return;
        }
        std::pair<int64_t, std::string> c{e->ts, v->AsString()};
        auto [it, fresh] = by_order.try_emplace(o, c);
        if (!fresh && c < it->second) it->second = c;
      };
      add(e->Prop(s.category), a.cats, a.order_cat);
      add(e->Prop(s.product), a.prods, a.order_prod);
      if (const PropValue* c = e->Prop(s.category)) a.all_cats.insert(c->AsString());
    }
    a.coupon_use += e->event == s.coupon_use;
    a.bands[static_cast<size_t>(e->hour / 6)]++;
    const unsigned wd = date::weekday{date::sys_days{date::days{e->day}}}.c_encoding();  // 0 = Sunday
    a.weekend += wd == 0 || wd == 6;
    a.all++;
    a.count_all[e->event]++;
    if (e->day > as_of - 30) a.count_30[e->event]++;
  }
  for (auto& [root, a] : agg) {
    for (auto& [o, c] : a.order_cat) a.cats[c.second]++;
    for (auto& [o, c] : a.order_prod) a.prods[c.second]++;
  }
  auto top = [](const std::map<std::string, int>& m) {
    auto best = m.begin();
    for (auto it = m.begin(); it != m.end(); ++it)
      if (it->second > best->second) best = it;
    return best->first;
  };

  // Quintile RFM of the payers (docs/people.md "RFM").
  std::vector<std::string> payers;
  std::vector<std::array<double, 3>> rfm;
  for (auto& [root, f] : facts)
    if (f.orders) {
      payers.push_back(root);
      rfm.push_back({double(as_of - LocalDay(w.zone, f.last_pay)), double(f.orders), f.monetary});
    }
  const NaiveRfmScores scored = NaiveQuintileRfm(rfm);
  for (size_t i = 0; i < payers.size(); i++) out["rfm_segment"][payers[i]] = kSegmentKeys[scored.segments[i]];

  static const char* kTierKeys[] = {"value_tier", "activity_tier", "need_tier", "social_tier"};
  static const char* kLevels[4][3] = {{"high", "medium", "potential"},
                                      {"core", "ordinary", "silent"},
                                      {"loyal", "impulse", "demand"},
                                      {"spreader", "sharer", "onlooker"}};
  const std::vector<std::pair<double, const char*>> kOrders = {{1, "0"}, {2, "1"}, {4, "2-3"}, {10, "4-9"}};
  for (auto& [root, f] : facts) {
    const Agg& a = agg[root];
    const int first_day = LocalDay(w.zone, f.first), last_day = LocalDay(w.zone, f.last);
    out["first_event"][root] = a.first_event->second;
    out["invited"][root] = a.invited ? "yes" : "no";
    if (auto pp = w.person_props.find(root); pp != w.person_props.end() && pp->second.count("age")) {
      const PropValue& v = pp->second.at("age");
      const double age = v.kind == PropValue::kNum ? v.num : std::atof(v.str.c_str());
      if (age > 0)
        out["age_band"][root] =
            Band(age, {{18, "<18"}, {25, "18-24"}, {35, "25-34"}, {45, "35-44"}, {55, "45-54"}}, "55+");
    }
    out["first_seen_month"][root] = MonthString(first_day);
    out["last_seen_month"][root] = MonthString(last_day);
    if (a.first_pay) out["first_order_month"][root] = MonthString(LocalDay(w.zone, *a.first_pay));
    if (f.orders) out["last_order_month"][root] = MonthString(LocalDay(w.zone, f.last_pay));
    out["tenure_band"][root] =
        Band(as_of - first_day, {{7, "<7"}, {30, "7-29"}, {90, "30-89"}, {365, "90-364"}}, "365+");
    if (f.orders) {
      const int d = as_of - LocalDay(w.zone, f.last_pay);
      out["recency_band"][root] = d <= 7 ? "0-7" : d <= 30 ? "8-30" : d <= 90 ? "31-90" : d <= 179 ? "91-179" : "180+";
    } else {
      out["recency_band"][root] = "none";
    }
    const int idle = as_of - last_day;
    out["lifecycle"][root] = as_of - first_day < s.new_days ? "new"
                             : idle < s.active_days         ? "active"
                             : idle < s.churn_days          ? "silent"
                                                            : "churned";
    for (int d = 0; d < 4; d++) {
      const int l = tiers.at(root)[static_cast<size_t>(d)];
      if (l >= 0) out[kTierKeys[d]][root] = kLevels[d][l];
    }
    out["order_count_band"][root] = Band(f.orders, kOrders, "10+");
    out["spend_band"][root] = Band(
        f.monetary, {{1e-9, "0"}, {100, "<100"}, {500, "100-499"}, {2000, "500-1999"}, {10000, "2000-9999"}}, "10000+");
    if (f.orders) {
      out["price_band"][root] =
          Band(f.monetary / f.orders, {{50, "<50"}, {100, "50-99"}, {200, "100-199"}, {500, "200-499"}}, "500+");
      const double r = a.coupon_use / static_cast<double>(f.orders);
      out["coupon_use_rate"][root] = r == 0 ? "none" : r < 0.3 ? "low" : r <= 0.7 ? "medium" : "high";
    }
    if (!a.cats.empty()) {
      out["favourite_category"][root] = top(a.cats);
      out["category_breadth"][root] = Band(static_cast<double>(a.all_cats.size()), {{2, "1"}, {4, "2-3"}}, "4+");
    }
    if (!a.prods.empty()) out["favourite_product"][root] = top(a.prods);
    static const char* kBands[] = {"night", "morning", "afternoon", "evening"};
    out["preferred_time"][root] = kBands[std::max_element(a.bands.begin(), a.bands.end()) - a.bands.begin()];
    const double ws = static_cast<double>(a.weekend) / a.all;
    out["weekend_share"][root] = ws < 0.2 ? "weekday" : ws > 0.5 ? "weekend" : "mixed";
    auto count = [&](const std::string& ev, bool last30) {
      if (ev == "$any") {
        if (!last30) return a.all;
        int n = 0;
        for (auto& [k, c] : a.count_30) n += c;
        return n;
      }
      const auto& m = last30 ? a.count_30 : a.count_all;
      auto it = m.find(ev);
      return it == m.end() ? 0 : it->second;
    };
    out["events_30d_band"][root] =
        Band(count("$any", true), {{1, "0"}, {10, "1-9"}, {50, "10-49"}, {200, "50-199"}}, "200+");
    out["events_total_band"][root] = Band(count("$any", false), {{10, "1-9"}, {50, "10-49"}, {200, "50-199"}}, "200+");
    out["cart_count_band"][root] = Band(count(s.cart, false), {{1, "0"}, {5, "1-4"}}, "5+");
    out["share_count_band"][root] = Band(count(s.share, false), {{1, "0"}, {3, "1-2"}}, "3+");
    out["check_in_band"][root] = Band(count(s.check_in, true), {{1, "0"}, {5, "1-4"}}, "5+");
    out["review_count_band"][root] = Band(count(s.review, false), {{1, "0"}, {3, "1-2"}}, "3+");
    out["refund_count_band"][root] = Band(count(s.refund, false), {{1, "0"}, {2, "1"}}, "2+");
    out["coupon_receive_band"][root] = Band(count(s.coupon_receive, false), {{1, "0"}, {3, "1-2"}}, "3+");
    out["search_count_band"][root] = Band(count(s.search, true), {{1, "0"}, {5, "1-4"}}, "5+");
    out["pay_30d_band"][root] = Band(count(s.pay, true), {{1, "0"}, {2, "1"}, {4, "2-3"}}, "4+");
  }
  return out;
}

// ---- the test ----

class TiersTagsReference : public ::testing::TestWithParam<int> {};

TEST_P(TiersTagsReference, MatchesNaive) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 7919 + 13);
  std::mt19937_64& rng = R.rng;
  const std::string zone_name = seed % 4 == 3 ? "America/New_York" : "Asia/Shanghai";
  const date::time_zone* zone = date::locate_zone(zone_name);
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());

  // Settings: the defaults on most seeds; other names and thresholds on some.
  NSettings st;
  const bool other = seed % 5 == 4;
  if (other) {
    st.pay = "purchase";
    st.amount = "value";
    st.order = seed % 10 == 9 ? "" : "oid";
    st.product = "sku";
    st.category = "cat";
    st.share = "forward";
    st.inviter = "ref";
    st.cart = "basket";
    st.coupon_use = "coupon";
    st.coupon_receive = "coupon_get";
    st.check_in = "sign_in";
    st.review = "rate";
    st.refund = "return";
    st.search = "find";
    st.new_days = 3;
    st.active_days = 10;
    st.churn_days = 25;
    st.value_pct = R(1, 99);
    st.value_min_orders = R(1, 3);
    st.core_days = R(1, 12);
    st.loyal_min_orders = R(1, 4);
    st.loyal_share = R(1, 100);
    st.impulse_minutes = R(0, 200);
    st.spreader = R(1, 4);
  }

  // 75 local days from 2025-02-01 (New York's DST change on 2025-03-09 inside).
  const int day0 = static_cast<int>(date::sys_days{date::year{2025} / 2 / 1}.time_since_epoch().count());
  const int span = 75;
  const int persons = R(3, 30);
  const int nevents = R(60, 400);
  auto pid_name = [](char kind, int p) { return std::string(1, kind) + std::to_string(p); };
  // Events by their default names (plain events on seeds with other settings) and by the
  // seed's names.
  std::vector<std::string> kOther = {"view",   "add_to_cart", "coupon_use", "coupon_receive", "check_in", "review",
                                     "refund", "search",      "signup",     "product_click",  "pay",      "share"};
  if (other)
    for (const std::string* n :
         {&st.cart, &st.coupon_use, &st.coupon_receive, &st.check_in, &st.review, &st.refund, &st.search})
      for (int k = 0; k < 2; k++) kOther.push_back(*n);  // as likely as the default names
  static const char* kEventProps[] = {"$os",
                                      "os",
                                      "$platform",
                                      "$browser",
                                      "utm_source",
                                      "$utm_source",
                                      "channel",
                                      "utm_campaign",
                                      "utm_medium",
                                      "$referring_domain",
                                      "$city",
                                      "$country",
                                      "$province",
                                      "$locale",
                                      "$device_model",
                                      "$model",
                                      "$manufacturer",
                                      "$device_type",
                                      "$app_version",
                                      "$network_type",
                                      "$carrier",
                                      "$os_version",
                                      "$geoip_city_name",
                                      "language"};
  static const char* kPersonProps[] = {"platform",  "city",     "age",     "gender",    "member_level",
                                       "vip_level", "language", "country", "city_tier", "province"};
  World w;
  w.zone = zone;
  for (int i = 0; i < nevents; i++) {
    TEvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(i);
    const int p = R(1, persons);
    const int kind_roll = R(0, 99);
    e.did = pid_name(kind_roll < 50 ? 'u' : kind_roll < 85 ? 'a' : 'd', p);
    const int tr = R(0, 99);
    const int day = day0 + R(0, span - 1);
    if (tr < 50 || w.events.empty()) {
      e.ts = LocalMidnight(zone, day) + R(0, 86'399'999);
    } else if (tr < 70) {
      static const int64_t kOff[] = {-1, 0, 1, -1000, 999};
      e.ts = LocalMidnight(zone, day) + kOff[R(0, 4)];
    } else if (tr < 75) {
      // Local 05:00-06:59 on the day New York's clocks go forward (2025-03-09; an ordinary
      // day in Shanghai): five hours after midnight is 06:00 there.
      const int dst = static_cast<int>(date::sys_days{date::year{2025} / 3 / 9}.time_since_epoch().count());
      e.ts = LocalMidnight(zone, dst) + 4 * 3'600'000 + R(0, 2 * 3'600'000);
    } else {
      e.ts = w.events[static_cast<size_t>(R(0, static_cast<int>(w.events.size()) - 1))].ts;
    }
    const int roll = R(0, 99);
    bool view_first = false;
    if (roll < 8) {
      e.event = "$identify";
      e.did = pid_name('u', p);
      e.merge_with.push_back(pid_name(R(0, 2) ? 'a' : 'd', p));
    } else if (roll < 10 && p + 2 <= persons) {
      e.event = "$create_alias";
      e.did = pid_name('u', p);
      e.merge_with.push_back(pid_name('u', p + 2));
    } else if (roll < 40) {
      e.event = st.pay;
      const int a = R(0, 9);
      const int k = R(-2, 800);  // halves: sums are exact, so equal spends tie
      if (a < 6) e.props.push_back({st.amount, PropValue::Num(k * 0.5)});
      if (a >= 6 && a < 8 && k >= 0)
        e.props.push_back({st.amount, PropValue::Str(std::to_string(k / 2) + (k % 2 ? ".5" : ""))});
      if (R(0, 9) < 4) e.props.push_back({"order_id", PropValue::Str("o" + std::to_string(R(1, 4)))});
      if (R(0, 9) < 4 && st.order != "order_id" && !st.order.empty())
        e.props.push_back({st.order, PropValue::Str("o" + std::to_string(R(1, 4)))});
      if (R(0, 9) < 8) {
        const int pr = R(1, 6);
        e.props.push_back({st.product, pr == 6 ? PropValue::Num(7) : PropValue::Str("p" + std::to_string(pr))});
        if (R(0, 9) < 7) e.props.push_back({st.category, PropValue::Str("c" + std::to_string(R(1, 3)))});
        view_first = R(0, 1);
      }
    } else if (roll < 55) {
      e.event = R(0, 1) ? "view" : "product_click";
      const int pr = R(1, 7);
      e.props.push_back({st.product, pr >= 6 ? (pr == 6 ? PropValue::Num(7) : PropValue::Str("7"))
                                             : PropValue::Str("p" + std::to_string(pr))});
    } else if (roll < 62) {
      e.event = st.share;
    } else {
      e.event = kOther[static_cast<size_t>(R(0, static_cast<int>(kOther.size()) - 1))];
    }
    // The inviter property: another person's id (maybe unknown), an unknown id, one's own.
    if (R(0, 99) < 10) {
      const int ir = R(0, 9);
      const std::string inv = ir < 6 ? pid_name(R(0, 1) ? 'u' : 'a', R(1, persons)) : ir < 8 ? "nobody" : e.did;
      e.props.push_back({st.inviter, PropValue::Str(inv)});
    }
    for (const char* k : kEventProps)
      if (R(0, 99) < 6) e.props.push_back({k, PropValue::Str(std::string(k).substr(1, 3) + std::to_string(R(0, 2)))});
    if (R(0, 9) == 0) e.person_keys.push_back(kPersonProps[R(0, 9)]);
    if (view_first) {
      // A view of the product shortly (or long) before paying; the view comes first.
      TEvent v;
      v.uuid = e.uuid + "v";
      v.did = R(0, 3) ? e.did : pid_name('a', p);
      v.event = "view";
      v.ts = e.ts - (R(0, 3) ? R(0, 60) * 60'000 : R(0, 3000) * 60'000) + R(-1, 1);
      v.props.push_back(*std::find_if(e.props.begin(), e.props.end(), [&](auto& x) { return x.first == st.product; }));
      w.events.push_back(v);
    }
    w.events.push_back(e);
  }
  // The pay event "pay" and the share event "share" are plain events when renamed.
  w.Union();
  for (TEvent& e : w.events)
    for (const std::string& k : e.person_keys) w.person_props[e.root][k] = PersonValue(k, e.root);

  // Deliveries: shuffled, in random batches, with flushes and compactions. Segments on a
  // third of the seeds (one per UTC day and zstd per column: they were most of the test's
  // time); sealed memtable blocks (seal_rows) on the others.
  std::vector<TEvent> deliveries = w.events;
  std::shuffle(deliveries.begin(), deliveries.end(), rng);
  ThrowAwayStore store(static_cast<size_t>(R(3, 60)));
  ASSERT_TRUE(store.ok());
  std::vector<Event> batch;
  for (const TEvent& r : deliveries) {
    Event e = StoredEvent(r.uuid, r.did, r.event, r.ts, r.merge_with);
    for (auto& [k, v] : r.props) e.props.push_back({k, v});
    const std::string root = w.Root(r.did);
    for (auto& k : r.person_keys) e.person_set.push_back({k, PersonValue(k, root)});
    batch.push_back(std::move(e));
  }
  AppendInBatches(store, std::move(batch), BatchPolicy{80, seed % 3 == 0}, R);
  if (HasFatalFailure()) return;
  auto snap = store->Snapshot();

  // Naive person (root) -> person id; every id of a person must agree.
  std::set<std::string> ids;
  for (auto& [id, par] : w.parent) ids.insert(id);
  const std::map<std::string, uint32_t> pid =
      NaivePersonIds(*store, *snap, ids, [&](const std::string& id) { return w.Root(id); });
  if (HasFailure()) return;
  std::map<uint32_t, std::string> root_of;
  for (auto& [root, p] : pid) root_of.emplace(p, root);

  const DistinctIdFinder find = [&](std::string_view id) { return store->FindDistinctId(id); };
  const std::string sctx = "seed " + std::to_string(seed) + (other ? " (other settings)" : "");

  // ---- tiers ----
  auto check_tiers = [&](const NSettings& ns, int as_of) {
    const PeopleSettings ps = ns.ToPeople();
    auto got = GetPersonTiers(*snap, *tz, ps, as_of, find);
    const auto want = NaiveTiers(w, as_of, ns);
    const std::string ctx = sctx + " as_of " + DayString(as_of) + " settings " + ps.ToJson().dump();
    EXPECT_EQ(got->as_of_day, as_of) << ctx;
    for (auto& [root, p] : pid) {
      auto it = want.find(root);
      for (int d = 0; d < kTierDimensions; d++) {
        const auto dim = static_cast<TierDimension>(d);
        const int wl = it == want.end() ? -1 : it->second[static_cast<size_t>(d)];
        const int gl = got->Level(dim, p);
        EXPECT_EQ(gl, wl) << ctx << " person " << root << " " << TierDimensionName(dim) << ": got "
                          << (gl < 0 ? "none" : TierLevels(dim)[gl]) << ", want "
                          << (wl < 0 ? "none" : TierLevels(dim)[wl]);
      }
    }
  };
  const int as_of = day0 + R(-2, span + 3);
  check_tiers(st, as_of);
  check_tiers(st, day0 + R(0, span));
  {
    // The same data with other thresholds.
    NSettings t = st;
    t.value_pct = R(1, 99);
    t.value_min_orders = R(1, 4);
    t.core_days = R(1, 30);
    t.loyal_min_orders = R(1, 5);
    t.loyal_share = R(1, 100);
    t.impulse_minutes = R(0, 3000);
    t.spreader = R(1, 5);
    check_tiers(t, as_of);
  }

  // ---- base tags: the whole store, and single persons (the person page) ----
  const PeopleSettings ps = st.ToPeople();
  auto facts = GetPersonFacts(*snap, *tz, ps, as_of);
  auto tiers = GetPersonTiers(*snap, *tz, ps, as_of, find);
  const auto want = NaiveBaseTags(w, as_of, st);
  std::vector<uint32_t> sample;
  for (auto& [root, p] : pid)
    if (sample.size() < 6 || R(0, 9) == 0) sample.push_back(p);
  std::shuffle(sample.begin(), sample.end(), rng);
  if (sample.size() > 8) sample.resize(8);
  std::set<std::string> keys;
  for (const BaseTag& tag : BaseTags()) {
    keys.insert(tag.key);
    const std::string ctx = sctx + " as_of " + DayString(as_of) + " tag " + tag.key;
    auto wit = want.find(tag.key);
    ASSERT_TRUE(wit != want.end()) << ctx << ": no naive reference for this tag";
    const TagValues& wv = wit->second;
    std::map<uint32_t, std::string> all;
    BaseTagContext c{*snap, *tz, ps, *facts, *tiers, std::nullopt};
    tag.compute(c, [&](uint32_t p, const std::string& v) {
      EXPECT_TRUE(all.emplace(p, v).second) << ctx << ": person " << p << " reported twice";
    });
    for (auto& [p, v] : all) {
      auto r = root_of.find(p);
      ASSERT_TRUE(r != root_of.end()) << ctx << ": a value for " << p << ", not a person";
      auto it = wv.find(r->second);
      EXPECT_TRUE(it != wv.end() && it->second == v)
          << ctx << " person " << r->second << ": got " << v << ", want " << (it == wv.end() ? "none" : it->second);
    }
    for (auto& [root, v] : wv)
      EXPECT_TRUE(all.count(pid.at(root))) << ctx << " person " << root << ": got none, want " << v;
    for (uint32_t p : sample) {
      std::optional<std::string> one;
      BaseTagContext pc{*snap, *tz, ps, *facts, *tiers, p};
      tag.compute(pc, [&](uint32_t who, const std::string& v) {
        if (who == p) {
          EXPECT_FALSE(one) << ctx << ": person " << p << " reported twice on the person page";
          one = v;
        }
      });
      auto it = wv.find(root_of.at(p));
      const std::optional<std::string> wp = it == wv.end() ? std::nullopt : std::optional<std::string>(it->second);
      EXPECT_EQ(one, wp) << ctx << " person page of " << root_of.at(p);
    }
  }
  for (auto& [k, v] : want) EXPECT_TRUE(keys.count(k)) << "naive tag " << k << " is not a base tag";
  EXPECT_EQ(BaseTags().size(), 55u);  // docs/people.md "Tags"
}

INSTANTIATE_TEST_SUITE_P(Seeds, TiersTagsReference, ::testing::Range(0, 200));

}  // namespace
}  // namespace ns
