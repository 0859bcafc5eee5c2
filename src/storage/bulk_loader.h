// BulkLoader: the store's bulk-load path for `northstar import` (issue 15). Rows arrive in
// columns (BulkRows, one per piece of the input file, parsed on several threads), never as
// Event objects; the loader drops duplicate uuids, resolves distinct ids and applies
// identity effects in input order exactly as Append would, keeps the rows in columns, and
// writes each UTC-day partition once: sorted by (person, ts), one segment per day, committed
// by one CHECKPOINT. No WAL, no memtable, no flush-then-compaction rewrite.
//
// Durability is the unlogged import's (docs/decisions.md): nothing of the rows is durable
// before a write commits; a crash leaves the rows of the writes committed so far (the
// loader writes when spill_rows rows are pending, so memory stays bounded on files larger
// than memory). Threading: one caller at a time; the loader takes the store's locks per call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/uuid.h"
#include "storage/event.h"
#include "storage/event_store.h"

namespace ns {

// Rows of one piece of an input, in columns. Strings are stored once per piece (ids,
// names, property texts); rows refer to them by index.
struct BulkRows {
  // Property value codes per row: kAbsent, kNumber (the value is in num[row]), or
  // 1 + index into text.
  static constexpr uint32_t kAbsent = 0;
  static constexpr uint32_t kNumber = UINT32_MAX;
  struct PropCol {
    std::string key;
    std::vector<uint32_t> code;         // one per row
    std::vector<double> num;            // empty, or one per row (when any row is a number)
    std::vector<std::string> text;      // distinct texts of this piece
    std::vector<PropValue::Kind> kind;  // kind of each text (kStr or kJson)
  };
  // Identity effects of a row (few rows have any): applied in row order, as Append does.
  struct Identity {
    uint32_t row = 0;
    bool identifies = false;  // IdentifiesPerson(event)
    std::vector<std::string> merge_with;
    std::vector<Property> set, set_once;
  };
  std::vector<int64_t> ts;
  std::vector<uint32_t> id;    // index into ids
  std::vector<uint32_t> name;  // index into names
  std::vector<std::string> ids, names;
  std::vector<uint8_t> has_uuid;  // empty when no row has a uuid, else one per row
  std::vector<Uuid> uuid;         // with has_uuid
  std::vector<PropCol> props;     // one per key
  std::vector<Identity> identity;
  size_t size() const { return ts.size(); }
};

class BulkLoader {
 public:
  struct Options {
    // Pending rows that make Add write them out (a committed write; the partitions a later
    // write touches again are merged by CompactAll). ~45 bytes of memory per pending row.
    size_t spill_rows = size_t{1} << 24;
    // Threads that sort and write partitions.
    int threads = 2;
  };
  // FailedPrecondition if the store has append listeners (the bulk path does not call
  // them: it is for offline imports).
  static StatusOr<std::unique_ptr<BulkLoader>> Begin(EventStore* store, Options options);
  ~BulkLoader();

  // The next piece of the input (pieces in input order). Returns accepted and duplicates.
  StatusOr<AppendResult> Add(BulkRows rows);
  // Writes every pending row and commits. The caller then runs Flush() and CompactAll().
  Status Finish();
  size_t pending_rows() const;
  // The rows the caller expects (an estimate from the file size): the pending columns are
  // allocated once instead of growing by copies.
  void Reserve(size_t rows);

 private:
  struct State;
  explicit BulkLoader(std::unique_ptr<State> s);
  Status CheckIdentityKept() const;  // REQUIRES the store's write lock
  Status Write();
  std::unique_ptr<State> s_;
};

}  // namespace ns
