#include "people/invite_tree.h"

#include <deque>
#include <functional>
#include <set>
#include <vector>

#include "core/time_zone.h"
#include "people/masking.h"
#include "query/referral.h"

namespace ns {

using nlohmann::json;

StatusOr<json> InviteTree(Project& p, const PeopleSettings& s, const std::string& distinct_id,
                          const InviteTreeOptions& o, bool unmasked) {
  const int64_t did = p.store->FindDistinctId(distinct_id);
  if (did < 0) return NotFound("no person with distinct id '" + distinct_id + "'");
  auto snap = p.store->Snapshot();
  if (static_cast<size_t>(did) >= snap->persons->size())
    return NotFound("no person with distinct id '" + distinct_id + "' yet");
  const uint32_t root = snap->persons->PersonOf(static_cast<uint32_t>(did));
  const int32_t day = o.as_of_day ? *o.as_of_day : p.tz.LocalDay(NowMs());
  EventStore* store = p.store.get();
  NS_ASSIGN_OR_RETURN(InviteGraph g,
                      BuildInviteGraph(*snap, s, p.tz.DayStartMs(day + 1), FraudRules{},
                                       [store](std::string_view id) { return store->FindDistinctId(id); }));
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  const auto children = g.Children();
  auto name = [&](uint32_t node) {
    return node < g.persons ? store->DisplayId(node) : g.unknown_ids[node - g.persons];
  };
  auto masked = [&](const std::string& key, const std::string& v) -> json {
    if (v.empty()) return nullptr;
    return !unmasked && IsMaskedProperty(key, s.masked_properties) ? MaskValue(v) : v;
  };

  // Breadth first, so a cut keeps the nearest invitees; a person met again (a cycle) is not
  // drawn twice.
  std::set<uint32_t> drawn{root};
  std::vector<std::vector<uint32_t>> kids(g.nodes());  // the drawn children of each node
  std::deque<std::pair<uint32_t, int>> queue{{root, 0}};
  bool truncated = false;
  while (!queue.empty()) {
    auto [v, depth] = queue.front();
    queue.pop_front();
    for (uint32_t ei : children[v]) {
      const uint32_t c = g.edges[ei].invitee;
      if (drawn.count(c)) continue;
      if (depth >= o.depth || drawn.size() >= o.limit) {
        truncated = true;
        continue;
      }
      drawn.insert(c);
      kids[v].push_back(c);
      queue.push_back({c, depth + 1});
    }
  }
  std::function<json(uint32_t)> node_json = [&](uint32_t v) {
    json n{{"distinct_id", name(v)}, {"invitees", children[v].size()}};
    const int32_t ei = v < g.persons ? g.edge_of[v] : -1;
    if (ei >= 0) {
      const InviteEdge& e = g.edges[static_cast<size_t>(ei)];
      n["accepted_at"] = FormatIsoUtc(e.ts);
      n["flags"] = FraudReasonNames(e.flags);
      n["device"] = masked(s.device_property, e.device);
      n["ip"] = masked(s.ip_property, e.ip);
    } else {
      n["accepted_at"] = nullptr;
      n["flags"] = json::array();
      n["device"] = nullptr;
      n["ip"] = nullptr;
    }
    json list = json::array();
    for (uint32_t c : kids[v]) list.push_back(node_json(c));
    n["children"] = std::move(list);
    return n;
  };
  json inviter = nullptr;
  if (g.edge_of[root] >= 0) inviter = name(g.edges[static_cast<size_t>(g.edge_of[root])].inviter);
  return json{{"distinct_id", distinct_id}, {"timezone", p.tz.name()}, {"as_of", FormatDate(day)},
              {"inviter", inviter},         {"tree", node_json(root)}, {"nodes", drawn.size()},
              {"truncated", truncated},     {"depth_limit", o.depth},  {"size_limit", o.limit}};
}

}  // namespace ns
