// The per-person scan's two variants for the fast-path tests (sequence_fast_paths_test,
// funnel_plain_path_test, retention_fast_paths_test): the plain scan (one tile per range,
// no operator shortcuts) against the fast one (tiles of a few persons, every shortcut), and
// the check that a query answers the same on both.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/time_zone.h"
#include "query/person_scan.h"
#include "query/query_kind.h"
#include "storage/event_store.h"

namespace ns {

// Restores the default tuning when a test ends, whatever it asserted.
struct TuningGuard {
  ~TuningGuard() { SequenceScanTuning() = SequenceScanOptions(); }
};

// The plain scan also takes one person range per thread (ParallelPersonRanges without
// chunks); the fast one `chunks` per thread.
inline void UsePlainScan() {
  SequenceScanTuning() = SequenceScanOptions{UINT32_MAX, false, false};
  SequenceScanTuning().person_chunks_per_slot = 1;
}
inline void UseFastScan(uint32_t tile, int chunks = SequenceScanOptions().person_chunks_per_slot) {
  SequenceScanTuning() = SequenceScanOptions{tile, true, true};
  SequenceScanTuning().person_chunks_per_slot = chunks;
}

// Runs `q` on the plain scan, then on the fast one with tiles of `tile` persons, and expects
// byte-identical answers (took_ms aside, the only field that may differ).
inline void ExpectFastScanSameAsPlain(const nlohmann::json& q, EventStore& store, const TimeZone& tz, uint32_t tile,
                                      int seed, int chunks = SequenceScanOptions().person_chunks_per_slot) {
  UsePlainScan();
  auto plain = RunQuery(q, store, tz);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString() << "\n" << q.dump();
  UseFastScan(tile, chunks);
  auto fast = RunQuery(q, store, tz);
  ASSERT_TRUE(fast.ok()) << fast.status().ToString() << "\n" << q.dump();
  plain->erase("took_ms");
  fast->erase("took_ms");
  EXPECT_EQ(fast->dump(), plain->dump()) << "seed " << seed << " tile " << tile << "\n" << q.dump();
}

}  // namespace ns
