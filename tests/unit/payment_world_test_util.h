// The random payment histories of the person-model reference tests (clv, person_models): persons
// with anonymous, identified and second-device ids merged by logins and aliases, payments with
// amounts (numbers, numeric text, junk, none) and order ids, timestamps on and around local
// midnights and equal to earlier ones, delivered shuffled with retries in two phases; and the
// naive world (union-find of ids, local days) the references read.
#pragma once

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reference_test_util.h"
#include "storage/event.h"

namespace ns {

struct PEvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::vector<std::string> merge_with;
  std::optional<PropValue> amount_prop, order_prop;
  double amount = 0;                 // what the amount is worth, decided when it was made
  std::optional<std::string> order;  // the order it belongs to, decided when it was made
  std::optional<std::string> channel, plan;
  int day = 0;  // local day, filled by World::Finish
};

struct World {
  const date::time_zone* zone = nullptr;
  std::vector<PEvent> events;  // stored (deduplicated) events
  std::map<std::string, std::string> parent;
  std::map<std::string, std::string> plan;  // person root -> plan

  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  void Finish() {
    for (auto& e : events) {
      Root(e.did);
      for (auto& o : e.merge_with) {
        std::string a = Root(e.did), b = Root(o);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
      }
    }
    for (auto& e : events) {
      e.day = LocalDay(zone, e.ts);
      if (e.plan) plan[Root(e.did)] = *e.plan;
    }
  }
};

struct PaymentHistory {
  const date::time_zone* zone = nullptr;
  int day0 = 0, span = 0, persons = 0, nevents = 0;  // 160 local days from 2025-01-01
  std::vector<PEvent> sent;                          // the events as made, one per uuid
  std::vector<PEvent> deliveries;                    // as the store receives them: shuffled, some repeated
  size_t cut = 0;                                    // the store takes deliveries [0, cut) first, then the rest

  // The naive world after the first `upto` deliveries (deduplicated by uuid).
  World WorldOf(size_t upto) const {
    World w;
    w.zone = zone;
    std::set<std::string> seen;
    for (size_t i = 0; i < upto; i++)
      if (seen.insert(deliveries[i].uuid).second) w.events.push_back(deliveries[i]);
    w.Finish();
    return w;
  }
};

// One seed's history (New York's DST change on 2025-03-09 falls inside the 160 days).
inline PaymentHistory RandomPaymentHistory(int seed, SeedRandom& R, const date::time_zone* zone) {
  PaymentHistory h;
  h.zone = zone;
  h.day0 = static_cast<int>(date::sys_days{date::year{2025} / 1 / 1}.time_since_epoch().count());
  h.span = 160;
  h.persons = R(2, 30);
  h.nevents = R(40, 400);
  auto pid_name = [](char kind, int p) { return std::string(1, kind) + std::to_string(p); };
  std::vector<PEvent>& sent = h.sent;
  const int day0 = h.day0, span = h.span, persons = h.persons, nevents = h.nevents;
  for (int i = 0; i < nevents; i++) {
    PEvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(i);
    const int p = R(1, persons);
    const int roll = R(0, 99);
    const int kind_roll = R(0, 99);
    e.did = pid_name(kind_roll < 50 ? 'u' : kind_roll < 85 ? 'a' : 'd', p);
    // Timestamps: anywhere in a day; around local midnight; equal to an earlier event's.
    const int tr = R(0, 99);
    const int day = day0 + R(0, span - 1);
    if (tr < 50 || sent.empty()) {
      e.ts = LocalMidnight(zone, day) + R(0, 86'399'999);
    } else if (tr < 75) {
      static const int64_t kOff[] = {-1, 0, 1, -1000, 999};
      e.ts = LocalMidnight(zone, day) + kOff[R(0, 4)];
    } else {
      e.ts = sent[static_cast<size_t>(R(0, static_cast<int>(sent.size()) - 1))].ts;
    }
    if (R(0, 3)) e.channel = std::string(1, static_cast<char>('a' + R(0, 2)));
    if (roll < 8) {
      // A login: the anonymous or second device id is the same person.
      e.event = "$identify";
      e.did = pid_name('u', p);
      std::string anon = pid_name(R(0, 2) ? 'a' : 'd', p);
      e.merge_with.push_back(anon);
    } else if (roll < 10 && p + 2 <= persons) {
      // Two identified persons joined (trusted, as an import is): the same plan parity.
      e.event = "$create_alias";
      e.did = pid_name('u', p);
      e.merge_with.push_back(pid_name('u', p + 2));
    } else if (roll < 50) {
      e.event = "pay";
      const int a = R(0, 99);
      const int k = R(-4, 400);  // halves: sums are exact, so ties stay ties
      const double v = k * 0.5;
      if (a < 45) {
        e.amount_prop = PropValue::Num(v);
        e.amount = v;
      } else if (a < 65) {
        e.amount_prop = PropValue::Str((k < 0 ? "-" : "") + std::to_string(std::abs(k) / 2) + (k % 2 ? ".5" : ""));
        e.amount = v;
      } else if (a < 80) {
        static const char* kText[] = {"abc", "12abc", "", "1,5", " 7", "NaN", "inf", "-"};
        e.amount_prop = PropValue::Str(kText[R(0, 7)]);
        e.amount = 0;
      }  // else: no amount
      const int o = R(0, 99);
      if (o < 50) {
        e.order = "o" + std::to_string(R(1, 6));
        e.order_prop = PropValue::Str(*e.order);
      } else if (o < 60) {
        const int n = R(1001, 1004);
        e.order = std::to_string(n);
        e.order_prop = PropValue::Num(n);
      } else if (o < 63) {
        e.order_prop = PropValue::Str("");  // an empty order id: no order id
      }
    } else {
      e.event = roll < 85 ? "view" : "signup";
    }
    if (R(0, 9) == 0 && e.did[0] == 'u') e.plan = p % 2 ? "pro" : "free";
    sent.push_back(e);
  }
  // Deliveries: shuffled, some repeated (retries); the store sees them in two phases.
  std::vector<PEvent>& deliveries = h.deliveries;
  deliveries = sent;
  for (int i = 0; i < nevents / 10; i++) deliveries.push_back(sent[R.rng() % sent.size()]);
  std::shuffle(deliveries.begin(), deliveries.end(), R.rng);
  h.cut = deliveries.size() * static_cast<size_t>(R(40, 80)) / 100;
  return h;
}

}  // namespace ns
