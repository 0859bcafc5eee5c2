#include "query/person_facts.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "query/json_fields.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

const std::vector<PeopleSettings::EventSetting>& PeopleSettings::EventSettings() {
  static const std::vector<EventSetting> kList = {
      {"pay_event", "pay", &PeopleSettings::pay_event},
      {"share_event", "share", &PeopleSettings::share_event},
      {"cart_event", "add_to_cart", &PeopleSettings::cart_event},
      {"view_event", "product_click", &PeopleSettings::view_event},
      {"register_event", "register", &PeopleSettings::register_event},
      {"coupon_use_event", "coupon_use", &PeopleSettings::coupon_use_event},
      {"coupon_receive_event", "coupon_receive", &PeopleSettings::coupon_receive_event},
      {"check_in_event", "check_in", &PeopleSettings::check_in_event},
      {"review_event", "review", &PeopleSettings::review_event},
      {"refund_event", "refund", &PeopleSettings::refund_event},
      {"search_event", "search", &PeopleSettings::search_event},
      {"invite_accept_event", "invite_accept", &PeopleSettings::invite_accept_event},
      {"invite_send_event", "invite_send", &PeopleSettings::invite_send_event},
  };
  return kList;
}

StatusOr<std::vector<RewardTier>> ParseRewardTiers(const json& j, const std::string& field) {
  if (!j.is_array() || j.size() > 20)
    return InvalidArgument(field + ": expected an array of at most 20 tiers {\"invitees\": N, \"reward\": \"...\"}",
                           field);
  std::vector<RewardTier> out;
  for (size_t i = 0; i < j.size(); i++) {
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (!j[i].is_object()) return InvalidArgument(f + ": expected {\"invitees\": N, \"reward\": \"...\"}", f);
    NS_RETURN_IF_ERROR(CheckFields(j[i], f, {"invitees", "reward"}));
    if (!j[i].contains("invitees")) return InvalidArgument(f + ".invitees: required field is missing", f + ".invitees");
    NS_ASSIGN_OR_RETURN(int64_t n, GetInt(j[i], "invitees", f, 1, 1, 1000000));
    NS_ASSIGN_OR_RETURN(std::string reward, GetString(j[i], "reward", f, true));
    if (reward.empty() || reward.size() > 100)
      return InvalidArgument(f + ".reward: expected 1 to 100 bytes of text", f + ".reward");
    if (!out.empty() && n <= out.back().invitees)
      return InvalidArgument(f + ".invitees: tiers must have strictly increasing invitees (" +
                                 std::to_string(out.back().invitees) + " before " + std::to_string(n) + ")",
                             f + ".invitees");
    out.push_back(RewardTier{static_cast<int>(n), std::move(reward)});
  }
  return out;
}

json RewardTiersJson(const std::vector<RewardTier>& tiers) {
  json out = json::array();
  for (const RewardTier& t : tiers) out.push_back({{"invitees", t.invitees}, {"reward", t.reward}});
  return out;
}

StatusOr<PeopleSettings> PeopleSettings::FromJson(const json& j, const PeopleSettings& base) {
  if (!j.is_object()) return InvalidArgument("settings: expected a JSON object", "settings");
  NS_RETURN_IF_ERROR(CheckFields(
      j, "",
      {"pay_event", "amount_property", "order_property", "new_days", "active_days", "churn_days", "masked_properties",
       "value_high_percentile", "value_high_min_orders", "core_active_days", "product_property", "category_property",
       "loyal_min_orders", "loyal_share", "impulse_minutes", "share_event", "inviter_property", "spreader_invitees",
       // the other events of EventSettings()
       "cart_event", "view_event", "register_event", "coupon_use_event", "coupon_receive_event", "check_in_event",
       "review_event", "refund_event", "search_event", "invite_accept_event", "invite_send_event",
       // the referral graph's
       "device_property", "ip_property", "referral_reward_tiers"}));
  PeopleSettings s = base;
  NS_ASSIGN_OR_RETURN(s.pay_event, GetString(j, "pay_event", "", false, base.pay_event));
  NS_ASSIGN_OR_RETURN(s.amount_property, GetString(j, "amount_property", "", false, base.amount_property));
  NS_ASSIGN_OR_RETURN(s.order_property, GetString(j, "order_property", "", false, base.order_property));
  if (s.pay_event.empty()) return InvalidArgument("pay_event: must not be empty", "pay_event");
  if (s.amount_property.empty()) return InvalidArgument("amount_property: must not be empty", "amount_property");
  NS_ASSIGN_OR_RETURN(int64_t nd, GetInt(j, "new_days", "", base.new_days, 1, 3650));
  NS_ASSIGN_OR_RETURN(int64_t ad, GetInt(j, "active_days", "", base.active_days, 1, 3650));
  NS_ASSIGN_OR_RETURN(int64_t cd, GetInt(j, "churn_days", "", base.churn_days, 1, 3650));
  if (cd <= ad)
    return InvalidArgument(
        "churn_days: must be more than active_days (" + std::to_string(ad) + "), got " + std::to_string(cd),
        "churn_days");
  struct IntField {
    const char* key;
    int* out;
    int64_t lo, hi;
  };
  for (const IntField& f :
       {IntField{"value_high_percentile", &s.value_high_percentile, 1, 99},
        IntField{"value_high_min_orders", &s.value_high_min_orders, 1, 1000},
        IntField{"core_active_days", &s.core_active_days, 1, 30},
        IntField{"loyal_min_orders", &s.loyal_min_orders, 1, 1000}, IntField{"loyal_share", &s.loyal_share, 1, 100},
        IntField{"impulse_minutes", &s.impulse_minutes, 0, 100000},
        IntField{"spreader_invitees", &s.spreader_invitees, 1, 100000}}) {
    NS_ASSIGN_OR_RETURN(int64_t v, GetInt(j, f.key, "", *f.out, f.lo, f.hi));
    *f.out = static_cast<int>(v);
  }
  struct StrField {
    const char* key;
    std::string* out;
  };
  std::vector<StrField> names = {
      StrField{"product_property", &s.product_property}, StrField{"category_property", &s.category_property},
      StrField{"inviter_property", &s.inviter_property}, StrField{"device_property", &s.device_property},
      StrField{"ip_property", &s.ip_property}};
  for (const EventSetting& e : EventSettings())
    if (e.member != &PeopleSettings::pay_event) names.push_back(StrField{e.key, &(s.*e.member)});
  for (const StrField& f : names) {
    NS_ASSIGN_OR_RETURN(*f.out, GetString(j, f.key, "", false, *f.out));
    if (f.out->empty()) return InvalidArgument(std::string(f.key) + ": must not be empty", f.key);
  }
  if (s.invite_accept_event == s.invite_send_event)
    return InvalidArgument("invite_send_event: must differ from invite_accept_event ('" + s.invite_accept_event + "')",
                           "invite_send_event");
  if (auto it = j.find("referral_reward_tiers"); it != j.end()) {
    NS_ASSIGN_OR_RETURN(s.referral_reward_tiers, ParseRewardTiers(*it, "referral_reward_tiers"));
  }
  s.new_days = static_cast<int>(nd);
  s.active_days = static_cast<int>(ad);
  s.churn_days = static_cast<int>(cd);
  if (auto it = j.find("masked_properties"); it != j.end()) {
    if (!it->is_array())
      return InvalidArgument("masked_properties: expected an array of property names", "masked_properties");
    s.masked_properties.clear();
    for (size_t i = 0; i < it->size(); i++) {
      const json& v = (*it)[i];
      std::string f = "masked_properties[" + std::to_string(i) + "]";
      if (!v.is_string() || v.get_ref<const std::string&>().empty())
        return InvalidArgument(f + ": expected a property name", f);
      s.masked_properties.push_back(v.get<std::string>());
    }
  }
  return s;
}

json PeopleSettings::ToJson() const {
  json j{{"pay_event", pay_event},
         {"amount_property", amount_property},
         {"order_property", order_property},
         {"new_days", new_days},
         {"active_days", active_days},
         {"churn_days", churn_days},
         {"masked_properties", masked_properties},
         {"value_high_percentile", value_high_percentile},
         {"value_high_min_orders", value_high_min_orders},
         {"core_active_days", core_active_days},
         {"product_property", product_property},
         {"category_property", category_property},
         {"loyal_min_orders", loyal_min_orders},
         {"loyal_share", loyal_share},
         {"impulse_minutes", impulse_minutes},
         {"share_event", share_event},
         {"inviter_property", inviter_property},
         {"spreader_invitees", spreader_invitees},
         {"device_property", device_property},
         {"ip_property", ip_property},
         {"referral_reward_tiers", RewardTiersJson(referral_reward_tiers)}};
  for (const EventSetting& e : EventSettings()) j[e.key] = this->*e.member;
  return j;
}

std::string PeopleSettings::FactsKey() const { return pay_event + '\x1f' + amount_property + '\x1f' + order_property; }

int64_t AsOfEndMs(const TimeZone& tz, int32_t as_of_day) { return tz.DayStartMs(as_of_day + 1); }

namespace {

// A payment row, kept for the serial order de-duplication after the parallel pass.
struct PayRow {
  uint32_t person;
  uint32_t order;  // index into BlockPays::order_ids; kNoOrder: an order by itself
  int64_t ts;
  double amount;
};
constexpr uint32_t kNoOrder = UINT32_MAX;

// One block's payments. They are kept per block and joined in block order, so a person's
// amounts are added in the same sequence whichever thread read which block: the sums (and
// RFM's quintile edges on them) do not depend on the thread count or the scheduling.
struct BlockPays {
  std::vector<PayRow> pays;
  std::vector<std::string> order_ids;  // the non-empty order ids of `pays`
};

struct Partial {
  std::vector<int64_t> first, last;
  std::vector<uint32_t> events;
};

}  // namespace

std::shared_ptr<const PersonFacts> ComputePersonFacts(const StoreSnapshot& snap, const TimeZone& tz,
                                                      const PeopleSettings& settings, int32_t as_of_day,
                                                      std::optional<int32_t> pay_from_day, bool payments_only) {
  auto facts = std::make_shared<PersonFacts>();
  const PersonTable& pt = *snap.persons;
  const size_t n = pt.size();
  facts->as_of_day = as_of_day;
  facts->end_ms = AsOfEndMs(tz, as_of_day);
  const int64_t end_ms = facts->end_ms;
  const int64_t pay_from_ms = pay_from_day ? tz.DayStartMs(*pay_from_day) : std::numeric_limits<int64_t>::min();
  const EventMatcher pay = EventMatcher::Make(settings.pay_event, *snap.events);

  // Blocks are shared out to threads; each keeps its own arrays (merged below), so no row
  // takes a lock. Few threads for few persons: the arrays are the cost then.
  const int threads = std::max(1, std::min<int>(QueryThreads(), static_cast<int>(snap.blocks.size())));
  std::vector<Partial> parts(static_cast<size_t>(threads));
  std::vector<BlockPays> block_pays(snap.blocks.size());
  std::atomic<size_t> next{0};
  auto work = [&](int t) {
    Partial& P = parts[static_cast<size_t>(t)];
    if (!payments_only) {  // rfm needs none of these: no arrays over every person per thread
      P.first.assign(n, std::numeric_limits<int64_t>::max());
      P.last.assign(n, std::numeric_limits<int64_t>::min());
      P.events.assign(n, 0);
    }
    const auto& po = pt.person_of();
    for (size_t b; (b = next.fetch_add(1)) < snap.blocks.size();) {
      const Block& blk = *snap.blocks[b];
      const RetireWhenDone done(blk, snap.reader_epoch);  // read once: freed now if over the budget
      if (blk.size() == 0 || blk.min_ts() >= end_ms) continue;
      if (payments_only && (!pay.MayMatch(blk) || pay.any)) continue;  // no column of it is read
      const auto& did = blk.did();
      const auto& ts = blk.ts();
      for (size_t i = 0; !payments_only && i < blk.size(); i++) {
        if (ts[i] >= end_ms) continue;
        const uint32_t d = did[i];
        const uint32_t p = d < po.size() ? po[d] : d;
        if (p >= n) continue;  // newer than the snapshot's person table
        P.first[p] = std::min(P.first[p], ts[i]);
        P.last[p] = std::max(P.last[p], ts[i]);
        P.events[p]++;
      }
      if (!pay.MayMatch(blk) || pay.any) continue;
      auto [rb, re] = blk.EventRows(pay.code);
      BlockPays& B = block_pays[b];
      B.pays.reserve(static_cast<size_t>(re - rb));
      const PropColumn* amount = blk.prop(settings.amount_property);
      const PropColumn* order = settings.order_property.empty() ? nullptr : blk.prop(settings.order_property);
      for (const uint32_t* r = rb; r < re; r++) {
        // Payments are scattered over the block: ask for the rows a few ahead early.
        if (r + 16 < re) {
          __builtin_prefetch(&ts[r[16]]);
          __builtin_prefetch(&did[r[16]]);
          if (amount && amount->numeric) amount->PrefetchNum(r[16]);
        }
        if (ts[*r] >= end_ms || ts[*r] < pay_from_ms) continue;
        const uint32_t d = did[*r];
        const uint32_t p = d < po.size() ? po[d] : d;
        if (p >= n) continue;
        double a = 0;
        // Text that is not a finite number (GetNum refuses "nan", "inf") counts 0.
        if (amount && !amount->GetNum(*r, &a)) a = 0;
        uint32_t o = kNoOrder;
        if (order && order->Present(*r)) {
          std::string id = order->Get(*r).AsString();
          if (!id.empty()) {
            o = static_cast<uint32_t>(B.order_ids.size());
            B.order_ids.push_back(std::move(id));
          }
        }
        B.pays.push_back(PayRow{p, o, ts[*r], a});
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();

  Partial& A = parts[0];
  for (size_t t = 1; t < parts.size(); t++) {
    Partial& B = parts[t];
    for (size_t p = 0; p < n && !payments_only; p++) {
      if (!B.events[p]) continue;
      A.first[p] = std::min(A.first[p], B.first[p]);
      A.last[p] = std::max(A.last[p], B.last[p]);
      A.events[p] += B.events[p];
    }
    B.first = B.last = {};
    B.events = {};
  }
  facts->first_ts = std::move(A.first);
  facts->last_ts = std::move(A.last);
  facts->events = std::move(A.events);
  if (payments_only) facts->events.assign(n, 0);  // size() is the person count
  for (size_t p = 0; p < n; p++) facts->active_persons += facts->events[p] > 0;

  // Orders: one per (person, order id); an event without an order id is its own order.
  facts->orders.assign(n, 0);
  facts->monetary.assign(n, 0);
  facts->last_pay_ts.assign(n, std::numeric_limits<int64_t>::min());
  std::unordered_map<std::string, double> order_amount;  // "person\x1forder" -> largest amount
  for (const BlockPays& P : block_pays) {                // in block order, as one list
    for (const PayRow& r : P.pays) {
      facts->last_pay_ts[r.person] = std::max(facts->last_pay_ts[r.person], r.ts);
      if (r.order == kNoOrder) {
        facts->orders[r.person]++;
        facts->monetary[r.person] += r.amount;
        continue;
      }
      auto [it, fresh] = order_amount.try_emplace(std::to_string(r.person) + '\x1f' + P.order_ids[r.order], r.amount);
      if (fresh) {
        facts->orders[r.person]++;
      } else {
        it->second = std::max(it->second, r.amount);
      }
    }
  }
  for (const auto& [key, amount] : order_amount) {
    uint32_t p = static_cast<uint32_t>(std::stoul(key.substr(0, key.find('\x1f'))));
    facts->monetary[p] += amount;
  }
  return facts;
}

namespace {

struct FactsKey {
  SnapshotState state;
  std::string settings, tz;
  int32_t as_of_day = 0;
  std::optional<int32_t> pay_from_day;
  bool payments_only = false;
  bool operator==(const FactsKey&) const = default;
};

}  // namespace

std::shared_ptr<const PersonFacts> GetPersonFacts(const StoreSnapshot& snap, const TimeZone& tz,
                                                  const PeopleSettings& settings, int32_t as_of_day,
                                                  std::optional<int32_t> pay_from_day, bool payments_only) {
  static SnapshotCache<FactsKey, PersonFacts> cache(4);
  FactsKey key{SnapshotState::Of(snap), settings.FactsKey(), tz.name(), as_of_day, pay_from_day, payments_only};
  FactsKey full = key;  // full facts answer a payments-only ask too
  full.payments_only = false;
  if (auto hit = cache.Find([&](const FactsKey& k) { return k == key || (payments_only && k == full); })) return hit;
  auto facts = ComputePersonFacts(snap, tz, settings, as_of_day, pay_from_day, payments_only);
  cache.Put(std::move(key), facts);
  return facts;
}

std::string_view LifecycleStage(const PersonFacts& f, const PeopleSettings& s, const TimeZone& tz, uint32_t person) {
  if (!f.Has(person)) return "";
  const int32_t first_day = tz.LocalDay(f.first_ts[person]);
  if (f.as_of_day - first_day < s.new_days) return "new";
  const int32_t idle = f.as_of_day - tz.LocalDay(f.last_ts[person]);
  if (idle < s.active_days) return "active";
  if (idle < s.churn_days) return "silent";
  return "churned";
}

}  // namespace ns
