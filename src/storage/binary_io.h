// Little-endian binary encoding helpers for WAL records, the identity log and segment
// footers. Every read is bounds-checked: a short or corrupt input makes the reader fail
// (ok() == false), never read past its end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ns {

class BinWriter {
 public:
  void U8(uint8_t v) { *Room(1) = static_cast<char>(v); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I64(int64_t v) { Raw(&v, 8); }
  void F64(double v) { Raw(&v, 8); }
  void Str(std::string_view s) {
    char* p = Room(4 + s.size());
    const uint32_t n = static_cast<uint32_t>(s.size());
    std::memcpy(p, &n, 4);
    if (!s.empty()) std::memcpy(p + 4, s.data(), s.size());
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      U8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    U8(static_cast<uint8_t>(v));
  }
  void Raw(const void* p, size_t n) {
    if (n != 0) std::memcpy(Room(n), p, n);
  }
  // The bytes written. The buffer itself: a caller may move it out, which ends the writer.
  std::string& str() {
    out_.resize(len_);
    return out_;
  }
  size_t size() const { return len_; }

 private:
  // n bytes at the end, the length advanced past them. The buffer grows by doubling, so a
  // write is a bounds check and a memcpy: std::string::append per field was an out-of-line
  // call each, visible in the WAL encoding of every ingested event.
  char* Room(size_t n) {
    if (len_ + n > out_.size()) out_.resize(std::max(out_.size() * 2, len_ + n + 56));
    char* p = out_.data() + len_;
    len_ += n;
    return p;
  }
  std::string out_;  // [0, len_) written; the rest spare room until str()
  size_t len_ = 0;
};

class BinReader {
 public:
  BinReader(const void* p, size_t n) : p_(static_cast<const uint8_t*>(p)), end_(p_ + n) {}
  explicit BinReader(std::string_view s) : BinReader(s.data(), s.size()) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  uint8_t U8() {
    uint8_t v = 0;
    Raw(&v, 1);
    return v;
  }
  uint32_t U32() {
    uint32_t v = 0;
    Raw(&v, 4);
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Raw(&v, 8);
    return v;
  }
  int64_t I64() {
    int64_t v = 0;
    Raw(&v, 8);
    return v;
  }
  double F64() {
    double v = 0;
    Raw(&v, 8);
    return v;
  }
  std::string_view Str(size_t max_len = 64u << 20) {
    uint32_t n = U32();
    if (!ok_ || n > max_len || n > remaining()) {
      ok_ = false;
      return {};
    }
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) {
        ok_ = false;
        return 0;
      }
      uint8_t b = *p_++;
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    ok_ = false;
    return 0;
  }
  void Raw(void* out, size_t n) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      std::memset(out, 0, n);
      return;
    }
    std::memcpy(out, p_, n);
    p_ += n;
  }
  const uint8_t* cursor() const { return p_; }
  void Skip(size_t n) {
    if (n > remaining())
      ok_ = false;
    else
      p_ += n;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

inline uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

}  // namespace ns
