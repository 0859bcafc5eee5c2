// The referral query kind against a deliberately naive reference written here from
// docs/queries.md "Referral": plain loops over a vector of events, persons by a union-find
// over distinct ids, local days from the date library (not ns::TimeZone), each edge's
// flags tested one definition at a time (a cycle by walking up, a burst by trying every
// window start). Random data on 240 seeds: invite_accept events whose inviter is another
// person, the invitee themself (also only after a merge that arrives later), an id the
// store never saw, empty or missing; invitees who accepted twice; cycles; device ids and IPs
// shared by invitees; bursts of accepts for one inviter; invitees with no later activity;
// identity merges after the fact ($identify, $create_alias joining two persons); equal
// timestamps and events a millisecond either side of local midnight (Asia/Shanghai; some
// seeds America/New_York across a DST change); other event and property names; other fraud
// thresholds and reward tiers; empty ranges; the inviters' pages followed by cursor; the
// referral KPI reduce (k_factor, referral_share with and without flagged edges) as its parts;
// and the per-person referral attributes of the models layer (invitees, referred_by, generation).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "models/referral_attributes.h"
#include "ops/kpi_reducers.h"
#include "people_test_util.h"
#include "query/person_facts.h"
#include "query/query_kind.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

struct REvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::vector<std::string> merge_with;
  std::vector<std::pair<std::string, PropValue>> props;
  const PropValue* Prop(const std::string& k) const {
    for (auto& [key, v] : props)
      if (key == k) return &v;
    return nullptr;
  }
};

struct Names {
  std::string accept = "invite_accept", send = "invite_send", inviter = "inviter_id", device = "$device_id", ip = "$ip";
};

struct Rules {
  int device_min = 3, ip_min = 5, burst_n = 5, burst_min = 10;
};

struct NEdge {
  std::string invitee, inviter, inviter_id, device, ip;  // nodes: "P:<root>" / "U:<id>"
  int64_t ts = 0;
  std::set<std::string> reasons;
};

struct World {
  std::vector<REvent> events;
  std::map<std::string, std::string> parent;
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
  }
};

std::string Text(const PropValue* v) {
  if (!v) return "";
  if (v->kind == PropValue::kStr) return v->str;
  return PropValue(*v).AsString();
}

// Every edge of the graph as of `end`, with its reasons, by invitee node.
std::map<std::string, NEdge> NaiveEdges(World& w, const Names& nm, const Rules& r, int64_t end) {
  std::map<std::string, NEdge> best;
  for (const REvent& e : w.events) {
    if (e.event != nm.accept || e.ts >= end) continue;
    NEdge x;
    x.inviter_id = Text(e.Prop(nm.inviter));
    if (x.inviter_id.empty()) continue;
    x.invitee = "P:" + w.Root(e.did);
    x.ts = e.ts;
    x.device = Text(e.Prop(nm.device));
    x.ip = Text(e.Prop(nm.ip));
    x.inviter = w.parent.count(x.inviter_id) ? "P:" + w.Root(x.inviter_id) : "U:" + x.inviter_id;
    auto it = best.find(x.invitee);
    if (it == best.end() || std::tie(x.ts, x.inviter_id, x.device, x.ip) <
                                std::tie(it->second.ts, it->second.inviter_id, it->second.device, it->second.ip))
      best[x.invitee] = x;
  }
  const size_t nodes = best.size() + 2;
  for (auto& [v, e] : best) {
    if (e.inviter == e.invitee) e.reasons.insert("self_invite");
    // cycle: walking up from the inviter comes back to the invitee
    std::string u = e.inviter;
    for (size_t step = 0; step <= nodes && u != e.invitee; step++) {
      auto it = best.find(u);
      if (it == best.end()) break;
      u = it->second.inviter;
    }
    if (u == e.invitee && e.inviter != e.invitee) e.reasons.insert("cycle");
    size_t same_device = 0, same_ip = 0;
    for (auto& [v2, f] : best) {
      same_device += !e.device.empty() && f.device == e.device;
      same_ip += !e.ip.empty() && f.ip == e.ip;
    }
    if (same_device >= static_cast<size_t>(r.device_min)) e.reasons.insert("shared_device");
    if (same_ip >= static_cast<size_t>(r.ip_min)) e.reasons.insert("shared_ip");
    const int64_t win = static_cast<int64_t>(r.burst_min) * 60'000;
    for (auto& [v2, s] : best) {
      if (s.inviter != e.inviter || s.ts > e.ts || e.ts > s.ts + win) continue;
      int n = 0;
      for (auto& [v3, f] : best) n += f.inviter == e.inviter && f.ts >= s.ts && f.ts <= s.ts + win;
      if (n >= r.burst_n) e.reasons.insert("burst");
    }
    bool later = false;
    for (const REvent& x : w.events) later |= "P:" + w.Root(x.did) == e.invitee && x.ts > e.ts && x.ts < end;
    if (!later) e.reasons.insert("no_activity");
  }
  return best;
}

// depth -> invitees, and the no-root count, over the edges `keep` accepts.
std::pair<std::map<int, int>, int> NaiveDepths(const std::map<std::string, NEdge>& edges, bool clean_only) {
  auto kept = [&](const std::string& v) -> const NEdge* {
    auto it = edges.find(v);
    if (it == edges.end() || (clean_only && !it->second.reasons.empty())) return nullptr;
    return &it->second;
  };
  std::map<int, int> depth;
  int no_root = 0;
  for (auto& [v, e] : edges) {
    if (!kept(v)) continue;
    int d = 0;
    std::string u = v;
    while (const NEdge* k = kept(u)) {
      d++;
      u = k->inviter;
      if (d > static_cast<int>(edges.size()) + 1) break;
    }
    if (d > static_cast<int>(edges.size())) {
      no_root++;
    } else {
      depth[d]++;
    }
  }
  return {depth, no_root};
}

json NRatio(double a, double b) { return b > 0 ? json(a / b) : json(nullptr); }

class ReferralReference : public ::testing::TestWithParam<int> {};

TEST_P(ReferralReference, MatchesNaive) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 7919 + 13);
  const std::string zone_name = seed % 4 == 3 ? "America/New_York" : "Asia/Shanghai";
  const date::time_zone* zone = date::locate_zone(zone_name);
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());

  Names nm;
  PeopleSettings ps;
  if (seed % 5 == 2) {
    nm = Names{"accepted", "invited", "referrer", "dev", "ip_addr"};
    ps.invite_accept_event = nm.accept;
    ps.invite_send_event = nm.send;
    ps.inviter_property = nm.inviter;
    ps.device_property = nm.device;
    ps.ip_property = nm.ip;
  }
  Rules rules;
  json request_rules;
  if (seed % 3 != 0) {
    rules = Rules{R(2, 4), R(2, 5), R(2, 5), R(0, 20)};
    request_rules = {{"shared_device_min", rules.device_min},
                     {"shared_ip_min", rules.ip_min},
                     {"burst_invitees", rules.burst_n},
                     {"burst_minutes", rules.burst_min}};
  }
  std::vector<RewardTier> tiers = ps.referral_reward_tiers;
  json request_tiers;
  if (seed % 4 == 1) {
    tiers = {{1, "t1"}, {2, "t2"}, {4, "t4"}};
    request_tiers = RewardTiersJson(tiers);
  } else if (seed % 7 == 3) {
    tiers = {};
    ps.referral_reward_tiers = {};
  }
  QueryOptions qo;
  qo.people = &ps;

  // 12 local days around New York's DST change (2025-03-09).
  const int day0 = static_cast<int>(date::sys_days{date::year{2025} / 3 / 3}.time_since_epoch().count());
  const int span = 12;
  const int persons = R(2, 14);
  const int nevents = R(20, 160);
  auto pid = [](char kind, int p) { return std::string(1, kind) + std::to_string(p); };
  auto some_id = [&] { return pid(R(0, 2) == 0 ? 'a' : 'u', R(1, persons)); };
  World w;
  auto stamp = [&]() -> int64_t {
    const int tr = R(0, 99);
    const int day = day0 + R(0, span - 1);
    if (tr < 55 || w.events.empty()) return LocalMidnight(zone, day) + R(0, 86'399'999);
    if (tr < 80) {
      static const int64_t kOff[] = {-1, 0, 1, -1000, 999};
      return LocalMidnight(zone, day) + kOff[R(0, 4)];
    }
    return w.events[static_cast<size_t>(R(0, static_cast<int>(w.events.size()) - 1))].ts;
  };
  auto accept = [&](const std::string& did, int64_t ts, const std::string& inviter) {
    REvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(w.events.size());
    e.did = did;
    e.event = nm.accept;
    e.ts = ts;
    if (!inviter.empty() || R(0, 1)) e.props.push_back({nm.inviter, PropValue::Str(inviter)});
    if (R(0, 9) < 7) e.props.push_back({nm.device, PropValue::Str("dv" + std::to_string(R(1, 3)))});
    if (R(0, 9) < 7) e.props.push_back({nm.ip, PropValue::Str("10.0.0." + std::to_string(R(1, 2)))});
    if (nm.inviter != "inviter_id" && R(0, 9) == 0)  // the default name: a plain property once renamed
      e.props.push_back({"inviter_id", PropValue::Str(some_id())});
    w.events.push_back(std::move(e));
  };
  for (int i = 0; i < nevents; i++) {
    const int p = R(1, persons);
    const int roll = R(0, 99);
    REvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(w.events.size());
    e.did = pid(R(0, 1) ? 'u' : 'a', p);
    e.ts = stamp();
    if (roll < 8) {
      e.event = "$identify";
      e.did = pid('u', p);
      e.merge_with.push_back(pid('a', p));
    } else if (roll < 11 && p + 2 <= persons) {
      e.event = "$create_alias";  // two persons become one: self-invites and cycles after the fact
      e.did = pid('u', p);
      e.merge_with.push_back(pid('u', p + 2));
    } else if (roll < 40) {
      const int ir = R(0, 19);
      const std::string inv = ir < 14 ? some_id() : ir < 16 ? e.did : ir < 18 ? "ghost" + std::to_string(R(1, 2)) : "";
      accept(e.did, e.ts, inv);
      continue;
    } else if (roll < 46) {
      // A burst: several invitees of one inviter within minutes.
      const std::string inv = some_id();
      const int k = R(2, 6);
      for (int j = 0; j < k; j++) accept(pid(R(0, 1) ? 'u' : 'a', R(1, persons)), e.ts + R(0, 15) * 60'000, inv);
      continue;
    } else if (roll < 58) {
      e.event = nm.send;
    } else {
      static const char* kOther[] = {"view", "pay", "invite_accept", "invite_send", "share"};
      e.event = kOther[R(0, 4)];
      if (R(0, 9) == 0) e.props.push_back({"inviter_id", PropValue::Str(some_id())});
    }
    w.events.push_back(std::move(e));
  }
  w.Union();

  std::vector<REvent> deliveries = w.events;
  std::shuffle(deliveries.begin(), deliveries.end(), R.rng);
  ThrowAwayStore store(static_cast<size_t>(R(3, 60)));
  ASSERT_TRUE(store.ok());
  std::vector<Event> batch;
  for (const REvent& r : deliveries) {
    Event e = StoredEvent(r.uuid, r.did, r.event, r.ts, r.merge_with);
    for (auto& [k, v] : r.props) e.props.push_back({k, v});
    batch.push_back(std::move(e));
  }
  AppendInBatches(store, std::move(batch), BatchPolicy{60, seed % 3 == 0}, R);
  if (HasFatalFailure()) return;
  auto snap = store->Snapshot();
  std::set<std::string> ids;
  for (auto& [id, par] : w.parent) ids.insert(id);
  const std::map<std::string, uint32_t> person_id =
      NaivePersonIds(*store, *snap, ids, [&](const std::string& id) { return w.Root(id); });
  if (HasFailure()) return;

  for (int round = 0; round < 2; round++) {
    const int from = day0 + R(-2, span);
    const int to = round == 0 ? from + R(0, span) : from + R(0, 2);
    const int64_t lo = LocalMidnight(zone, from), end = LocalMidnight(zone, to + 1);
    const std::string ctx = "seed " + std::to_string(seed) + " " + DayString(from) + ".." + DayString(to);

    // ---- naive ----
    const auto edges = NaiveEdges(w, nm, rules, end);
    std::map<std::string, int64_t> first;
    std::set<std::string> active;
    std::map<std::string, uint64_t> sent;
    for (const REvent& e : w.events) {
      const std::string p = "P:" + w.Root(e.did);
      if (!first.count(p) || e.ts < first[p]) first[p] = e.ts;
      if (e.ts >= lo && e.ts < end) {
        active.insert(p);
        if (e.event == nm.send) sent[p]++;
      }
    }
    uint64_t new_persons = 0, total_sent = 0;
    for (auto& [p, t] : first) new_persons += t >= lo && t < end;
    for (auto& [p, n] : sent) total_sent += n;
    struct Inv {
      uint64_t all = 0, clean = 0, sent = 0;
      std::map<std::string, uint64_t> reasons;
    };
    std::map<std::string, Inv> inv;
    for (auto& [p, n] : sent) inv[p].sent = n;
    json want_flags = json::object();
    for (const char* r : {"self_invite", "cycle", "shared_device", "shared_ip", "burst", "no_activity"})
      want_flags[r] = 0;
    uint64_t flagged = 0;
    json variants = json::object();
    for (int clean = 0; clean < 2; clean++) {
      uint64_t invitees = 0, referred = 0;
      std::set<std::string> inviters;
      for (auto& [v, e] : edges) {
        if (clean && !e.reasons.empty()) continue;
        if (first.at(v) >= lo && first.at(v) < end) referred++;
        if (e.ts < lo) continue;
        invitees++;
        inviters.insert(e.inviter);
        if (clean) continue;
        Inv& x = inv[e.inviter];
        x.all++;
        x.clean += e.reasons.empty();
        flagged += !e.reasons.empty();
        for (const std::string& r : e.reasons) {
          x.reasons[r]++;
          want_flags[r] = want_flags[r].get<uint64_t>() + 1;
        }
      }
      auto [depth, no_root] = NaiveDepths(edges, clean);
      json dj = json::array();
      for (auto& [d, n] : depth) dj.push_back({{"depth", d}, {"invitees", n}});
      variants[clean ? "without_flagged" : "with_flagged"] = {
          {"invitees", invitees},
          {"inviters", inviters.size()},
          {"referred_new_persons", referred},
          {"k_factor", NRatio(static_cast<double>(invitees), static_cast<double>(active.size()))},
          {"referral_conversion_rate", NRatio(static_cast<double>(invitees), static_cast<double>(total_sent))},
          {"referral_share", NRatio(static_cast<double>(referred), static_cast<double>(new_persons))},
          {"depth", dj},
          {"no_root", no_root}};
    }
    // Inviter rows in the documented order.
    struct Row {
      std::string id;
      uint32_t node;
      json j;
      uint64_t all, clean, sent;
    };
    std::vector<Row> rows;
    std::map<std::string, uint32_t> unknown_order;
    for (auto& [node, x] : inv) {
      Row r;
      if (node[0] == 'P') {
        r.node = person_id.at(node.substr(2));
        r.id = store->DisplayId(r.node);
      } else {
        r.id = node.substr(2);
        r.node = UINT32_MAX;
      }
      r.all = x.all;
      r.clean = x.clean;
      r.sent = x.sent;
      json fl = json::array();
      for (const char* k : {"self_invite", "cycle", "shared_device", "shared_ip", "burst", "no_activity"})
        if (x.reasons.count(k)) fl.push_back({{"reason", k}, {"invitees", x.reasons[k]}});
      const RewardTier *due = nullptr, *due_all = nullptr;
      json reached = json::array();
      for (const RewardTier& t : tiers) {
        if (static_cast<uint64_t>(t.invitees) <= x.clean) {
          due = &t;
          reached.push_back(t.reward);
        }
        if (static_cast<uint64_t>(t.invitees) <= x.all) due_all = &t;
      }
      r.j = {{"distinct_id", r.id},
             {"invitees", x.all},
             {"clean_invitees", x.clean},
             {"flagged_invitees", x.all - x.clean},
             {"invitations_sent", x.sent},
             {"reward", due ? json(due->reward) : json(nullptr)},
             {"reward_with_flagged", due_all ? json(due_all->reward) : json(nullptr)},
             {"tiers_reached", reached},
             {"flags", fl}};
      rows.push_back(std::move(r));
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      if (a.clean != b.clean) return a.clean > b.clean;
      if (a.all != b.all) return a.all > b.all;
      if (a.sent != b.sent) return a.sent > b.sent;
      return a.id < b.id;  // an unknown id equal to a person's display id: ambiguous, never generated
    });
    json want_inviters = json::array();
    for (auto& r : rows) want_inviters.push_back(r.j);

    // ---- the kind ----
    json q{{"kind", "referral"}, {"date_from", DayString(from)}, {"date_to", DayString(to)}, {"limit", 1000}};
    if (!request_rules.is_null()) q["fraud"] = request_rules;
    if (!request_tiers.is_null()) q["reward_tiers"] = request_tiers;
    auto got = RunQuery(q, *store, *tz, qo);
    ASSERT_TRUE(got.ok()) << ctx << ": " << got.status().ToString();
    const json& g = *got;
    EXPECT_EQ(g["active_persons"], active.size()) << ctx;
    EXPECT_EQ(g["new_persons"], new_persons) << ctx;
    EXPECT_EQ(g["invitations_sent"], total_sent) << ctx;
    EXPECT_EQ(g["invites_per_user"], NRatio(static_cast<double>(total_sent), static_cast<double>(active.size())))
        << ctx;
    EXPECT_EQ(g["with_flagged"], variants["with_flagged"]) << ctx;
    EXPECT_EQ(g["without_flagged"], variants["without_flagged"]) << ctx;
    EXPECT_EQ(g["flags"], want_flags) << ctx;
    EXPECT_EQ(g["flagged_invitees"], flagged) << ctx;
    EXPECT_EQ(g["inviters_total"], rows.size()) << ctx;
    EXPECT_EQ(g["inviters"], want_inviters) << ctx;
    EXPECT_EQ(g["reward_tiers"], RewardTiersJson(tiers)) << ctx;
    if (HasFailure()) {
      for (auto& [v, e] : edges) {
        std::string rs;
        for (auto& r : e.reasons) rs += r + " ";
        ADD_FAILURE() << ctx << " edge " << v << " <- " << e.inviter << " at " << e.ts << " dev " << e.device << " ip "
                      << e.ip << ": " << rs;
      }
      return;
    }

    // ---- the KPI reduce: the same figures as ratio parts ----
    const KpiReducer* kpi = FindKpiReducer("referral");
    ASSERT_NE(kpi, nullptr);
    QueryScope scope(*store, *tz, qo);
    for (const char* flagged : {"exclude", "include"}) {
      const json& v = variants[std::string(flagged) == "exclude" ? "without_flagged" : "with_flagged"];
      for (const char* metric : {"k_factor", "referral_share"}) {
        json red{{"metric", metric}, {"flagged", flagged}};
        json kq = q;
        ASSERT_TRUE(kpi->validate(kq, red).ok()) << ctx;
        kpi->shape(kq, red);
        auto parts = kpi->reduce(kq, red, PeriodRange{from, to}, false, scope.ctx());
        ASSERT_TRUE(parts.ok()) << ctx << ": " << parts.status().ToString();
        const KpiParts& kp = parts->at("");
        const bool k = std::string(metric) == "k_factor";
        EXPECT_TRUE(kp.ratio) << ctx;
        EXPECT_EQ(kp.num, (k ? v["invitees"] : v["referred_new_persons"]).get<double>()) << ctx << " " << metric;
        EXPECT_EQ(kp.den, static_cast<double>(k ? active.size() : new_persons)) << ctx << " " << metric;
      }
    }

    // ---- per-person attributes (models/referral_attributes.h) of the graph as of date_to ----
    {
      auto graph =
          BuildInviteGraph(*snap, ps, end, FraudRules{rules.device_min, rules.ip_min, rules.burst_n, rules.burst_min},
                           [&](std::string_view id) { return store->FindDistinctId(id); });
      ASSERT_TRUE(graph.ok()) << ctx;
      const ReferralAttributes a = ComputeReferralAttributes(*graph);
      // Naive: counts per inviter node, the id each invitee's accept names, and the depth by
      // walking up the unflagged edges.
      std::map<std::string, uint32_t> all_n, clean_n;
      std::set<std::string> nodes;
      for (auto& [v, e] : edges) {
        nodes.insert(v);
        if (e.inviter[0] != 'P') continue;
        nodes.insert(e.inviter);
        all_n[e.inviter]++;
        clean_n[e.inviter] += e.reasons.empty();
      }
      for (const auto& [root, p] : person_id) {  // keyed by the naive person's root id
        const std::string node = "P:" + root;
        const std::string at = ctx + " person " + node;
        if (!nodes.count(node)) {
          EXPECT_EQ(a.generation[p], -1) << at;
          continue;
        }
        EXPECT_EQ(a.invitees[p], all_n[node]) << at;
        EXPECT_EQ(a.clean_invitees[p], clean_n[node]) << at;
        auto own = edges.find(node);
        EXPECT_EQ(a.referred_by[p], own == edges.end() ? "" : own->second.inviter_id) << at;
        int d = 0;
        std::string u = node;
        for (auto it = edges.find(u); it != edges.end() && it->second.reasons.empty(); it = edges.find(u)) {
          d++;
          u = it->second.inviter;
          ASSERT_LE(d, static_cast<int>(edges.size())) << at << ": a cycle of unflagged edges";
        }
        EXPECT_EQ(a.generation[p], d) << at;
      }
      // As person columns: the same values, only for persons of the graph.
      const PersonColumns cols = ReferralPersonColumns(a);
      for (uint32_t p = 0; p < a.generation.size(); p++) {
        const PropValue* g = cols.at("$referral_generation")->Get(p);
        ASSERT_EQ(g != nullptr, a.generation[p] >= 0) << ctx << " person " << p;
        if (!g) continue;
        EXPECT_EQ(g->num, a.generation[p]) << ctx;
        EXPECT_EQ(cols.at("$invitees")->Get(p)->num, a.invitees[p]) << ctx;
        const PropValue* by = cols.at("$referred_by")->Get(p);
        EXPECT_EQ(by ? by->str : "", a.referred_by[p]) << ctx;
      }
    }

    // ---- pages by cursor make the same list ----
    json q2 = q;
    q2["limit"] = R(1, 3);
    json paged = json::array();
    for (int guard = 0; guard < 100; guard++) {
      auto page = RunQuery(q2, *store, *tz, qo);
      ASSERT_TRUE(page.ok()) << ctx << ": " << page.status().ToString();
      for (auto& x : (*page)["inviters"]) paged.push_back(x);
      if ((*page)["next_cursor"].is_null()) break;
      q2["cursor"] = (*page)["next_cursor"];
    }
    EXPECT_EQ(paged, want_inviters) << ctx << " (pages)";
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ReferralReference, ::testing::Range(0, 240));

// One inviter with more invitees than a byte counts (a per-node flag once counted with a
// uint8_t increment would wrap at 256): one inviter, 300 invitees, the top tier.
TEST(ReferralQuery, ManyInviteesOfOneInviter) {
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  ThrowAwayStore store(1000);
  ASSERT_TRUE(store.ok());
  const int64_t t0 = LocalMidnight(date::locate_zone("Asia/Shanghai"), DaysFromCivil("2026-11-02"));
  std::vector<Event> events;
  events.push_back(StoredEvent("boss", "boss", "app_launch", t0, {}));
  for (int i = 0; i < 300; i++) {
    Event e =
        StoredEvent("a" + std::to_string(i), "p" + std::to_string(i), "invite_accept", t0 + 3'600'000 * (i + 1), {});
    e.props.push_back({"inviter_id", PropValue::Str("boss")});
    events.push_back(std::move(e));
    events.push_back(
        StoredEvent("v" + std::to_string(i), "p" + std::to_string(i), "view", t0 + 3'600'000 * (i + 1) + 1, {}));
  }
  ASSERT_TRUE(store->Append(std::move(events), Durability::kUnlogged).ok());
  auto r = RunQuery(json{{"kind", "referral"}, {"date_from", "2026-11-01"}, {"date_to", "2026-12-31"}}, *store, *tz);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["without_flagged"]["inviters"], 1);
  EXPECT_EQ((*r)["without_flagged"]["invitees"], 300);
  EXPECT_EQ((*r)["with_flagged"]["inviters"], 1);
  EXPECT_EQ((*r)["inviters"][0]["reward"], "VIP");
  EXPECT_EQ((*r)["inviters"][0]["tiers_reached"], json({"coupon", "gift", "VIP"}));
}

// The request's validation: errors name the field.
TEST(ReferralQuery, Validation) {
  struct Case {
    json q;
    std::string field;
  };
  const json base{{"kind", "referral"}, {"date_from", "2026-11-01"}, {"date_to", "2026-11-07"}};
  auto with = [&](const char* k, json v) {
    json q = base;
    q[k] = std::move(v);
    return q;
  };
  const std::vector<Case> cases = {
      {with("fraud", 3), "fraud"},
      {with("fraud", json::parse(R"({"burst_invitees":1})")), "fraud.burst_invitees"},
      {with("fraud", json::parse(R"({"burst_minuts":1})")), "fraud.burst_minuts"},
      {with("reward_tiers", json::parse(R"([{"invitees":3,"reward":"a"},{"invitees":3,"reward":"b"}])")),
       "reward_tiers[1].invitees"},
      {with("reward_tiers", json::parse(R"([{"invitees":3}])")), "reward_tiers[0].reward"},
      {with("limit", 0), "limit"},
      {with("cursor", "x"), "cursor"},
      {with("colour", 1), "colour"},
  };
  for (const Case& c : cases) {
    const QueryKind* k = FindQueryKind("referral");
    ASSERT_NE(k, nullptr);
    Status st = k->check(c.q);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.q.dump();
    EXPECT_EQ(st.field(), c.field) << c.q.dump() << ": " << st.ToString();
  }
  PeopleSettings base_settings;
  auto s = PeopleSettings::FromJson(json::parse(R"({"invite_send_event":"invite_accept"})"), base_settings);
  EXPECT_EQ(s.status().field(), "invite_send_event");
  s = PeopleSettings::FromJson(json::parse(R"({"device_property":""})"), base_settings);
  EXPECT_EQ(s.status().field(), "device_property");
  s = PeopleSettings::FromJson(json::parse(R"({"referral_reward_tiers":[{"invitees":0,"reward":"x"}]})"),
                               base_settings);
  EXPECT_EQ(s.status().field(), "referral_reward_tiers[0].invitees");
  s = PeopleSettings::FromJson(json::parse(R"({"referral_reward_tiers":[]})"), base_settings);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->referral_reward_tiers.empty());
  EXPECT_EQ(s->ToJson()["referral_reward_tiers"], json::array());
}

}  // namespace
}  // namespace ns
