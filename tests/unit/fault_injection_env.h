// FaultInjectionEnv: an Env wrapper for tests that counts the file operations that change
// something (create/open for writing, append, sync, truncate, rename, remove, mkdir,
// directory sync) and makes the Nth of them fail with a chosen errno, like a disk that
// fills up or starts returning EIO (LevelDB's fault_injection_test). A failing append
// first writes half of its data, as a write that runs out of space part-way does. Reads
// are passed through unchanged. Thread-safe.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/env.h"
#include "core/file_util.h"

namespace ns::testing {

enum FaultOp : uint32_t {
  kFaultCreate = 1 << 0,    // NewWritableFile, NewAppendableFile
  kFaultAppend = 1 << 1,    // WritableFile::Append ("write")
  kFaultSync = 1 << 2,      // WritableFile::Sync (fsync / fdatasync)
  kFaultTruncate = 1 << 3,  // WritableFile::Truncate
  kFaultRename = 1 << 4,
  kFaultRemove = 1 << 5,
  kFaultMkdir = 1 << 6,
  kFaultSyncDir = 1 << 7,
  kFaultAll = 0xff,
};

class FaultInjectionEnv : public Env {
 public:
  explicit FaultInjectionEnv(Env* base = Env::Default()) : base_(base) {}

  // From now on, the nth (1-based) operation whose kind is in `ops` fails with errno err;
  // with sticky, every later operation of those kinds fails too (a file system that went
  // read-only or bad). Resets the counters.
  void FailNth(uint64_t n, int err, uint32_t ops = kFaultAll, bool sticky = false) {
    std::lock_guard lk(mu_);
    fail_at_ = n;
    err_ = err;
    mask_ = ops;
    sticky_ = sticky;
    count_ = 0;
    fired_ = false;
    fired_what_.clear();
  }
  void Disarm() {
    std::lock_guard lk(mu_);
    fail_at_ = 0;
  }
  // Counted operations since FailNth, whether the fault fired, and what it hit.
  uint64_t count() const {
    std::lock_guard lk(mu_);
    return count_;
  }
  bool fired() const {
    std::lock_guard lk(mu_);
    return fired_;
  }
  std::string fired_what() const {
    std::lock_guard lk(mu_);
    return fired_what_;
  }

  // Counts one operation of kind op on path; returns the injected error, or OK.
  Status Check(FaultOp op, const char* what, const std::string& path) {
    std::lock_guard lk(mu_);
    if (fail_at_ == 0 || !(mask_ & op)) return Status::OK();
    count_++;
    if (count_ == fail_at_ || (sticky_ && count_ > fail_at_)) {
      if (!fired_) fired_what_ = std::string(what) + " " + path;
      fired_ = true;
      return ErrnoStatus(what, path, err_);
    }
    return Status::OK();
  }

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    NS_RETURN_IF_ERROR(Check(kFaultCreate, "create", path));
    NS_ASSIGN_OR_RETURN(auto f, base_->NewWritableFile(path));
    return std::unique_ptr<WritableFile>(new File(this, path, std::move(f)));
  }
  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    NS_RETURN_IF_ERROR(Check(kFaultCreate, "open", path));
    NS_ASSIGN_OR_RETURN(auto f, base_->NewAppendableFile(path));
    return std::unique_ptr<WritableFile>(new File(this, path, std::move(f)));
  }
  StatusOr<std::string> ReadFile(const std::string& path) override { return base_->ReadFile(path); }
  StatusOr<MappedFile> MapFile(const std::string& path) override { return base_->MapFile(path); }
  Status RenameFile(const std::string& from, const std::string& to) override {
    NS_RETURN_IF_ERROR(Check(kFaultRename, "rename", from));
    return base_->RenameFile(from, to);
  }
  Status RemoveFile(const std::string& path) override {
    NS_RETURN_IF_ERROR(Check(kFaultRemove, "unlink", path));
    return base_->RemoveFile(path);
  }
  Status CreateDirs(const std::string& dir) override {
    NS_RETURN_IF_ERROR(Check(kFaultMkdir, "mkdir", dir));
    return base_->CreateDirs(dir);
  }
  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override { return base_->ListDir(dir); }
  Status SyncDir(const std::string& dir) override {
    NS_RETURN_IF_ERROR(Check(kFaultSyncDir, "fsync dir", dir));
    return base_->SyncDir(dir);
  }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }

 private:
  class File : public WritableFile {
   public:
    File(FaultInjectionEnv* env, std::string path, std::unique_ptr<WritableFile> base)
        : env_(env), path_(std::move(path)), base_(std::move(base)) {}
    Status Append(std::string_view data) override {
      if (Status st = env_->Check(kFaultAppend, "write", path_); !st.ok()) {
        (void)base_->Append(data.substr(0, data.size() / 2));  // torn: part of it reached the file
        return st;
      }
      return base_->Append(data);
    }
    Status Sync() override {
      NS_RETURN_IF_ERROR(env_->Check(kFaultSync, "fsync", path_));
      return base_->Sync();
    }
    Status Truncate(uint64_t size) override {
      NS_RETURN_IF_ERROR(env_->Check(kFaultTruncate, "ftruncate", path_));
      return base_->Truncate(size);
    }
    Status Close() override { return base_->Close(); }
    uint64_t size() const override { return base_->size(); }

   private:
    FaultInjectionEnv* env_;
    std::string path_;
    std::unique_ptr<WritableFile> base_;
  };

  Env* base_;
  mutable std::mutex mu_;
  uint64_t fail_at_ = 0;  // 0: disarmed
  int err_ = EIO;
  uint32_t mask_ = kFaultAll;
  bool sticky_ = false;
  uint64_t count_ = 0;
  bool fired_ = false;
  std::string fired_what_;
};

}  // namespace ns::testing
