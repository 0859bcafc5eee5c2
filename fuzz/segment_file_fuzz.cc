// libFuzzer target: segment files (.nseg, docs/storage-format.md §5) through OpenSegment
// and every lazily decoded column (Block::LoadAll). The input is a whole file; the target
// re-signs the column and footer checksums (storage_fuzz_common.h) so that mutations reach
// the decoders. Checks: opening or loading fails only with Corruption, never a crash or an
// exception; a block that loads has columns of its row count, dictionary codes inside the
// dictionary and event counts that add up to the rows; and what loads survives a rewrite
// (WriteSegment, then OpenSegment again) unchanged.
//
// Inputs whose footer declares more than 2^20 rows or a column of more than 16 MiB decoded
// are skipped: the store accepts them (up to what the rows need, checked at open), but they
// would only test the allocator.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/env.h"
#include "fuzz_common.h"
#include "storage/binary_io.h"
#include "storage/segment.h"
#include "storage_fuzz_common.h"

namespace {

using nsfuzz::Require;

constexpr uint64_t kMaxRows = 1 << 20;
constexpr uint64_t kMaxRaw = 16 << 20;

// Recomputes the checksums of a segment file in place; false to skip the input.
bool Resign(std::string& s) {
  if (s.size() < 28) return true;
  const uint32_t flen = nsfuzz::Load32(s, s.size() - 16);
  if (flen > s.size() - 28) return true;
  const size_t fstart = s.size() - 16 - flen;
  ns::BinReader r(s.data() + fstart, flen);
  uint64_t n = r.U32();
  if (n > kMaxRows) return false;
  r.I64();
  r.I64();
  r.U32();
  r.U64();
  uint32_t nrep = r.U32();
  if (!r.ok() || nrep > flen) return true;
  for (uint32_t i = 0; i < nrep; i++) r.U64();
  uint32_t nnames = r.U32();
  if (!r.ok() || nnames > flen) return true;
  for (uint32_t i = 0; i < nnames; i++) r.Str(1 << 16);
  uint32_t ncols = r.U32();
  if (!r.ok() || ncols > flen) return true;
  for (uint32_t i = 0; i < ncols && r.ok(); i++) {
    r.U8();
    r.Str(1 << 16);
    uint64_t offset = r.U64(), comp_len = r.U64(), raw_len = r.U64();
    const size_t crc_at =
        fstart + static_cast<size_t>(r.cursor() - reinterpret_cast<const uint8_t*>(s.data() + fstart));
    r.U32();
    if (!r.ok()) break;
    if (raw_len > kMaxRaw) return false;
    if (offset <= fstart && comp_len <= fstart - offset)
      nsfuzz::Store32(s, crc_at, ns::Crc32c(s.data() + offset, static_cast<size_t>(comp_len)));
  }
  nsfuzz::Store32(s, s.size() - 12, ns::Crc32c(s.data() + fstart, flen));
  return true;
}

void CheckBlock(const ns::Block& b) {
  const size_t n = b.size();
  Require(b.did().size() == n && b.ts().size() == n && b.ev().size() == n, "fixed column length");
  Require(b.uuid().size() == n && b.has_uuid().size() == n, "uuid column length");
  uint64_t counted = 0;
  for (const auto& [code, c] : b.event_counts()) counted += c;
  Require(counted == n, "event counts do not add up to the rows");
  for (const auto& key : b.prop_keys()) {
    const ns::PropColumn* c = b.prop(key);
    Require(c != nullptr, "listed property missing", key);
    if (c->numeric && c->sparse) {  // block.h: a bit per row, a rank per word, a value per set bit
      Require(c->bits.size() == (n + 63) / 64 && c->rank.size() == c->bits.size(), "sparse column length", key);
      size_t set = 0;
      for (size_t w = 0; w < c->bits.size(); w++) {
        Require(c->rank[w] == set, "sparse column rank", key);
        set += static_cast<size_t>(__builtin_popcountll(c->bits[w]));
      }
      Require(c->vals.size() == set, "sparse column values", key);
    } else if (c->numeric) {
      Require(c->present.size() == n && c->num.size() == n, "numeric column length", key);
    } else {
      const size_t len = c->code_width == 1 ? c->code8.size() : c->code_width == 2 ? c->code16.size() : c->code.size();
      Require(len == n && c->dict.size() == c->dict_kind.size(), "dictionary column length", key);
      for (size_t i = 0; i < n; i++) Require(c->CodeAt(i) < c->dict.size(), "dictionary code out of range", key);
    }
  }
}

// What a reader sees of row i, for the rewrite comparison.
std::string RowText(const ns::Block& b, const ns::EventDict& dict, size_t i) {
  std::string out = std::to_string(b.did()[i]) + "|" + std::to_string(b.ts()[i]) + "|" + dict.Name(b.ev()[i]) + "|";
  if (b.has_uuid()[i]) out += std::to_string(b.uuid()[i].hi) + ":" + std::to_string(b.uuid()[i].lo);
  for (const auto& key : b.prop_keys()) {
    const ns::PropColumn* c = b.prop(key);
    if (!c->Present(i)) continue;
    ns::PropValue v = c->Get(i);
    out += "|" + key + "=" + std::to_string(static_cast<int>(v.kind)) + ":" + v.AsString();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file(reinterpret_cast<const char*>(data), size);
  if (!Resign(file)) return 0;
  ns::Env* env = ns::Env::Default();
  const std::string path = nsfuzz::ScratchDir() + "/in.nseg";
  nsfuzz::WriteWhole(path, file);
  ns::EventDict dict;
  auto info = ns::OpenSegment(env, path, dict);
  if (!info.ok()) {
    nsfuzz::CheckStatus(info.status());
    Require(info.status().code() == ns::StatusCode::kCorruption, "open failed with a code other than Corruption",
            info.status().ToString());
    return 0;
  }
  const ns::Block& b = *info->block;
  ns::Status st = b.LoadAll();
  std::vector<uint8_t> has;
  std::vector<ns::Uuid> ids;
  ns::Status ust = b.ReadUuids(&has, &ids);
  Require(has.size() == b.size() && ids.size() == b.size(), "ReadUuids length");
  CheckBlock(b);  // in bounds even when a column failed
  if (!st.ok()) {
    nsfuzz::CheckStatus(st);
    Require(st.code() == ns::StatusCode::kCorruption, "load failed with a code other than Corruption", st.ToString());
    Require(b.status().code() == ns::StatusCode::kCorruption, "status() forgot the failure");
    return 0;
  }
  Require(ust.ok(), "ReadUuids failed where the uuid column loaded", ust.ToString());
  for (size_t i = 0; i < b.size(); i++)
    Require(has[i] == b.has_uuid()[i] && (!has[i] || ids[i] == b.uuid()[i]), "ReadUuids differs from uuid()");
  // Rewrite what was read and read it again: the writer takes whatever the reader accepts.
  const std::string path2 = nsfuzz::ScratchDir() + "/out.nseg";
  ns::Status w = ns::WriteSegment(env, path2, b, info->meta, dict);
  Require(w.ok(), "rewrite failed", w.ToString());
  auto again = ns::OpenSegment(env, path2, dict);
  Require(again.ok(), "rewritten segment does not open", again.status().ToString());
  const ns::Block& b2 = *again->block;
  ns::Status st2 = b2.LoadAll();
  Require(st2.ok(), "rewritten segment does not load", st2.ToString());
  Require(b2.size() == b.size() && b2.min_ts() == b.min_ts() && b2.max_ts() == b.max_ts(),
          "rewrite changed the footer");
  for (size_t i = 0; i < b.size(); i++) {
    std::string r1 = RowText(b, dict, i), r2 = RowText(b2, dict, i);
    Require(r1 == r2, "rewrite changed a row", r1 + " / " + r2);
  }
  return 0;
}
