// File-system helpers with the durability rules of DESIGN §4: atomic creation
// (temp file, fsync, rename, fsync directory) and read-only memory maps. They are the
// POSIX implementation behind Env::Default() (core/env.h); the event store does all its
// file work through an Env so that tests can inject faults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ns {

Status ErrnoStatus(std::string_view what, const std::string& path, int err);

// Writes data to path atomically: path.tmp is written and fsynced, renamed over path,
// and the directory fsynced. A crash leaves either the old file or the new one.
Status WriteFileAtomic(const std::string& path, std::string_view data);
StatusOr<std::string> ReadFile(const std::string& path);
Status FsyncDir(const std::string& dir);
Status MakeDirs(const std::string& dir);
// Names (not paths) of the entries of dir, sorted.
StatusOr<std::vector<std::string>> ListDir(const std::string& dir);
bool FileExists(const std::string& path);

// A read-only memory map of a whole file. Movable, not copyable.
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static StatusOr<MappedFile> Open(const std::string& path);
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Lets go of the pages wholly inside [offset, offset + len) once they were read (decoded
  // columns, checked checksums): they leave the process's resident memory but stay in the
  // page cache, and a later read maps them again from the file. The mapping is read-only
  // and private, so nothing is lost.
  void DropPages(size_t offset, size_t len) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// An exclusive advisory lock on dir/LOCK held for the object's lifetime, so that two
// processes never write one data directory.
class DirLock {
 public:
  ~DirLock();
  static StatusOr<std::unique_ptr<DirLock>> Acquire(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace ns
