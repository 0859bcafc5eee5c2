// libFuzzer target: identity logs (docs/storage-format.md §4) through IdentityMap::Inspect
// (`northstar check`) and IdentityMap::Open (startup, which truncates a torn tail). The
// input is one log file; the target re-signs the record checksums (storage_fuzz_common.h)
// so that mutations reach the record parser. Checks: Inspect and Open agree (Open fails
// exactly when Inspect reports a problem, and then only with Corruption; they count the
// same distinct ids); an opened map's person table is a forest of roots (every did's
// person is a root of itself) and every id that was not erased resolves back to its did.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/env.h"
#include "fuzz_common.h"
#include "storage/identity.h"
#include "storage/person_table.h"
#include "storage/wal.h"
#include "storage_fuzz_common.h"

using nsfuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file(reinterpret_cast<const char*>(data), size);
  nsfuzz::ResignRecords(file);
  const std::string dir = nsfuzz::ScratchDir() + "/identity";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  nsfuzz::WriteWhole(dir + "/" + ns::WalFileName(1), file);
  ns::Env* env = ns::Env::Default();
  ns::IdentityLogReport report = ns::IdentityMap::Inspect(env, dir);
  auto m = ns::IdentityMap::Open(env, dir);
  if (!m.ok()) {
    nsfuzz::CheckStatus(m.status());
    Require(m.status().code() == ns::StatusCode::kCorruption, "open failed with a code other than Corruption",
            m.status().ToString());
    Require(!report.problems.empty(), "Open failed where Inspect found no problem", m.status().ToString());
    return 0;
  }
  Require(report.problems.empty(), "Inspect reported a problem in a log that opens");
  ns::IdentityMap& ids = **m;
  Require(ids.did_count() == report.distinct_ids, "Open and Inspect count different distinct ids");
  auto table = ids.Snapshot();
  Require(table->size() == ids.did_count(), "person table size");
  for (uint32_t d = 0; d < table->size(); d++) {
    uint32_t p = table->PersonOf(d);
    Require(p < table->size() && table->PersonOf(p) == p, "person of a did is not a root");
    // An erased did's string has left the index (its next event starts a new person).
    if (!table->Erased(d)) Require(ids.Find(ids.DistinctId(d)) >= 0, "distinct id does not resolve");
    (void)ids.DisplayId(p);
  }
  return 0;
}
