// The referral (fission) graph and the referral query kind (docs/queries.md "Referral").
//
// An invitation accepted is an event named PeopleSettings::invite_accept_event whose
// inviter property (inviter_property) names the inviter's distinct id. Each person has at
// most one inviter: their earliest such event (ties: the smallest inviter id, then device,
// then IP), so the graph is a forest plus the cycles fraud makes. Inviter ids resolve
// through identity (a merge after the fact moves an edge to the merged person; an id the
// store never saw is an inviter node of its own). Every edge keeps its fraud reasons; no
// edge is ever dropped, and the query answers each count with and without flagged edges.
//
// referral.cc: BuildInviteGraph (one pass over the snapshot's rows, then O(edges log edges)
// for the flags) and the kind. people/invite_tree.cc draws one person's tree from the graph.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "query/person_facts.h"
#include "query/query_kind.h"

namespace ns {

// Why an edge is suspect, one bit each (names in FraudReasonName, in this order).
enum FraudReason : uint32_t {
  kSelfInvite = 1u << 0,    // inviter and invitee are one person after identity resolution
  kCycle = 1u << 1,         // the edge is on a cycle of two or more persons
  kSharedDevice = 1u << 2,  // >= shared_device_min invitees accepted with one device id
  kSharedIp = 1u << 3,      // >= shared_ip_min invitees accepted from one IP
  kBurst = 1u << 4,         // >= burst_invitees of one inviter accepted within burst_minutes
  kNoActivity = 1u << 5,    // the invitee has no event after the accept
};
constexpr int kFraudReasons = 6;
const char* FraudReasonName(int bit);  // "self_invite", "cycle", ...
std::vector<std::string> FraudReasonNames(uint32_t flags);

// The thresholds of the fraud rules (a request may set them: "fraud": {...}).
struct FraudRules {
  int shared_device_min = 3;  // invitees sharing one device id
  int shared_ip_min = 5;      // invitees sharing one IP (NAT makes honest sharing common)
  int burst_invitees = 5;     // ...of one inviter within...
  int burst_minutes = 10;     // ...this many minutes (last accept - first accept <= it)
};

struct InviteEdge {
  uint32_t invitee = 0;                // a person id
  uint32_t inviter = 0;                // a node: a person id, or persons + k for InviteGraph::unknown_ids[k]
  int64_t ts = 0;                      // the accept
  std::string inviter_id, device, ip;  // as the accept event carried them ("" absent)
  uint32_t flags = 0;                  // FraudReason bits
};

struct InviteGraph {
  size_t persons = 0;                    // nodes below this are persons of the snapshot
  std::vector<std::string> unknown_ids;  // inviter ids no event ever carried as its distinct id
  std::vector<InviteEdge> edges;         // one per invitee, by invitee
  std::vector<int32_t> edge_of;          // person -> its edge, -1 if not invited
  // Per person, from the rows before end_ms: first and last event (INT64_MAX / MIN: none).
  std::vector<int64_t> first_ts, last_ts;
  int64_t end_ms = 0;

  size_t nodes() const { return persons + unknown_ids.size(); }
  // The edges each node invited (indexes into edges, by accept time then invitee id).
  std::vector<std::vector<uint32_t>> Children() const;
};

// The graph of every accept before end_ms, with flags. `find` resolves a distinct id to its
// did (-1: unknown).
StatusOr<InviteGraph> BuildInviteGraph(const StoreSnapshot& snap, const PeopleSettings& settings, int64_t end_ms,
                                       const FraudRules& rules, const std::function<int64_t(std::string_view)>& find,
                                       const Deadline* deadline = nullptr);

struct ReferralQuery {
  int32_t from_day = 0, to_day = 0;
  FraudRules rules;
  std::optional<std::vector<RewardTier>> reward_tiers;  // unset: the project's setting
  size_t limit = 50, offset = 0;                        // the inviters' page
};
StatusOr<ReferralQuery> ParseReferralQuery(const nlohmann::json& j);

// The figures counted over one set of edges (every edge, or the unflagged ones).
struct ReferralFigures {
  uint64_t invitees = 0;              // accepts in the range
  uint64_t inviters = 0;              // distinct inviters of those
  uint64_t referred_new_persons = 0;  // new persons of the range who have an edge
  std::vector<uint64_t> depth;        // depth[d]: invitees at depth d (d >= 1) of the forest
  uint64_t no_root = 0;               // invitees whose inviter chain ends in a cycle
};

struct ReferralInviter {
  uint32_t node = 0;
  std::string distinct_id;
  uint64_t invitees = 0, clean_invitees = 0, sent = 0;
  uint64_t reasons[kFraudReasons] = {};  // the inviter's range edges per reason
};

struct ReferralResult {
  std::string timezone;
  int32_t from_day = 0, to_day = 0;
  FraudRules rules;
  std::vector<RewardTier> tiers;
  PeopleSettings settings;  // the names used
  uint64_t active_persons = 0, new_persons = 0, invitations_sent = 0;
  ReferralFigures with_flagged, without_flagged;
  uint64_t flagged_invitees = 0;
  uint64_t reasons[kFraudReasons] = {};   // range edges per reason
  std::vector<ReferralInviter> inviters;  // every inviter, in the answer's order
  size_t limit = 50, offset = 0;
};

StatusOr<ReferralResult> RunReferral(const ReferralQuery& q, const QueryContext& ctx);
nlohmann::json ToJson(const ReferralResult& r);
// The tier reached with `invitees` (the one with the largest threshold <= invitees), or null.
const RewardTier* RewardDue(const std::vector<RewardTier>& tiers, uint64_t invitees);

}  // namespace ns
