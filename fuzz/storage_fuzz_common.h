// Shared helpers of the on-disk decoder targets (segment_file_fuzz, wal_fuzz,
// identity_log_fuzz): a private scratch directory on tmpfs, and checksum re-signing.
// The decoders check CRC32C before anything else, so a mutated input would almost always
// stop there; the targets recompute the checksums of what they are given, so that the
// mutations reach the code behind them (torn or corrupt framing still happens: a length
// that runs past the end is left alone).
#pragma once

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/checksum.h"
#include "core/file_util.h"

namespace nsfuzz {

// A directory of this process (tmpfs when there is one), removed at exit; each input
// overwrites the same files. Also silences the store's log (torn-tail warnings).
inline const std::string& ScratchDir() {
  static const std::string dir = [] {
    spdlog::set_level(spdlog::level::off);
    std::error_code ec;
    std::string root = std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp";
    std::string d = root + "/ns-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d, ec);
    return d;
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return true;
  }();
  (void)cleanup;
  return dir;
}

inline void WriteWhole(const std::string& path, std::string_view data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) std::abort();
  std::fclose(f);
}

inline uint32_t Load32(const std::string& s, size_t off) {
  uint32_t v;
  std::memcpy(&v, s.data() + off, 4);
  return v;
}
inline void Store32(std::string& s, size_t off, uint32_t v) { std::memcpy(s.data() + off, &v, 4); }

// Record framing of the WAL and the identity log ([u32 len][u32 crc32c][payload]...):
// recomputes the CRC of every record that lies inside the data.
inline void ResignRecords(std::string& s) {
  size_t off = 0;
  while (off + 8 <= s.size()) {
    uint32_t len = Load32(s, off);
    if (len > s.size() - off - 8) break;
    Store32(s, off + 4, ns::Crc32c(std::string_view(s.data() + off + 8, len)));
    off += 8 + len;
  }
}

}  // namespace nsfuzz
