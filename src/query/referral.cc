// Referral and fission (docs/queries.md "Referral"): the invite graph (query/referral.h) and
// the figures an operations team reads off it — invitations, K-factor, conversion, the
// share of new persons who came by referral, the depth of the invite forest, the inviters
// with their rewards and fraud flags. Every figure is given over all edges and over the
// unflagged ones.
//
// Cost: two passes over the snapshot's rows (the graph with first/last seen; the range's
// activity and invitations sent), then O(edges log edges).
#include "query/referral.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

const char* FraudReasonName(int bit) {
  static const char* kNames[kFraudReasons] = {"self_invite", "cycle", "shared_device",
                                              "shared_ip",   "burst", "no_activity"};
  return bit >= 0 && bit < kFraudReasons ? kNames[bit] : "";
}

std::vector<std::string> FraudReasonNames(uint32_t flags) {
  std::vector<std::string> out;
  for (int b = 0; b < kFraudReasons; b++)
    if (flags & (1u << b)) out.emplace_back(FraudReasonName(b));
  return out;
}

const RewardTier* RewardDue(const std::vector<RewardTier>& tiers, uint64_t invitees) {
  const RewardTier* due = nullptr;
  for (const RewardTier& t : tiers)
    if (static_cast<uint64_t>(t.invitees) <= invitees) due = &t;
  return due;
}

std::vector<std::vector<uint32_t>> InviteGraph::Children() const {
  std::vector<std::vector<uint32_t>> out(nodes());
  for (uint32_t i = 0; i < edges.size(); i++) out[edges[i].inviter].push_back(i);
  for (auto& c : out)
    std::sort(c.begin(), c.end(), [&](uint32_t a, uint32_t b) {
      return edges[a].ts != edges[b].ts ? edges[a].ts < edges[b].ts : edges[a].invitee < edges[b].invitee;
    });
  return out;
}

namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

std::string TextAt(const PropColumn* c, size_t row) {
  if (!c || !c->Present(row)) return "";
  return c->Get(row).AsString();
}

// Marks the edges on cycles of two or more persons (a self-invite is a cycle of one: its
// own flag). Each person has at most one inviter, so every cycle is found by walking up.
void FlagCycles(InviteGraph& g) {
  const size_t n = g.nodes();
  std::vector<uint8_t> state(n, 0);  // 0 unseen, 1 on the current walk, 2 done
  std::vector<uint32_t> walk;
  auto parent = [&](uint32_t v) -> int64_t {
    if (v >= g.persons || g.edge_of[v] < 0) return -1;
    return g.edges[static_cast<size_t>(g.edge_of[v])].inviter;
  };
  for (uint32_t s = 0; s < g.persons; s++) {
    if (state[s]) continue;
    walk.clear();
    int64_t v = s;
    while (v >= 0 && state[static_cast<size_t>(v)] == 0) {
      state[static_cast<size_t>(v)] = 1;
      walk.push_back(static_cast<uint32_t>(v));
      v = parent(static_cast<uint32_t>(v));
    }
    if (v >= 0 && state[static_cast<size_t>(v)] == 1) {  // the walk closed a cycle at v
      auto at = std::find(walk.begin(), walk.end(), static_cast<uint32_t>(v));
      if (walk.end() - at >= 2)
        for (auto it = at; it != walk.end(); ++it) g.edges[static_cast<size_t>(g.edge_of[*it])].flags |= kCycle;
    }
    for (uint32_t w : walk) state[w] = 2;
  }
}

// Edges sharing a non-empty value of `value` (device or IP) with >= min edges in all flagged
// `bit`. Counted by value first (views into the edges, which do not move meanwhile).
template <typename Value>
void FlagShared(InviteGraph& g, Value&& value, int min, uint32_t bit) {
  std::unordered_map<std::string_view, uint32_t> count;
  count.reserve(g.edges.size());
  for (const InviteEdge& e : g.edges)
    if (const std::string& v = value(e); !v.empty()) count[v]++;
  for (InviteEdge& e : g.edges)
    if (const std::string& v = value(e); !v.empty() && count[v] >= static_cast<uint32_t>(min)) e.flags |= bit;
}

// An edge is in a burst when it is one of >= burst_invitees edges of its inviter whose
// accepts span at most burst_minutes (last - first <= the window).
void FlagBursts(InviteGraph& g, const FraudRules& r) {
  std::vector<uint32_t> idx(g.edges.size());
  for (uint32_t i = 0; i < idx.size(); i++) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
    const InviteEdge &x = g.edges[a], &y = g.edges[b];
    return x.inviter != y.inviter ? x.inviter < y.inviter : x.ts < y.ts;
  });
  const int64_t window = static_cast<int64_t>(r.burst_minutes) * 60'000;
  const size_t need = static_cast<size_t>(r.burst_invitees);
  for (size_t lo = 0; lo < idx.size();) {
    size_t hi = lo;
    while (hi < idx.size() && g.edges[idx[hi]].inviter == g.edges[idx[lo]].inviter) hi++;
    // One inviter's edges [lo, hi) by time: each start i with the furthest j in the window.
    size_t marked_to = lo;  // edges before this are marked already
    for (size_t i = lo, j = lo; i < hi; i++) {
      if (j < i) j = i;
      while (j + 1 < hi && g.edges[idx[j + 1]].ts - g.edges[idx[i]].ts <= window) j++;
      if (j - i + 1 >= need)
        for (size_t k = std::max(i, marked_to); k <= j; k++) g.edges[idx[k]].flags |= kBurst;
      if (j - i + 1 >= need) marked_to = std::max(marked_to, j + 1);
    }
    lo = hi;
  }
}

}  // namespace

StatusOr<InviteGraph> BuildInviteGraph(const StoreSnapshot& snap, const PeopleSettings& s, int64_t end_ms,
                                       const FraudRules& rules, const std::function<int64_t(std::string_view)>& find,
                                       const Deadline* deadline) {
  const PersonTable& pt = *snap.persons;
  InviteGraph g;
  g.persons = pt.size();
  g.end_ms = end_ms;
  g.first_ts.assign(g.persons, kNever);
  g.last_ts.assign(g.persons, std::numeric_limits<int64_t>::min());
  g.edge_of.assign(g.persons, -1);
  const EventMatcher accept = EventMatcher::Make(s.invite_accept_event, *snap.events);
  std::vector<InviteEdge> best;  // the candidate invitation of each invitee, by edge_of
  auto better = [](const InviteEdge& a, const InviteEdge& b) {
    return std::tie(a.ts, a.inviter_id, a.device, a.ip) < std::tie(b.ts, b.inviter_id, b.device, b.ip);
  };
  for (const auto& bp : snap.blocks) {
    const Block& blk = *bp;
    if (blk.min_ts() >= end_ms) continue;
    const auto& did = blk.did();
    const auto& ts = blk.ts();
    for (size_t i = 0; i < blk.size(); i++) {
      if (ts[i] >= end_ms) continue;
      const uint32_t p = pt.PersonOf(did[i]);
      if (p >= g.persons) continue;
      g.first_ts[p] = std::min(g.first_ts[p], ts[i]);
      g.last_ts[p] = std::max(g.last_ts[p], ts[i]);
    }
    if (accept.any || !accept.MayMatch(blk)) continue;
    const PropColumn* inviter = blk.prop(s.inviter_property);
    if (!inviter) continue;
    const PropColumn* device = blk.prop(s.device_property);
    const PropColumn* ip = blk.prop(s.ip_property);
    auto [rb, re] = blk.EventRows(accept.code);
    for (const uint32_t* r = rb; r < re; r++) {
      if (ts[*r] >= end_ms) continue;
      const uint32_t p = pt.PersonOf(did[*r]);
      if (p >= g.persons) continue;
      InviteEdge e;
      e.inviter_id = TextAt(inviter, *r);
      if (e.inviter_id.empty()) continue;
      e.invitee = p;
      e.ts = ts[*r];
      e.device = TextAt(device, *r);
      e.ip = TextAt(ip, *r);
      int32_t& at = g.edge_of[p];
      if (at < 0) {
        at = static_cast<int32_t>(best.size());
        best.push_back(std::move(e));
      } else if (better(e, best[static_cast<size_t>(at)])) {
        best[static_cast<size_t>(at)] = std::move(e);
      }
    }
    if (deadline && deadline->Expired()) return deadline->ToStatus();
  }
  // The inviters through identity: a did's person, or a node of its own for an unknown id.
  std::unordered_map<std::string, uint32_t> node_of;
  for (InviteEdge& e : best) {
    auto [it, fresh] = node_of.try_emplace(e.inviter_id, 0);
    if (fresh) {
      const int64_t d = find ? find(e.inviter_id) : -1;
      if (d >= 0 && static_cast<size_t>(d) < g.persons) {
        it->second = pt.PersonOf(static_cast<uint32_t>(d));
      } else {
        it->second = static_cast<uint32_t>(g.persons + g.unknown_ids.size());
        g.unknown_ids.push_back(e.inviter_id);
      }
    }
    e.inviter = it->second;
  }
  // Edges by invitee.
  std::fill(g.edge_of.begin(), g.edge_of.end(), -1);
  std::sort(best.begin(), best.end(), [](const InviteEdge& a, const InviteEdge& b) { return a.invitee < b.invitee; });
  g.edges = std::move(best);
  for (size_t i = 0; i < g.edges.size(); i++) g.edge_of[g.edges[i].invitee] = static_cast<int32_t>(i);

  for (InviteEdge& e : g.edges) {
    if (e.inviter == e.invitee) e.flags |= kSelfInvite;
    if (g.last_ts[e.invitee] <= e.ts) e.flags |= kNoActivity;
  }
  FlagCycles(g);
  FlagShared(
      g, [](const InviteEdge& e) -> const std::string& { return e.device; }, rules.shared_device_min, kSharedDevice);
  FlagShared(
      g, [](const InviteEdge& e) -> const std::string& { return e.ip; }, rules.shared_ip_min, kSharedIp);
  FlagBursts(g, rules);
  return g;
}

// ---------------------------------------------------------------- the query kind

StatusOr<ReferralQuery> ParseReferralQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(j, "", {"kind", "date_from", "date_to", "fraud", "reward_tiers", "limit", "cursor"}));
  ReferralQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  if (auto it = j.find("fraud"); it != j.end() && !it->is_null()) {
    if (!it->is_object())
      return InvalidArgument(
          "fraud: expected an object {\"shared_device_min\", \"shared_ip_min\", \"burst_invitees\", "
          "\"burst_minutes\"}",
          "fraud");
    NS_RETURN_IF_ERROR(
        CheckFields(*it, "fraud", {"shared_device_min", "shared_ip_min", "burst_invitees", "burst_minutes"}));
    struct Rule {
      const char* key;
      int* out;
      int64_t lo, hi;
    };
    for (const Rule& r : {Rule{"shared_device_min", &q.rules.shared_device_min, 2, 100000},
                          Rule{"shared_ip_min", &q.rules.shared_ip_min, 2, 100000},
                          Rule{"burst_invitees", &q.rules.burst_invitees, 2, 100000},
                          Rule{"burst_minutes", &q.rules.burst_minutes, 0, 525600}}) {
      NS_ASSIGN_OR_RETURN(int64_t v, GetInt(*it, r.key, "fraud", *r.out, r.lo, r.hi));
      *r.out = static_cast<int>(v);
    }
  }
  if (auto it = j.find("reward_tiers"); it != j.end() && !it->is_null()) {
    NS_ASSIGN_OR_RETURN(auto tiers, ParseRewardTiers(*it, "reward_tiers"));
    q.reward_tiers = std::move(tiers);
  }
  NS_ASSIGN_OR_RETURN(int64_t limit, GetInt(j, "limit", "", 50, 1, 1000));
  q.limit = static_cast<size_t>(limit);
  if (auto it = j.find("cursor"); it != j.end() && !it->is_null()) {
    const std::string c = it->is_string() ? it->get<std::string>() : it->is_number_unsigned() ? it->dump() : "-";
    char* end = nullptr;
    const unsigned long long v = std::strtoull(c.c_str(), &end, 10);
    if (c.empty() || *end != '\0' || c[0] == '-' || v > INT32_MAX)
      return InvalidArgument("cursor: expected the next_cursor of an earlier answer", "cursor");
    q.offset = static_cast<size_t>(v);
  }
  return q;
}

namespace {

// Depth of every invitee in the forest of the edges `keep` accepts: 1 + its inviter's (an
// inviter without a kept edge is a root, depth 0); -1 when the chain ends in a cycle.
ReferralFigures Depths(const InviteGraph& g, const std::function<bool(const InviteEdge&)>& keep) {
  ReferralFigures f;
  std::vector<int64_t> depth(g.nodes(), -2);  // -2 unknown, -3 on the current walk, -1 no root
  std::vector<uint32_t> walk;
  for (const InviteEdge& e0 : g.edges) {
    if (!keep(e0)) continue;
    walk.clear();
    uint32_t v = e0.invitee;
    int64_t base = 0;
    while (true) {
      if (depth[v] >= -1) {
        base = depth[v];
        break;
      }
      if (depth[v] == -3) {  // back on the walk: a cycle
        base = -1;
        break;
      }
      const int32_t ei = v < g.persons ? g.edge_of[v] : -1;
      if (ei < 0 || !keep(g.edges[static_cast<size_t>(ei)])) {
        depth[v] = 0;
        base = 0;
        break;
      }
      depth[v] = -3;
      walk.push_back(v);
      v = g.edges[static_cast<size_t>(ei)].inviter;
    }
    for (size_t k = walk.size(); k-- > 0;) {
      if (base >= 0) base++;
      depth[walk[k]] = base;
    }
  }
  for (const InviteEdge& e : g.edges) {
    if (!keep(e)) continue;
    const int64_t d = depth[e.invitee];
    if (d < 0) {
      f.no_root++;
      continue;
    }
    if (f.depth.size() <= static_cast<size_t>(d)) f.depth.resize(static_cast<size_t>(d) + 1, 0);
    f.depth[static_cast<size_t>(d)]++;
  }
  return f;
}

json Ratio(uint64_t num, uint64_t den) {
  return den > 0 ? json(static_cast<double>(num) / static_cast<double>(den)) : json(nullptr);
}

json FiguresJson(const ReferralFigures& f, const ReferralResult& r) {
  json depth = json::array();
  for (size_t d = 1; d < f.depth.size(); d++)
    if (f.depth[d] > 0) depth.push_back({{"depth", d}, {"invitees", f.depth[d]}});
  return json{{"invitees", f.invitees},
              {"inviters", f.inviters},
              {"referred_new_persons", f.referred_new_persons},
              {"k_factor", Ratio(f.invitees, r.active_persons)},
              {"referral_conversion_rate", Ratio(f.invitees, r.invitations_sent)},
              {"referral_share", Ratio(f.referred_new_persons, r.new_persons)},
              {"depth", depth},
              {"no_root", f.no_root}};
}

json ReasonsJson(const uint64_t (&reasons)[kFraudReasons]) {
  json out = json::object();
  for (int b = 0; b < kFraudReasons; b++) out[FraudReasonName(b)] = reasons[b];
  return out;
}

}  // namespace

StatusOr<ReferralResult> RunReferral(const ReferralQuery& q, const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const PeopleSettings& s = ctx.people_settings();
  ReferralResult r;
  r.timezone = ctx.tz.name();
  r.from_day = q.from_day;
  r.to_day = q.to_day;
  r.rules = q.rules;
  r.tiers = q.reward_tiers ? *q.reward_tiers : s.referral_reward_tiers;
  r.settings = s;
  r.limit = q.limit;
  r.offset = q.offset;
  const int64_t from_ms = ctx.tz.DayStartMs(q.from_day), end_ms = ctx.tz.DayStartMs(q.to_day + 1);
  NS_ASSIGN_OR_RETURN(InviteGraph g, BuildInviteGraph(snap, s, end_ms, q.rules, ctx.find_distinct_id, ctx.deadline));

  // The range's activity and invitations sent.
  const PersonTable& pt = *snap.persons;
  std::vector<uint8_t> active(g.persons, 0);
  std::vector<uint64_t> sent(g.nodes(), 0);
  const EventMatcher send = EventMatcher::Make(s.invite_send_event, *snap.events);
  for (const auto& bp : snap.blocks) {
    const Block& blk = *bp;
    if (blk.min_ts() >= end_ms || blk.max_ts() < from_ms) continue;
    const auto& did = blk.did();
    const auto& ts = blk.ts();
    for (size_t i = 0; i < blk.size(); i++) {
      if (ts[i] < from_ms || ts[i] >= end_ms) continue;
      const uint32_t p = pt.PersonOf(did[i]);
      if (p < g.persons) active[p] = 1;
    }
    if (send.any || !send.MayMatch(blk)) continue;
    auto [rb, re] = blk.EventRows(send.code);
    for (const uint32_t* x = rb; x < re; x++) {
      if (ts[*x] < from_ms || ts[*x] >= end_ms) continue;
      const uint32_t p = pt.PersonOf(did[*x]);
      if (p < g.persons) sent[p]++;
    }
    if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  }
  for (size_t p = 0; p < g.persons; p++) {
    r.active_persons += active[p];
    r.new_persons += g.first_ts[p] >= from_ms && g.first_ts[p] < end_ms;
    r.invitations_sent += sent[p];
  }

  r.with_flagged = Depths(g, [](const InviteEdge&) { return true; });
  r.without_flagged = Depths(g, [](const InviteEdge& e) { return e.flags == 0; });
  // The inviters' rows, by node (dense: a tree map here was most of the time on 100,000 edges).
  std::vector<int32_t> row_of(g.nodes(), -1);
  auto row = [&](uint32_t node) -> ReferralInviter& {
    if (row_of[node] < 0) {
      row_of[node] = static_cast<int32_t>(r.inviters.size());
      r.inviters.emplace_back();
      r.inviters.back().node = node;
    }
    return r.inviters[static_cast<size_t>(row_of[node])];
  };
  std::vector<uint8_t> seen_all(g.nodes(), 0), seen_clean(g.nodes(), 0);
  for (const InviteEdge& e : g.edges) {
    const bool clean = e.flags == 0;
    if (g.first_ts[e.invitee] >= from_ms) {  // a new person of the range (first seen <= the accept < end)
      r.with_flagged.referred_new_persons++;
      if (clean) r.without_flagged.referred_new_persons++;
    }
    if (e.ts < from_ms) continue;
    r.with_flagged.invitees++;
    if (!seen_all[e.inviter]) {
      seen_all[e.inviter] = 1;
      r.with_flagged.inviters++;
    }
    if (clean) {
      r.without_flagged.invitees++;
      if (!seen_clean[e.inviter]) {
        seen_clean[e.inviter] = 1;
        r.without_flagged.inviters++;
      }
    } else {
      r.flagged_invitees++;
    }
    ReferralInviter& inv = row(e.inviter);
    inv.invitees++;
    if (clean) inv.clean_invitees++;
    for (int b = 0; b < kFraudReasons; b++)
      if (e.flags & (1u << b)) {
        inv.reasons[b]++;
        r.reasons[b]++;
      }
  }
  for (uint32_t p = 0; p < g.persons; p++)
    if (sent[p] > 0) row(p).sent = sent[p];
  for (ReferralInviter& inv : r.inviters)
    inv.distinct_id = inv.node < g.persons ? (ctx.namer ? ctx.namer(inv.node) : std::to_string(inv.node))
                                           : g.unknown_ids[inv.node - g.persons];
  std::sort(r.inviters.begin(), r.inviters.end(), [](const ReferralInviter& a, const ReferralInviter& b) {
    return std::tie(b.clean_invitees, b.invitees, b.sent, a.distinct_id, a.node) <
           std::tie(a.clean_invitees, a.invitees, a.sent, b.distinct_id, b.node);
  });
  return r;
}

json ToJson(const ReferralResult& r) {
  json inviters = json::array();
  const size_t end = std::min(r.inviters.size(), r.offset + r.limit);
  for (size_t i = r.offset; i < end; i++) {
    const ReferralInviter& v = r.inviters[i];
    json flags = json::array();
    for (int b = 0; b < kFraudReasons; b++)
      if (v.reasons[b] > 0) flags.push_back({{"reason", FraudReasonName(b)}, {"invitees", v.reasons[b]}});
    json reached = json::array();
    for (const RewardTier& t : r.tiers)
      if (static_cast<uint64_t>(t.invitees) <= v.clean_invitees) reached.push_back(t.reward);
    const RewardTier* due = RewardDue(r.tiers, v.clean_invitees);
    const RewardTier* due_all = RewardDue(r.tiers, v.invitees);
    inviters.push_back({{"distinct_id", v.distinct_id},
                        {"invitees", v.invitees},
                        {"clean_invitees", v.clean_invitees},
                        {"flagged_invitees", v.invitees - v.clean_invitees},
                        {"invitations_sent", v.sent},
                        {"reward", due ? json(due->reward) : json(nullptr)},
                        {"reward_with_flagged", due_all ? json(due_all->reward) : json(nullptr)},
                        {"tiers_reached", reached},
                        {"flags", flags}});
  }
  const PeopleSettings& s = r.settings;
  return json{{"kind", "referral"},
              {"timezone", r.timezone},
              {"date_from", FormatDate(r.from_day)},
              {"date_to", FormatDate(r.to_day)},
              {"events",
               {{"invite_accept_event", s.invite_accept_event},
                {"invite_send_event", s.invite_send_event},
                {"inviter_property", s.inviter_property},
                {"device_property", s.device_property},
                {"ip_property", s.ip_property}}},
              {"fraud_rules",
               {{"shared_device_min", r.rules.shared_device_min},
                {"shared_ip_min", r.rules.shared_ip_min},
                {"burst_invitees", r.rules.burst_invitees},
                {"burst_minutes", r.rules.burst_minutes}}},
              {"reward_tiers", RewardTiersJson(r.tiers)},
              {"active_persons", r.active_persons},
              {"new_persons", r.new_persons},
              {"invitations_sent", r.invitations_sent},
              {"invites_per_user", Ratio(r.invitations_sent, r.active_persons)},
              {"with_flagged", FiguresJson(r.with_flagged, r)},
              {"without_flagged", FiguresJson(r.without_flagged, r)},
              {"flagged_invitees", r.flagged_invitees},
              {"flags", ReasonsJson(r.reasons)},
              {"inviters_total", r.inviters.size()},
              {"inviters", inviters},
              {"next_cursor", end < r.inviters.size() ? json(std::to_string(end)) : json(nullptr)}};
}

const QueryKind kReferralKind{
    "referral",
    {"referrals", "fission"},
    [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
      NS_ASSIGN_OR_RETURN(ReferralQuery q, ParseReferralQuery(request));
      NS_ASSIGN_OR_RETURN(ReferralResult r, RunReferral(q, ctx));
      return ToJson(r);
    },
    [](const json& request) { return ParseReferralQuery(request).status(); },
    [](const json& r) {
      ResultTable rows;
      rows.push_back({"distinct_id", "invitees", "clean_invitees", "flagged_invitees", "invitations_sent", "reward"});
      for (const auto& v : r["inviters"])
        rows.push_back({v["distinct_id"], v["invitees"], v["clean_invitees"], v["flagged_invitees"],
                        v["invitations_sent"], v["reward"]});
      return rows;
    }};

}  // namespace ns
