// Per-person facts as of a date: what the person-level models (RFM, lifecycle, cohorts'
// model conditions, the person page) are computed from. One pass over the snapshot's rows
// (in parallel over blocks) builds dense arrays indexed by person id; the result is cached
// per (snapshot, settings, as-of) so the person page, the cohort evaluator and the rfm
// query asked of one state of the store share one pass.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

// A reward of the referral programme: due once an inviter has brought `invitees` invitees
// (docs/queries.md "Referral").
struct RewardTier {
  int invitees = 1;
  std::string reward;
  bool operator==(const RewardTier&) const = default;
};
// A list of tiers: 0 to 20 objects {"invitees": 1..1000000, "reward": text of 1..100 bytes}
// with strictly increasing invitees; errors name `field` ("referral_reward_tiers[1].invitees").
StatusOr<std::vector<RewardTier>> ParseRewardTiers(const nlohmann::json& j, const std::string& field);
nlohmann::json RewardTiersJson(const std::vector<RewardTier>& tiers);

// A project's settings of the person-level models (docs/people.md "Settings").
struct PeopleSettings {
  std::string pay_event = "pay";            // which event is a payment
  std::string amount_property = "amount";   // its amount (a number, or numeric text)
  std::string order_property = "order_id";  // when present, events of one order count once
  int new_days = 7;                         // lifecycle: first seen within the last N days
  int active_days = 30;                     // active: last seen within the last N days
  int churn_days = 90;                      // silent up to N days without events, churned beyond
  // The four tiers (people/tiers.h; docs/people.md "Tiers").
  int value_high_percentile = 80;  // value: high = spend at or above this percentile of payers...
  int value_high_min_orders = 2;   // ...and at least this many orders
  int core_active_days = 10;       // activity: core = active on at least N of the last 30 days
  std::string product_property = "product_id";
  std::string category_property = "category";
  int loyal_min_orders = 3;  // need: loyal = at least N orders...
  int loyal_share = 60;      // ...with the favourite category (or product) at least this % of them
  int impulse_minutes = 30;  // need: impulse = median minutes from first view to purchase at most N
  std::string share_event = "share";
  std::string inviter_property = "inviter_id";  // on an invitee's events: the inviter's distinct id
  int spreader_invitees = 3;                    // social: spreader = brought at least N invitees
  // The other events the built-in tags count (people/tags.h): a project that names them
  // otherwise sets its names here, as it does pay_event and share_event.
  std::string cart_event = "add_to_cart";
  std::string view_event = "product_click";  // looking at a product (browsed_not_carted_7d)
  std::string register_event = "register";
  std::string coupon_use_event = "coupon_use";
  std::string coupon_receive_event = "coupon_receive";
  std::string check_in_event = "check_in";
  std::string review_event = "review";
  std::string refund_event = "refund";
  std::string search_event = "search";
  // The referral graph (query/referral.h): an invite_accept event carrying inviter_property
  // is an invitation accepted; invite_send events count invitations sent; the device and IP
  // properties of the accept feed the shared-device / shared-IP fraud flags.
  std::string invite_accept_event = "invite_accept";
  std::string invite_send_event = "invite_send";
  std::string device_property = "$device_id";
  std::string ip_property = "$ip";
  std::vector<RewardTier> referral_reward_tiers = {{1, "coupon"}, {3, "gift"}, {10, "VIP"}};
  // Person and event properties shown masked to every role but admin.
  std::vector<std::string> masked_properties = {"phone", "mobile", "email", "id_card", "$ip"};

  // Every event setting: its JSON key, its default (the name the built-in rule tags are
  // written with) and the member. pay_event and share_event included.
  struct EventSetting {
    const char* key;
    const char* default_name;
    std::string PeopleSettings::*member;
  };
  static const std::vector<EventSetting>& EventSettings();

  // Validates every field (errors name it); fields left out keep `base`'s value.
  static StatusOr<PeopleSettings> FromJson(const nlohmann::json& j, const PeopleSettings& base);
  nlohmann::json ToJson() const;
  // A key of the settings the facts depend on (cache key).
  std::string FactsKey() const;
};

// The state of a store a cached answer was computed on: its blocks (held, so an address is
// never reused while cached) and the person table's version and size. Any acknowledged event
// changes it, so an answer cached under it is never stale.
struct SnapshotState {
  std::vector<std::shared_ptr<const Block>> blocks;
  uint64_t persons_version = 0;
  size_t persons = 0;
  uint64_t computed_version = 0;  // the models' person columns (PersonTable::computed_version)
  static SnapshotState Of(const StoreSnapshot& snap) {
    return {snap.blocks, snap.persons->version, snap.persons->size(), snap.persons->computed_version};
  }
  bool operator==(const SnapshotState&) const = default;
};

// The few newest answers computed from snapshots (the facts, the tiers), thread-safe.
template <typename Key, typename Value>
class SnapshotCache {
 public:
  explicit SnapshotCache(size_t capacity) : capacity_(capacity) {}
  // The newest entry whose key satisfies `match`, or null.
  template <typename Match>
  std::shared_ptr<const Value> Find(Match&& match) {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
      if (match(it->first)) return it->second;
    return nullptr;
  }
  void Put(Key key, std::shared_ptr<const Value> value) {
    std::lock_guard<std::mutex> l(mu_);
    entries_.emplace_back(std::move(key), std::move(value));
    if (entries_.size() > capacity_) entries_.erase(entries_.begin());
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::vector<std::pair<Key, std::shared_ptr<const Value>>> entries_;  // newest last
};

// The end of local day `as_of_day` in UTC ms (exclusive): facts "as of" a date count every
// event before it.
int64_t AsOfEndMs(const TimeZone& tz, int32_t as_of_day);

struct PersonFacts {
  int32_t as_of_day = 0;
  int64_t end_ms = 0;  // rows with ts < end_ms counted
  // Indexed by person id; a person with events == 0 has no rows before end_ms (or is not a
  // person: merged into another).
  std::vector<int64_t> first_ts, last_ts;
  std::vector<uint32_t> events;
  // Payments: orders (events of one order_id counted once), their amounts summed (an
  // order's amount is the largest among its events), the last payment's time.
  std::vector<uint32_t> orders;
  std::vector<double> monetary;
  std::vector<int64_t> last_pay_ts;
  size_t active_persons = 0;  // persons with events > 0

  size_t size() const { return events.size(); }
  bool Has(uint32_t p) const { return p < events.size() && events[p] > 0; }
  bool Paid(uint32_t p) const { return p < orders.size() && orders[p] > 0; }
};

// The facts of every person of `snap` as of the end of local day `as_of_day`. Cached: the
// same snapshot state, settings and day answer the same object.
// With `pay_from_day`, only payments on or after that local day count (rfm's date_from).
// `payments_only` (rfm) skips every row but the payments: first/last seen and event counts
// stay zero, so Has() is false; the payment facts are the same.
std::shared_ptr<const PersonFacts> GetPersonFacts(const StoreSnapshot& snap, const TimeZone& tz,
                                                  const PeopleSettings& settings, int32_t as_of_day,
                                                  std::optional<int32_t> pay_from_day = std::nullopt,
                                                  bool payments_only = false);
// Uncached (tests, and the cache's miss path).
std::shared_ptr<const PersonFacts> ComputePersonFacts(const StoreSnapshot& snap, const TimeZone& tz,
                                                      const PeopleSettings& settings, int32_t as_of_day,
                                                      std::optional<int32_t> pay_from_day = std::nullopt,
                                                      bool payments_only = false);

// Lifecycle stage of a person as of facts.as_of_day (docs/people.md): "new", "active",
// "silent" or "churned"; "" if the person has no events before then.
std::string_view LifecycleStage(const PersonFacts& facts, const PeopleSettings& s, const TimeZone& tz, uint32_t person);

}  // namespace ns
