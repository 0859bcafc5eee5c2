// Per-person referral attributes from the invite graph (models/referral_attributes.h).
#include "models/referral_attributes.h"

namespace ns {

ReferralAttributes ComputeReferralAttributes(const InviteGraph& g) {
  const size_t n = g.persons;
  ReferralAttributes a;
  a.invitees.assign(n, 0);
  a.clean_invitees.assign(n, 0);
  a.generation.assign(n, -1);
  a.referred_by.assign(n, "");
  std::vector<uint8_t> in_graph(n, 0);
  for (const InviteEdge& e : g.edges) {
    in_graph[e.invitee] = 1;
    a.referred_by[e.invitee] = e.inviter_id;
    if (e.inviter < n) {
      in_graph[e.inviter] = 1;
      a.invitees[e.inviter]++;
      if (e.flags == 0) a.clean_invitees[e.inviter]++;
    }
  }
  // Depths in the forest of unflagged edges: walk up to a known depth or a root, then fill
  // the walk. Unflagged edges have no cycles (a cycle's edges are flagged), and a node that
  // is not a person (an unknown inviter id) is a root.
  std::vector<int32_t> depth(n, -1);
  std::vector<uint32_t> walk;
  auto clean_parent = [&](uint32_t v) -> int64_t {
    const int32_t e = v < g.edge_of.size() ? g.edge_of[v] : -1;
    if (e < 0 || g.edges[static_cast<size_t>(e)].flags != 0) return -1;
    return g.edges[static_cast<size_t>(e)].inviter;
  };
  for (uint32_t p = 0; p < n; p++) {
    if (!in_graph[p] || depth[p] >= 0) continue;
    walk.clear();
    int64_t v = p;
    int32_t base = 0;
    while (true) {
      if (v >= static_cast<int64_t>(n)) {  // an unknown inviter id: the root, one above
        base = 0;
        break;
      }
      const uint32_t u = static_cast<uint32_t>(v);
      if (depth[u] >= 0) {
        base = depth[u];
        break;
      }
      walk.push_back(u);
      const int64_t up = clean_parent(u);
      if (up < 0) {  // a root of the clean forest
        depth[u] = 0;
        walk.pop_back();
        base = 0;
        break;
      }
      if (walk.size() > n) break;  // cannot happen (no clean cycles); never loop forever
      v = up;
    }
    for (size_t k = walk.size(); k-- > 0;) depth[walk[k]] = ++base;
  }
  for (uint32_t p = 0; p < n; p++)
    if (in_graph[p]) a.generation[p] = depth[p];
  return a;
}

PersonColumns ReferralPersonColumns(const ReferralAttributes& a) {
  auto invitees = std::make_shared<PersonColumn>(), clean = std::make_shared<PersonColumn>();
  auto by = std::make_shared<PersonColumn>(), gen = std::make_shared<PersonColumn>();
  for (uint32_t p = 0; p < a.generation.size(); p++) {
    if (a.generation[p] < 0) continue;
    invitees->Set(p, PropValue::Num(a.invitees[p]));
    clean->Set(p, PropValue::Num(a.clean_invitees[p]));
    gen->Set(p, PropValue::Num(a.generation[p]));
    if (!a.referred_by[p].empty()) by->Set(p, PropValue::Str(a.referred_by[p]));
  }
  PersonColumns cols;
  cols[kReferralColumns[0]] = invitees;
  cols[kReferralColumns[1]] = clean;
  cols[kReferralColumns[2]] = by;
  cols[kReferralColumns[3]] = gen;
  return cols;
}

}  // namespace ns
