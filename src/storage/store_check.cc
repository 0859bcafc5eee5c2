// `northstar check` of one project directory, with the store's own parsers (one parser per
// format): identity log, CHECKPOINT, WAL, segments fully decoded. Reads, never repairs.
#include <algorithm>
#include <cstdint>
#include <exception>

#include "core/time_zone.h"
#include "storage/event_store_impl.h"

namespace ns {

StoreCheckReport CheckStoreDirectory(const std::string& dir) {
  StoreCheckReport r;
  IdentityLogReport idlog = IdentityMap::Inspect(Env::Default(), dir + "/identity");
  for (const auto& p : idlog.problems) r.problems.push_back(p);
  for (const auto& t : idlog.torn_tails) r.warnings.push_back(t + " (removed at next start)");
  // An erasure is complete only once the identity log was rewritten too (docs/people.md).
  if (idlog.erased_ids_on_disk || idlog.erased_props_on_disk)
    r.problems.push_back(dir + "/identity: " + std::to_string(idlog.erased_ids_on_disk) +
                         " erased distinct ids still have their id string and " +
                         std::to_string(idlog.erased_props_on_disk) +
                         " their person properties in the log (removed by `northstar compact`)");
  const uint64_t dids = idlog.distinct_ids;
  uint64_t gen = 0;
  if (FileExists(dir + "/CHECKPOINT")) {
    auto text = ReadFile(dir + "/CHECKPOINT");
    auto cp = text.ok() ? ParseCheckpoint(*text) : StatusOr<Checkpoint>(text.status());
    if (!cp.ok())
      r.problems.push_back(dir + "/CHECKPOINT: malformed (" + cp.status().message() + ")");
    else
      gen = cp->generation;
  }
  auto seqs = ListWalFiles(Env::Default(), dir + "/wal");
  if (seqs.ok()) {
    for (uint64_t s : *seqs) {
      WalReplayStats st;
      Status rs = ReplayWal(
          Env::Default(), dir + "/wal", s, false, [](std::string_view) { return Status::OK(); }, &st);
      if (!rs.ok()) r.problems.push_back(rs.message());
      if (st.truncated_bytes)
        r.warnings.push_back(dir + "/wal/" + WalFileName(s) + ": torn tail of " + std::to_string(st.truncated_bytes) +
                             " bytes (an unacknowledged write; removed at next start)");
    }
  }
  auto names = ListDir(dir + "/segments");
  if (!names.ok()) {
    r.problems.push_back(names.status().message());
    return r;
  }
  EventDict dict;
  for (const auto& n : *names) {
    if (n.size() < 5 || n.substr(n.size() - 5) != ".nseg") continue;
    std::string path = dir + "/segments/" + n;
    auto info = OpenSegment(Env::Default(), path, dict);
    if (!info.ok()) {
      r.problems.push_back(info.status().message());
      continue;
    }
    if (info->meta.generation > gen)
      r.warnings.push_back(path + ": generation " + std::to_string(info->meta.generation) +
                           " is newer than the checkpoint (an unfinished flush; removed at next start)");
    {
      ColumnCache::ReadTicket reading;  // this segment's columns, until it is checked
      const Block& b = *info->block;
      // Every column, once: a column that does not decode is a Corruption naming it.
      if (Status st = b.LoadAll(); !st.ok()) {
        r.problems.push_back(st.message());
        continue;
      }
      const auto& ts = b.ts();
      const auto& did = b.did();
      int64_t mn = INT64_MAX, mx = INT64_MIN;
      bool bad_day = false, bad_did = false;
      uint64_t erased_rows = 0;
      for (size_t i = 0; i < b.size(); i++) {
        if (did[i] < idlog.erased.size() && idlog.erased[did[i]]) erased_rows++;
        mn = std::min(mn, ts[i]);
        mx = std::max(mx, ts[i]);
        if (UtcDay(ts[i]) != info->meta.partition_day) bad_day = true;
        if (did[i] >= dids) bad_did = true;
      }
      if (b.size() && (mn != b.min_ts() || mx != b.max_ts()))
        r.problems.push_back(path + ": footer min/max timestamps do not match the rows");
      if (bad_day)
        r.problems.push_back(path + ": rows outside partition day " + std::to_string(info->meta.partition_day));
      if (bad_did) r.problems.push_back(path + ": rows reference distinct ids missing from the identity log");
      // An erasure is complete only once compaction rewrote the files (docs/people.md).
      if (erased_rows)
        r.problems.push_back(path + ": " + std::to_string(erased_rows) +
                             " rows of erased persons remain (removed by the next compaction: `northstar compact`)");
      r.rows += b.size();
      r.segments++;
      r.ok.push_back(path + "  " + std::to_string(b.size()) + " rows");
    }
  }
  return r;
}

}  // namespace ns
