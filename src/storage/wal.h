// Write-ahead log. A WAL directory holds numbered files "<seq>.wal"; each file is a
// sequence of records [u32 payload length][u32 CRC32C of payload][payload].
// WalWriter appends and fsyncs (the caller groups many requests into one sync: group
// commit). ReplayWal reads records back, truncating a torn or corrupt tail.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/status.h"

namespace ns {

class WalWriter {
 public:
  ~WalWriter();
  // Opens (creating) file seq in dir for appending, through env (not owned).
  static StatusOr<std::unique_ptr<WalWriter>> Open(Env* env, const std::string& dir, uint64_t seq);
  // Appends one record to a buffer (not yet written).
  Status Append(std::string_view payload);
  // Forgets the records appended since the last Write (nothing of them reached the file).
  void DropAppended() { buf_.clear(); }
  // Makes every appended record durable (Write, then fdatasync); on failure rolls back.
  Status Sync();

  // Pipelined use (the event store's group commit): Write writes the appended records to
  // the file, not yet durable, and written() is the file's end after them; SyncThrough(end)
  // makes the file durable through `end` and may run on another thread while the next
  // Write does. Neither rolls back on failure (the other may be in the middle of its work):
  // after a failed Write, later ones refuse until Rollback, which the caller runs once
  // neither is running.
  Status Write();
  uint64_t written() const { return written_; }
  Status SyncThrough(uint64_t end);

  // Drops everything written or appended since the last successful sync (after a failed
  // write). If the file cannot be cut back (a read-only file system), the writer refuses
  // every later write until it can: appending after a torn record would hide the new
  // records from recovery, which stops at the first bad record.
  Status Rollback();
  uint64_t seq() const { return seq_; }
  uint64_t size() const { return size_; }

 private:
  std::unique_ptr<WritableFile> file_;
  uint64_t seq_ = 0;
  uint64_t size_ = 0;                     // bytes that may have reached the file
  uint64_t written_ = 0;                  // bytes written by successful writes
  std::atomic<uint64_t> synced_size_{0};  // bytes known durable (SyncThrough's thread sets it)
  bool torn_tail_ = false;                // bytes past synced_size_ that a failed Rollback left behind
  bool write_failed_ = false;             // a Write failed: refuse until Rollback
  std::string path_;
  std::string buf_;
};

// Appends one framed record ([u32 length][u32 CRC32C][payload]) to `out`: the bytes
// WalWriter::Append writes, for a log file built whole (IdentityMap::RewriteWithoutErased).
void AppendWalRecord(std::string& out, std::string_view payload);

std::string WalFileName(uint64_t seq);
// Sequence numbers of the WAL files in dir, ascending.
StatusOr<std::vector<uint64_t>> ListWalFiles(Env* env, const std::string& dir);

struct WalReplayStats {
  uint64_t records = 0;
  uint64_t truncated_bytes = 0;  // torn/corrupt tail removed
};

// Calls fn for every intact record of file seq. A torn or corrupt tail is truncated
// (when truncate is true) and reported in stats; it is not an error.
Status ReplayWal(Env* env, const std::string& dir, uint64_t seq, bool truncate,
                 const std::function<Status(std::string_view)>& fn, WalReplayStats* stats);

// The framing parser under ReplayWal, on bytes: calls fn for every intact record of data
// and returns the length of the intact prefix (data.size() when nothing is torn). Errors
// are fn's.
StatusOr<size_t> ParseWalRecords(std::string_view data, const std::function<Status(std::string_view)>& fn,
                                 uint64_t* records);

}  // namespace ns
