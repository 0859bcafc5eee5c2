// Env: the file-system operations of the event store, behind one small interface
// (LevelDB's Env), so that tests can make the Nth write, sync or rename fail
// (tests/unit/fault_injection_env.h) without a full disk. Env::Default() is POSIX: the
// functions of core/file_util.h, with the same system calls and costs.
//
// Only what storage uses is here: writable files (append, sync, truncate, close), rename,
// remove, directories (create, list, fsync), reading a whole file and mapping one.
// Threading: an Env is shared by every store that names it and must be thread-safe; a
// WritableFile is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/file_util.h"
#include "core/status.h"

namespace ns {

// A file open for writing. Errors name the file.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of data at the end of the file. On an error an unknown prefix of data may
  // have reached the file (the caller cuts it back with Truncate).
  virtual Status Append(std::string_view data) = 0;
  // Makes everything appended durable: fdatasync for a file opened by NewAppendableFile
  // (the WAL: its data and size), fsync for one made by NewWritableFile (a new file whose
  // inode must be durable before it is renamed into place).
  virtual Status Sync() = 0;
  // Cuts the file to size bytes (a WAL rollback).
  virtual Status Truncate(uint64_t size) = 0;
  // Closes the file; later calls fail. The destructor closes an open file too.
  virtual Status Close() = 0;
  // Length of the file when it was opened plus what was appended since (successfully or
  // not, until Truncate).
  virtual uint64_t size() const = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  // The POSIX file system. Never deleted.
  static Env* Default();

  // Creates path, or truncates it if it exists.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens path for appending, creating it if missing; size() starts at its length.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  virtual StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // A read-only memory map of the whole file (segments).
  virtual StatusOr<MappedFile> MapFile(const std::string& path) = 0;
  virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;
  // Creates dir and its missing parents.
  virtual Status CreateDirs(const std::string& dir) = 0;
  // Names (not paths) of the entries of dir, sorted.
  virtual StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // fsync of a directory: makes the creations, renames and removals in it durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual bool FileExists(const std::string& path) = 0;
};

// Writes data to path atomically through env: path.tmp is written and synced, renamed over
// path, and the directory synced. A crash leaves either the old file or the new one.
// *renamed (when given) tells whether the rename happened: if only the directory sync
// failed, the new file is in place (every reader sees it) but may not survive a crash,
// so the caller must treat its content as committed and not-yet-durable at once.
Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data, bool* renamed = nullptr);

}  // namespace ns
