#include "people/tiers.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "query/scan.h"

namespace ns {

namespace {

constexpr std::array<std::string_view, 3> kLevels[kTierDimensions] = {
    {"high", "medium", "potential"},
    {"core", "ordinary", "silent"},
    {"loyal", "impulse", "demand"},
    {"spreader", "sharer", "onlooker"},
};
constexpr std::string_view kNames[kTierDimensions] = {"value", "activity", "need", "social"};

void ValueTier(const PersonFacts& f, const PeopleSettings& s, std::vector<int8_t>& out) {
  std::vector<double> spend;
  for (uint32_t p = 0; p < f.size(); p++)
    if (f.Paid(p)) spend.push_back(f.monetary[p]);
  std::sort(spend.begin(), spend.end());
  for (uint32_t p = 0; p < f.size(); p++) {
    if (!f.Has(p)) continue;
    if (!f.Paid(p)) {
      out[p] = 2;  // potential
      continue;
    }
    // In the top (100 - percentile)% of payers: fewer than that share spend more (equal
    // spends stand together).
    const double above = static_cast<double>(spend.end() - std::upper_bound(spend.begin(), spend.end(), f.monetary[p]));
    const bool top =
        above * 100 < static_cast<double>(100 - s.value_high_percentile) * static_cast<double>(spend.size());
    out[p] = top && f.orders[p] >= static_cast<uint32_t>(s.value_high_min_orders) ? 0 : 1;
  }
}

void ActivityTier(const StoreSnapshot& snap, const TimeZone& tz, const PersonFacts& f, const PeopleSettings& s,
                  std::vector<int8_t>& out) {
  const PersonTable& pt = *snap.persons;
  const int32_t first = f.as_of_day - 29;
  const int64_t from = tz.DayStartMs(first);
  DayIndex days(tz, first, f.as_of_day);
  std::vector<uint32_t> bits(pt.size(), 0);  // bit k: active on day as_of - k
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    if (b.size() == 0 || b.max_ts() < from || b.min_ts() >= f.end_ms) continue;
    const auto& ts = b.ts();
    const auto& did = b.did();
    for (size_t i = 0; i < b.size(); i++) {
      if (ts[i] < from || ts[i] >= f.end_ms) continue;
      const uint32_t p = pt.PersonOf(did[i]);
      if (p < bits.size()) bits[p] |= 1u << (f.as_of_day - days.Day(ts[i]));
    }
  }
  for (uint32_t p = 0; p < f.size(); p++) {
    if (!f.Has(p)) continue;
    const int n = __builtin_popcount(bits[p]);
    out[p] = n >= s.core_active_days ? 0 : n > 0 ? 1 : 2;
  }
}

// Need: from the payers' orders (product, category) and how long after first seeing the
// product they bought it.
void NeedTier(const StoreSnapshot& snap, const PersonFacts& f, const PeopleSettings& s, std::vector<int8_t>& out) {
  const PersonTable& pt = *snap.persons;
  const EventMatcher pay = EventMatcher::Make(s.pay_event, *snap.events);
  struct Purchase {
    uint32_t person;
    int64_t ts;
    std::string order, product, category;  // order: "" when the payment has no order id
  };
  std::vector<Purchase> buys;
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    if (pay.none || pay.any || !b.HasEvent(pay.code)) continue;
    const PropColumn* prod = b.prop(s.product_property);
    if (!prod) continue;
    const PropColumn* cat = b.prop(s.category_property);
    const PropColumn* ord = s.order_property.empty() ? nullptr : b.prop(s.order_property);
    auto [rb, re] = b.EventRows(pay.code);
    for (const uint32_t* r = rb; r < re; r++) {
      if (b.ts()[*r] >= f.end_ms || !prod->Present(*r)) continue;
      buys.push_back({pt.PersonOf(b.did()[*r]), b.ts()[*r], ord && ord->Present(*r) ? ord->Get(*r).AsString() : "",
                      prod->Get(*r).AsString(), cat && cat->Present(*r) ? cat->Get(*r).AsString() : std::string()});
    }
  }
  // Orders, not payment events (docs/people.md: "at least loyal_min_orders orders"): the
  // events of one order id count once, as its earliest payment naming a product (ties: the
  // smallest product, then category), as the facts count orders.
  std::sort(buys.begin(), buys.end(), [](const Purchase& a, const Purchase& b) {
    return std::tie(a.person, a.order, a.ts, a.product, a.category) <
           std::tie(b.person, b.order, b.ts, b.product, b.category);
  });
  size_t kept = 0;
  for (size_t i = 0; i < buys.size(); i++) {
    const bool same_order = kept > 0 && !buys[i].order.empty() && buys[kept - 1].person == buys[i].person &&
                            buys[kept - 1].order == buys[i].order;
    if (same_order) continue;
    if (kept != i) buys[kept] = std::move(buys[i]);
    kept++;
  }
  buys.resize(kept);
  // First time each (person, bought product) was seen on any event.
  std::unordered_map<std::string, int64_t> first_seen;
  auto key = [](uint32_t person, const std::string& product) { return std::to_string(person) + '\x1f' + product; };
  for (const Purchase& b : buys) first_seen.emplace(key(b.person, b.product), INT64_MAX);
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    const PropColumn* prod = b.prop(s.product_property);
    if (!prod || b.min_ts() >= f.end_ms) continue;
    for (size_t i = 0; i < b.size(); i++) {
      if (!prod->Present(i) || b.ts()[i] >= f.end_ms) continue;
      auto it = first_seen.find(key(pt.PersonOf(b.did()[i]), prod->Get(i).AsString()));
      if (it != first_seen.end()) it->second = std::min(it->second, b.ts()[i]);
    }
  }
  for (size_t i = 0; i < buys.size();) {
    size_t j = i;
    std::unordered_map<std::string, int> per_kind;
    std::vector<double> minutes;
    for (; j < buys.size() && buys[j].person == buys[i].person; j++) {
      per_kind[buys[j].category.empty() ? "product:" + buys[j].product : buys[j].category]++;
      minutes.push_back(static_cast<double>(buys[j].ts - first_seen[key(buys[j].person, buys[j].product)]) / 60000.0);
    }
    const uint32_t p = buys[i].person;
    const int n = static_cast<int>(j - i);
    int fav = 0;
    for (const auto& [k, c] : per_kind) fav = std::max(fav, c);
    // The median: the mean of the two middle values for an even count (stats::Median; it
    // was the upper middle value).
    std::sort(minutes.begin(), minutes.end());
    const size_t m = minutes.size();
    const double median = m % 2 ? minutes[m / 2] : (minutes[m / 2 - 1] + minutes[m / 2]) / 2;
    if (n >= s.loyal_min_orders && fav * 100 >= s.loyal_share * n) {
      out[p] = 0;
    } else if (median <= s.impulse_minutes) {
      out[p] = 1;
    } else {
      out[p] = 2;
    }
    i = j;
  }
}

void SocialTier(const StoreSnapshot& snap, const PersonFacts& f, const PeopleSettings& s, const DistinctIdFinder& find,
                std::vector<int8_t>& out) {
  const PersonTable& pt = *snap.persons;
  const EventMatcher share = EventMatcher::Make(s.share_event, *snap.events);
  std::vector<uint32_t> shares(pt.size(), 0);
  std::vector<std::pair<uint32_t, uint32_t>> invited;  // (inviter person, invitee person)
  std::unordered_map<std::string, int64_t> dids;
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    if (b.min_ts() >= f.end_ms) continue;
    if (!share.none && !share.any && b.HasEvent(share.code)) {
      auto [rb, re] = b.EventRows(share.code);
      for (const uint32_t* r = rb; r < re; r++)
        if (b.ts()[*r] < f.end_ms) shares[pt.PersonOf(b.did()[*r])]++;
    }
    const PropColumn* inv = b.prop(s.inviter_property);
    if (!inv) continue;
    for (size_t i = 0; i < b.size(); i++) {
      if (!inv->Present(i) || b.ts()[i] >= f.end_ms) continue;
      const std::string id = inv->Get(i).AsString();
      auto [it, fresh] = dids.try_emplace(id, -1);
      if (fresh && find) it->second = find(id);
      if (it->second < 0 || static_cast<size_t>(it->second) >= pt.size()) continue;
      const uint32_t inviter = pt.PersonOf(static_cast<uint32_t>(it->second));
      const uint32_t invitee = pt.PersonOf(b.did()[i]);
      if (inviter != invitee) invited.emplace_back(inviter, invitee);
    }
  }
  std::sort(invited.begin(), invited.end());
  invited.erase(std::unique(invited.begin(), invited.end()), invited.end());
  std::vector<uint32_t> invitees(pt.size(), 0);
  for (const auto& [a, b] : invited) invitees[a]++;
  for (uint32_t p = 0; p < f.size(); p++) {
    if (!f.Has(p)) continue;
    out[p] = invitees[p] >= static_cast<uint32_t>(s.spreader_invitees) ? 0 : (shares[p] > 0 || invitees[p] > 0) ? 1 : 2;
  }
}

std::shared_ptr<const PersonTiers> ComputeTiers(const StoreSnapshot& snap, const TimeZone& tz, const PeopleSettings& s,
                                                int32_t as_of_day, const DistinctIdFinder& find) {
  auto facts = GetPersonFacts(snap, tz, s, as_of_day);
  auto t = std::make_shared<PersonTiers>();
  t->as_of_day = as_of_day;
  for (auto& v : t->level) v.assign(facts->size(), -1);
  ValueTier(*facts, s, t->level[0]);
  ActivityTier(snap, tz, *facts, s, t->level[1]);
  NeedTier(snap, *facts, s, t->level[2]);
  SocialTier(snap, *facts, s, find, t->level[3]);
  return t;
}

}  // namespace

bool ParseTierDimension(std::string_view s, TierDimension* out) {
  for (int d = 0; d < kTierDimensions; d++)
    if (s == kNames[d]) {
      *out = static_cast<TierDimension>(d);
      return true;
    }
  return false;
}

std::string_view TierDimensionName(TierDimension d) { return kNames[static_cast<int>(d)]; }

const std::array<std::string_view, 3>& TierLevels(TierDimension d) { return kLevels[static_cast<int>(d)]; }

std::shared_ptr<const PersonTiers> GetPersonTiers(const StoreSnapshot& snap, const TimeZone& tz,
                                                  const PeopleSettings& settings, int32_t as_of_day,
                                                  const DistinctIdFinder& find) {
  struct Key {
    SnapshotState state;
    std::string settings, tz;
    int32_t day = 0;
    bool operator==(const Key&) const = default;
  };
  static SnapshotCache<Key, PersonTiers> cache(4);
  Key key{SnapshotState::Of(snap), settings.ToJson().dump(), tz.name(), as_of_day};
  if (auto hit = cache.Find([&](const Key& k) { return k == key; })) return hit;
  auto tiers = ComputeTiers(snap, tz, settings, as_of_day, find);
  cache.Put(std::move(key), tiers);
  return tiers;
}

}  // namespace ns
