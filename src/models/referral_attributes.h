// Per-person referral attributes (docs/people.md "Computed properties"), from the invite
// graph of the referral kind (query/referral.h) as of one instant, laid over the person
// properties by the models layer like $clv:
//
//   $invitees             accepted invitations naming the person as inviter (every edge)
//   $clean_invitees       the same without the edges a fraud rule flagged
//   $referred_by          the inviter id the person's own accepted invitation names
//   $referral_generation  the person's depth in the invite forest of unflagged edges: 1 for
//                         someone invited by a person nobody invited, 2 for their invitees…;
//                         0 for an inviter who was not invited (or whose invitation is
//                         flagged). Unset for persons outside the graph.
//
// Only persons in the graph (an invitee, or an inviter who is a person of the store) get
// values; the others have none, so `is_set` tells them apart.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "query/referral.h"
#include "storage/person_table.h"

namespace ns {

// The column names, in the order above.
inline constexpr const char* kReferralColumns[] = {"$invitees", "$clean_invitees", "$referred_by",
                                                   "$referral_generation"};

struct ReferralAttributes {
  // Indexed by person id (graph.persons long); generation -1: not in the graph.
  std::vector<uint32_t> invitees, clean_invitees;
  std::vector<int32_t> generation;
  std::vector<std::string> referred_by;  // "" when not invited
};

ReferralAttributes ComputeReferralAttributes(const InviteGraph& graph);
// The four computed columns of the attributes.
PersonColumns ReferralPersonColumns(const ReferralAttributes& a);

}  // namespace ns
