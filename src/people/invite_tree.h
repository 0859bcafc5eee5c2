// One person's invite tree (GET /api/v1/persons/{distinct_id}/invite-tree, docs/queries.md
// "Invite tree"): the person, whom they invited, whom those invited, ... drawn from the
// referral graph (query/referral.h) as of the end of a local day, breadth first up to a
// depth and a number of nodes (`truncated` says when either cut it short).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "core/status.h"
#include "meta/project_registry.h"
#include "query/person_facts.h"

namespace ns {

struct InviteTreeOptions {
  int depth = 5;                     // levels below the person (1..20)
  size_t limit = 500;                // nodes, the person included (1..5000)
  std::optional<int32_t> as_of_day;  // the graph as of the end of this local day (default today)
};

// `unmasked`: the caller is an admin; otherwise the device and IP values are masked when
// their properties are among the masked ones (people/masking.h). NotFound for an unknown id.
StatusOr<nlohmann::json> InviteTree(Project& project, const PeopleSettings& settings, const std::string& distinct_id,
                                    const InviteTreeOptions& options, bool unmasked);

}  // namespace ns
