// libFuzzer target: identity logs (docs/storage-format.md §4) through IdentityMap::Inspect
// (`northstar check`) and IdentityMap::Open (startup, which truncates a torn tail). The
// input is one log file; the target re-signs the record checksums (storage_fuzz_common.h)
// so that mutations reach the record parser. Checks: Inspect and Open agree (Open fails
// exactly when Inspect reports a problem, and then only with Corruption; they count the
// same distinct ids); an opened map's person table is a forest of roots (every did's
// person is a root of itself) and every id that was not erased resolves back to its did;
// and a log that opens can be rewritten without its erased persons' data
// (RewriteWithoutErased, `northstar compact`), the rewrite replaying to the same persons
// with nothing erased left on disk.
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
  std::filesystem::remove_all(dir, ec);  // the previous input's rewrite left its own file
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
  // A log no store writes (a $set naming a did after its erasure, an erasure listing part
  // of a person) may not replay the same without the erased data: the rewrite must then
  // refuse and change nothing, never write something else.
  ns::Status rewritten = ids.RewriteWithoutErased();
  Require(rewritten.ok() || (rewritten.code() == ns::StatusCode::kInternal &&
                             rewritten.message().rfind("identity log rewrite:", 0) == 0),
          "rewriting a log that opens failed", rewritten.ToString());
  auto again = ns::IdentityMap::Open(env, dir);
  Require(again.ok(), "the rewritten log does not open", again.ok() ? "" : again.status().ToString());
  auto table2 = (*again)->Snapshot();
  Require(table2->size() == table->size(), "the rewritten log has other distinct ids");
  for (uint32_t d = 0; d < table->size(); d++) {
    Require(table2->PersonOf(d) == table->PersonOf(d), "the rewritten log has other persons");
    Require(table2->Erased(d) == table->Erased(d), "the rewritten log has other erasures");
  }
  ns::IdentityLogReport after = ns::IdentityMap::Inspect(env, dir);
  Require(after.problems.empty(), "the rewritten log does not inspect");
  Require(!rewritten.ok() || (after.erased_ids_on_disk == 0 && after.erased_props_on_disk == 0),
          "erased data left after the rewrite");
  return 0;
}
