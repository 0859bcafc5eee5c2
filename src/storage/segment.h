// Segment files: immutable columnar files, one time partition each, rows sorted by
// (person, timestamp). The byte layout is specified in docs/storage-format.md; keep the
// two in step. Format version: kSegmentFormatVersion.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "storage/block.h"
#include "storage/event_dict.h"

namespace ns {

constexpr uint32_t kSegmentFormatVersion = 1;

struct SegmentMeta {
  int32_t partition_day = 0;       // UTC day (ts_ms / 86400000) of every row
  uint64_t generation = 0;         // store generation that created the file
  std::vector<uint64_t> replaces;  // generations of same-partition segments this one replaces
};

struct SegmentInfo {
  std::string path;
  SegmentMeta meta;
  uint64_t file_bytes = 0;
  std::shared_ptr<Block> block;
};

// Writes `block` (rows already sorted) to `path` atomically through env (temp, fsync,
// rename, fsync dir).
Status WriteSegment(Env* env, const std::string& path, const Block& block, const SegmentMeta& meta,
                    const EventDict& dict);

// Opens a segment: verifies magic, version, footer and every column checksum, then returns a
// block whose columns decode lazily from the memory map. Errors name the file.
StatusOr<SegmentInfo> OpenSegment(Env* env, const std::string& path, EventDict& dict);

// A block's columns built elsewhere in storage (the bulk loader: storage/bulk_loader.cc),
// moved into an in-memory Block. Every vector has one entry per row; props sorted by key.
struct BlockColumns {
  std::vector<uint32_t> did;
  std::vector<int64_t> ts;
  std::vector<uint32_t> ev;
  std::vector<Uuid> uuid;
  std::vector<uint8_t> has_uuid;
  std::vector<std::pair<std::string, PropColumn>> props;
};
std::shared_ptr<Block> BlockFromColumns(BlockColumns columns);

// File name of a segment: "<day>-<generation>.nseg" with zero padding so names sort.
std::string SegmentFileName(int32_t day, uint64_t generation);

}  // namespace ns
