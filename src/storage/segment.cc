#include "storage/segment.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "core/checksum.h"
#include "core/env.h"
#include "storage/binary_io.h"

namespace ns {
namespace {

constexpr char kMagic[8] = {'N', 'S', 'T', 'A', 'R', 'S', 'E', 'G'};
constexpr char kEndMagic[8] = {'N', 'S', 'T', 'A', 'R', 'E', 'N', 'D'};
constexpr int kZstdLevel = 3;

enum ColumnKind : uint8_t { kColDid = 1, kColTs = 2, kColEv = 3, kColUuid = 4, kColPropNum = 5, kColPropStr = 6 };

struct ColumnDesc {
  uint8_t kind;
  std::string name;  // property key for property columns
  uint64_t offset, comp_len, raw_len;
  uint32_t crc;  // CRC32C of the compressed bytes
};

void PutCodes(BinWriter& w, const std::vector<uint32_t>& codes, uint32_t max_code) {
  uint8_t width = max_code < 256 ? 1 : max_code < 65536 ? 2 : 4;
  w.U8(width);
  for (uint32_t c : codes) w.Raw(&c, width);  // little-endian low bytes
}

bool GetCodes(BinReader& r, size_t n, std::vector<uint32_t>* out) {
  uint8_t width = r.U8();
  if (width != 1 && width != 2 && width != 4) return false;
  if (r.remaining() < n * width) return false;
  out->assign(n, 0);
  for (size_t i = 0; i < n; i++) r.Raw(&(*out)[i], width);
  return r.ok();
}

// A column name as errors quote it. It comes from the file, and error messages end up in
// JSON answers and logs: bytes outside printable ASCII become \xNN (found by
// segment_file_fuzz: a name of invalid UTF-8 made an invalid JSON message), at most 64.
std::string QuotedName(std::string_view name) {
  static const char* kHex = "0123456789abcdef";
  std::string out = "'";
  for (unsigned char ch : name.substr(0, 64)) {
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'')
      out += static_cast<char>(ch);
    else
      out += std::string("\\x") + kHex[ch >> 4] + kHex[ch & 15];
  }
  if (name.size() > 64) out += "...";
  return out + "'";
}

Status ColumnError(const std::string& path, const ColumnDesc& c, const char* what) {
  return Corruption("segment " + path + ": column " + QuotedName(c.name) + " " + what);
}

// Decodes a column's zstd frame. The frame must declare the footer's raw length (the
// writer's ZSTD_compress always stores it), checked before anything is allocated. The
// frame's file pages are let go afterwards: the decoded column is what is kept, and the
// mapped bytes of every segment would otherwise stay in the process's resident memory.
Status Decompress(const MappedFile& f, const ColumnDesc& c, const std::string& path, std::string* raw) {
  const uint8_t* p = f.data();
  unsigned long long declared = ZSTD_getFrameContentSize(p + c.offset, c.comp_len);
  if (declared != c.raw_len) return ColumnError(path, c, "failed to decompress (frame size does not match the footer)");
  raw->assign(c.raw_len, '\0');
  size_t got = ZSTD_decompress(raw->data(), raw->size(), p + c.offset, c.comp_len);
  f.DropPages(c.offset, c.comp_len);
  if (ZSTD_isError(got) || got != c.raw_len) return ColumnError(path, c, "failed to decompress");
  return Status::OK();
}

// Whether a footer's raw length fits the encoding of a column of n rows (WriteSegment),
// checked at open so that a lazy load never allocates more than the rows need. A zstd
// block holds at most 128 KiB and costs at least 4 bytes, so no frame inflates more than
// 32768 times.
bool RawLenPlausible(const ColumnDesc& c, uint64_t n) {
  if (c.raw_len > c.comp_len * 32768 + 1024) return false;
  switch (c.kind) {
    case kColDid:
    case kColTs: return c.raw_len >= n && c.raw_len <= 10 * n;  // one varint per row
    case kColEv: return c.raw_len == 1 + n || c.raw_len == 1 + 2 * n || c.raw_len == 1 + 4 * n;
    case kColUuid: return c.raw_len >= n && c.raw_len <= 17 * n && (c.raw_len - n) % 16 == 0;
    case kColPropNum: return c.raw_len >= n && c.raw_len <= 9 * n && (c.raw_len - n) % 8 == 0;
    case kColPropStr: return c.raw_len >= 5 + n;  // entry count, code width, one code per row
    default: return true;                         // a kind this version does not read is skipped
  }
}

}  // namespace

std::string SegmentFileName(int32_t day, uint64_t generation) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%06d-%012llu.nseg", day, static_cast<unsigned long long>(generation));
  return buf;
}

Status WriteSegment(Env* env, const std::string& path, const Block& block, const SegmentMeta& meta,
                    const EventDict& dict) {
  const size_t n = block.size();
  std::string file(kMagic, 8);
  BinWriter hdr;
  hdr.U32(kSegmentFormatVersion);
  file += hdr.str();
  std::vector<ColumnDesc> cols;
  auto add = [&](uint8_t kind, std::string name, const std::string& raw) -> Status {
    std::string comp(ZSTD_compressBound(raw.size()), '\0');
    size_t len = ZSTD_compress(comp.data(), comp.size(), raw.data(), raw.size(), kZstdLevel);
    if (ZSTD_isError(len)) return Internal(std::string("zstd: ") + ZSTD_getErrorName(len));
    comp.resize(len);
    cols.push_back({kind, std::move(name), file.size(), len, raw.size(), Crc32c(comp)});
    file += comp;
    return Status::OK();
  };
  {
    BinWriter w;
    int64_t prev = 0;
    for (uint32_t d : block.did()) {
      w.Varint(ZigZag(int64_t{d} - prev));
      prev = d;
    }
    NS_RETURN_IF_ERROR(add(kColDid, "did", w.str()));
  }
  {
    BinWriter w;
    int64_t prev = 0;
    for (int64_t t : block.ts()) {
      w.Varint(ZigZag(t - prev));
      prev = t;
    }
    NS_RETURN_IF_ERROR(add(kColTs, "ts", w.str()));
  }
  // Event names: local codes in order of first appearance.
  std::vector<std::string> names;
  {
    std::unordered_map<uint32_t, uint32_t> local;
    std::vector<uint32_t> codes(n);
    for (size_t i = 0; i < n; i++) {
      auto [it, ins] = local.try_emplace(block.ev()[i], static_cast<uint32_t>(names.size()));
      if (ins) names.push_back(dict.Name(block.ev()[i]));
      codes[i] = it->second;
    }
    BinWriter w;
    PutCodes(w, codes, static_cast<uint32_t>(names.size()));
    NS_RETURN_IF_ERROR(add(kColEv, "ev", w.str()));
  }
  if (std::any_of(block.has_uuid().begin(), block.has_uuid().end(), [](uint8_t h) { return h != 0; })) {
    BinWriter w;
    w.Raw(block.has_uuid().data(), n);
    for (size_t i = 0; i < n; i++)
      if (block.has_uuid()[i]) {
        w.U64(block.uuid()[i].hi);
        w.U64(block.uuid()[i].lo);
      }
    NS_RETURN_IF_ERROR(add(kColUuid, "uuid", w.str()));
  }
  for (const auto& key : block.prop_keys()) {
    const PropColumn* c = block.prop(key);
    BinWriter w;
    if (c->numeric && !c->sparse) {
      w.Raw(c->present.data(), n);
      for (size_t i = 0; i < n; i++)
        if (c->present[i]) w.F64(c->num[i]);
      NS_RETURN_IF_ERROR(add(kColPropNum, key, w.str()));
    } else if (c->numeric) {  // a decoded segment column (a block rewritten as it was read)
      for (size_t i = 0; i < n; i++) w.U8(c->Present(i) ? 1 : 0);
      for (size_t i = 0; i < n; i++)
        if (c->Present(i)) w.F64(c->NumAt(i));
      NS_RETURN_IF_ERROR(add(kColPropNum, key, w.str()));
    } else {
      w.U32(static_cast<uint32_t>(c->dict.size()));
      for (size_t i = 0; i < c->dict.size(); i++) {
        w.U8(c->dict_kind[i]);
        w.Str(c->dict[i]);
      }
      if (c->code_width == 4) {
        PutCodes(w, c->code, static_cast<uint32_t>(c->dict.size()));
      } else {  // a decoded segment column (a block rewritten as it was read)
        std::vector<uint32_t> wide(n);
        for (size_t i = 0; i < n; i++) wide[i] = c->CodeAt(i);
        PutCodes(w, wide, static_cast<uint32_t>(c->dict.size()));
      }
      NS_RETURN_IF_ERROR(add(kColPropStr, key, w.str()));
    }
  }
  BinWriter f;
  f.U32(static_cast<uint32_t>(n));
  f.I64(block.min_ts());
  f.I64(block.max_ts());
  f.U32(static_cast<uint32_t>(meta.partition_day));
  f.U64(meta.generation);
  f.U32(static_cast<uint32_t>(meta.replaces.size()));
  for (uint64_t g : meta.replaces) f.U64(g);
  f.U32(static_cast<uint32_t>(names.size()));
  for (const auto& nm : names) f.Str(nm);
  f.U32(static_cast<uint32_t>(cols.size()));
  for (const auto& c : cols) {
    f.U8(c.kind);
    f.Str(c.name);
    f.U64(c.offset);
    f.U64(c.comp_len);
    f.U64(c.raw_len);
    f.U32(c.crc);
  }
  BinWriter tail;
  tail.U32(static_cast<uint32_t>(f.size()));
  tail.U32(Crc32c(f.str()));
  file += f.str();
  file += tail.str();
  file.append(kEndMagic, 8);
  return WriteFileAtomic(env, path, file);
}

class SegmentReader {
 public:
  static StatusOr<SegmentInfo> Open(Env* env, const std::string& path, EventDict& dict);
  static std::shared_ptr<Block> FromColumns(BlockColumns c);
};

std::shared_ptr<Block> BlockFromColumns(BlockColumns columns) { return SegmentReader::FromColumns(std::move(columns)); }

std::shared_ptr<Block> SegmentReader::FromColumns(BlockColumns c) {
  auto b = std::make_shared<Block>();
  const size_t n = c.did.size();
  b->size_ = n;
  if (n) {
    auto [mn, mx] = std::minmax_element(c.ts.begin(), c.ts.end());
    b->min_ts_ = *mn;
    b->max_ts_ = *mx;
  }
  std::unordered_map<uint32_t, uint32_t> counts;
  for (uint32_t e : c.ev) counts[e]++;
  b->event_counts_.assign(counts.begin(), counts.end());
  std::sort(b->event_counts_.begin(), b->event_counts_.end());
  // In memory for good, as BlockBuilder::Finish's columns (not under the memory budget).
  auto did = std::make_unique<Block::VecData<uint32_t>>();
  did->v = std::move(c.did);
  b->fixed_[Block::kDid].SetPermanent(std::move(did));
  auto ts = std::make_unique<Block::VecData<int64_t>>();
  ts->v = std::move(c.ts);
  b->fixed_[Block::kTs].SetPermanent(std::move(ts));
  auto ev = std::make_unique<Block::VecData<uint32_t>>();
  ev->v = std::move(c.ev);
  b->fixed_[Block::kEv].SetPermanent(std::move(ev));
  auto uuid = std::make_unique<Block::UuidData>();
  uuid->ids = std::move(c.uuid);
  uuid->has = std::move(c.has_uuid);
  b->fixed_[Block::kUuid].SetPermanent(std::move(uuid));
  for (auto& [key, col] : c.props) {
    auto lp = std::make_unique<Block::LazyProp>();
    auto data = std::make_unique<Block::PropData>();
    data->col = std::move(col);
    lp->slot.SetPermanent(std::move(data));
    b->prop_keys_.push_back(key);
    b->props_.emplace(key, std::move(lp));
  }
  return b;
}

StatusOr<SegmentInfo> OpenSegment(Env* env, const std::string& path, EventDict& dict) {
  return SegmentReader::Open(env, path, dict);
}

StatusOr<SegmentInfo> SegmentReader::Open(Env* env, const std::string& path, EventDict& dict) {
  NS_ASSIGN_OR_RETURN(MappedFile mf, env->MapFile(path));
  auto file = std::make_shared<MappedFile>(std::move(mf));
  const uint8_t* p = file->data();
  const size_t size = file->size();
  auto corrupt = [&](const std::string& why) { return Corruption("segment " + path + ": " + why); };
  if (size < 12 + 16 || std::memcmp(p, kMagic, 8) != 0)
    return corrupt("bad magic (not a Northstar segment, or truncated)");
  uint32_t version;
  std::memcpy(&version, p + 8, 4);
  if (version != kSegmentFormatVersion)
    return corrupt("format version " + std::to_string(version) + " is not supported (expected " +
                   std::to_string(kSegmentFormatVersion) + ")");
  if (std::memcmp(p + size - 8, kEndMagic, 8) != 0) return corrupt("bad end magic (truncated file?)");
  uint32_t flen, fcrc;
  std::memcpy(&flen, p + size - 16, 4);
  std::memcpy(&fcrc, p + size - 12, 4);
  if (flen > size - 28) return corrupt("footer length out of range");
  const uint8_t* fp = p + size - 16 - flen;
  if (Crc32c(fp, flen) != fcrc) return corrupt("footer checksum mismatch");
  BinReader r(fp, flen);
  SegmentInfo info;
  info.path = path;
  info.file_bytes = size;
  uint32_t n = r.U32();
  int64_t min_ts = r.I64(), max_ts = r.I64();
  info.meta.partition_day = static_cast<int32_t>(r.U32());
  info.meta.generation = r.U64();
  uint32_t nrep = r.U32();
  if (!r.ok() || nrep > 1'000'000) return corrupt("bad footer");
  for (uint32_t i = 0; i < nrep; i++) info.meta.replaces.push_back(r.U64());
  uint32_t nnames = r.U32();
  if (!r.ok() || nnames > (1u << 24)) return corrupt("bad event name table");
  std::vector<uint32_t> global(nnames);
  for (uint32_t i = 0; i < nnames; i++) global[i] = dict.Intern(r.Str(1 << 16));
  uint32_t ncols = r.U32();
  if (!r.ok() || ncols > (1u << 20)) return corrupt("bad column table");
  std::vector<ColumnDesc> cols(ncols);
  const uint64_t data_end = size - 16 - flen;
  for (auto& c : cols) {
    c.kind = r.U8();
    c.name = std::string(r.Str(1 << 16));
    c.offset = r.U64();
    c.comp_len = r.U64();
    c.raw_len = r.U64();
    c.crc = r.U32();
    if (!r.ok()) return corrupt("bad column table");
    if (c.offset < 12 || c.offset > data_end || c.comp_len > data_end - c.offset || c.raw_len > (uint64_t{1} << 36))
      return corrupt("column " + QuotedName(c.name) + " lies outside the file");
    if (Crc32c(p + c.offset, c.comp_len) != c.crc)
      return corrupt("column " + QuotedName(c.name) + " checksum mismatch");
    if (!RawLenPlausible(c, n)) return corrupt("column " + QuotedName(c.name) + " has an impossible decoded length");
  }
  if (!r.ok()) return corrupt("bad footer");
  // Every byte was read for its checksum; columns map theirs again when first decoded.
  file->DropPages(0, size);

  auto block = std::make_shared<Block>();
  block->size_ = n;
  block->min_ts_ = min_ts;
  block->max_ts_ = max_ts;
  const ColumnDesc *did_c = nullptr, *ts_c = nullptr, *ev_c = nullptr, *uuid_c = nullptr;
  for (const auto& c : cols) {
    if (c.kind == kColDid)
      did_c = &c;
    else if (c.kind == kColTs)
      ts_c = &c;
    else if (c.kind == kColEv)
      ev_c = &c;
    else if (c.kind == kColUuid)
      uuid_c = &c;
  }
  if (!did_c || !ts_c || !ev_c) return corrupt("missing did, ts or ev column");
  // Event names of the file's local codes -> global codes, checked against the table.
  auto decode_ev = [file, path, n, nnames, global, ev_d = *ev_c](std::vector<uint32_t>* out) -> Status {
    std::string raw;
    NS_RETURN_IF_ERROR(Decompress(*file, ev_d, path, &raw));
    BinReader er(raw);
    if (!GetCodes(er, n, out)) return ColumnError(path, ev_d, "malformed");
    for (uint32_t& c : *out) {
      if (c >= nnames) return Corruption("segment " + path + ": event code out of range");
      c = global[c];
    }
    return Status::OK();
  };
  // Event counts need the ev column now (for block skipping): decoded at open, counted and
  // dropped. Not kept in the column cache: most queries read the event indexes
  // (Block::EventRows), not ev itself, and 4 B per row of every block (210 MiB on dataset
  // M) would otherwise stay in every process's memory until the budget evicts it.
  {
    std::vector<uint32_t> ev;
    NS_RETURN_IF_ERROR(decode_ev(&ev));
    // Codes are dense (global event codes): count in a flat array, not a hash map.
    std::vector<uint32_t> counts;
    for (uint32_t c : ev) {
      if (c >= counts.size()) counts.resize(c + 1, 0);
      counts[c]++;
    }
    for (uint32_t c = 0; c < counts.size(); c++)
      if (counts[c]) block->event_counts_.emplace_back(c, counts[c]);
  }
  const ColumnDesc did_d = *did_c, ts_d = *ts_c;
  const std::optional<ColumnDesc> uuid_d = uuid_c ? std::optional<ColumnDesc>(*uuid_c) : std::nullopt;
  // The lazy loaders validate once per column load (never per row access): a malformed
  // column is a Corruption naming the file and the column (Block::status()).
  auto read_uuids = [file, path, n, uuid_d](std::vector<uint8_t>* has, std::vector<Uuid>* ids) -> Status {
    has->assign(n, 0);
    ids->assign(n, Uuid{});
    if (!uuid_d) return Status::OK();
    std::string raw;
    NS_RETURN_IF_ERROR(Decompress(*file, *uuid_d, path, &raw));
    BinReader rr(raw);
    rr.Raw(has->data(), n);
    for (size_t i = 0; i < n; i++)
      if ((*has)[i]) {
        (*ids)[i].hi = rr.U64();
        (*ids)[i].lo = rr.U64();
      }
    if (!rr.ok() || rr.remaining() != 0) return ColumnError(path, *uuid_d, "malformed");
    return Status::OK();
  };
  block->loader_ = [file, path, n, did_d, ts_d, read_uuids, decode_ev](int column, CachedData& out) -> Status {
    auto deltas = [&](const ColumnDesc& c, auto& out) -> Status {
      std::string raw;
      NS_RETURN_IF_ERROR(Decompress(*file, c, path, &raw));
      BinReader rr(raw);
      out.resize(n);
      uint64_t prev = 0;  // unsigned: a malformed delta wraps instead of overflowing
      for (size_t i = 0; i < n; i++) {
        prev += static_cast<uint64_t>(UnZigZag(rr.Varint()));
        out[i] = static_cast<std::remove_reference_t<decltype(out[0])>>(prev);
      }
      if (!rr.ok() || rr.remaining() != 0) return ColumnError(path, c, "malformed");
      return Status::OK();
    };
    if (column == Block::kDid) return deltas(did_d, static_cast<Block::VecData<uint32_t>&>(out).v);
    if (column == Block::kTs) return deltas(ts_d, static_cast<Block::VecData<int64_t>&>(out).v);
    if (column == Block::kEv) return decode_ev(&static_cast<Block::VecData<uint32_t>&>(out).v);
    auto& u = static_cast<Block::UuidData&>(out);
    return read_uuids(&u.has, &u.ids);
  };
  block->uuid_reader_ = read_uuids;
  for (const auto& c : cols) {
    if (c.kind != kColPropNum && c.kind != kColPropStr) continue;
    auto lp = std::make_unique<Block::LazyProp>();
    ColumnDesc cd = c;
    lp->load = [file, path, n, cd](PropColumn& col) -> Status {
      std::string raw;
      NS_RETURN_IF_ERROR(Decompress(*file, cd, path, &raw));
      BinReader rr(raw);
      bool ok = true;
      if (cd.kind == kColPropNum) {
        col.numeric = true;
        col.present.resize(n);
        rr.Raw(col.present.data(), n);
        col.num.assign(n, 0);
        for (size_t i = 0; i < n; i++)
          if (col.present[i]) col.num[i] = rr.F64();
        col.MakeSparseIfFew();  // an amount that is 0 or absent on most events: not 9 bytes a row
      } else {
        uint32_t nd = rr.U32();
        if (nd > raw.size() + 1) ok = false;
        for (uint32_t i = 0; ok && i < nd; i++) {
          col.dict_kind.push_back(static_cast<PropValue::Kind>(rr.U8()));
          col.dict.emplace_back(rr.Str());
        }
        ok = ok && GetCodes(rr, n, &col.code);
        for (uint32_t c2 : col.code)
          if (c2 >= nd) ok = false;
        col.NarrowCodes();  // a channel's few values: a byte a row, not 4
      }
      if (!ok || !rr.ok()) return ColumnError(path, cd, "malformed");
      return Status::OK();
    };
    block->prop_keys_.push_back(c.name);
    block->props_.emplace(c.name, std::move(lp));
  }
  info.block = std::move(block);
  return info;
}

}  // namespace ns
