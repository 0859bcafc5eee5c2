// The plain ordered or strict funnel, the one asked most: every step an event name, with no
// filters, optional or first-ever steps, exclusions, breakdown, sessions or visualisation
// beyond the steps. funnel.cc chooses this scan once per query (PlainFunnelApplies) and
// otherwise runs its general attempt-set engine; both give the same answer
// (tests/unit/funnel_plain_path_test.cc compares them on random stores). Why it is fast:
// funnel_plain.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/deadline.h"
#include "query/operators.h"
#include "query/query_spec.h"
#include "storage/event_store.h"

namespace ns {

// True if ScanPlainFunnel answers q (see above).
bool PlainFunnelApplies(const FunnelQuery& q);

// What one thread of the scan found: its persons' conversion times and reaches, in person
// order within the thread (the threads take person chunks as they come free, so the slots
// together are in no particular order; the answer does not depend on it).
struct PlainFunnelSlot {
  std::vector<std::vector<int64_t>> conv;  // per step k >= 1: ms from step k-1 to the first reach of k
  std::vector<FunnelReach> reaches;        // with want_reaches: every first reach
};

// Runs the funnel over snap with `slots` threads (one result each, over person chunks;
// ParallelPersonChunks): entries in [entry_from, entry_to), later steps before scan_to (UTC ms).
// finish(slot, person, reached) is called on the slot's thread for every person who
// entered, once the person's outcome is final (bit k of reached: step k reached), in
// ascending person order within a slot. REQUIRES: PlainFunnelApplies(q). On an expired
// deadline the results are partial (the caller answers the deadline's status).
using PlainFunnelFinish = std::function<void(int slot, uint32_t person, uint32_t reached)>;
std::vector<PlainFunnelSlot> ScanPlainFunnel(const FunnelQuery& q, const StoreSnapshot& snap, int64_t entry_from,
                                             int64_t entry_to, int64_t scan_to, int slots, bool want_reaches,
                                             const Deadline* deadline, const PlainFunnelFinish& finish);

}  // namespace ns
