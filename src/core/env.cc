#include "core/env.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace ns {
namespace {

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, uint64_t size, bool data_sync)
      : path_(std::move(path)), fd_(fd), size_(size), data_sync_(data_sync) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view data) override {
    if (fd_ < 0) return Internal("write " + path_ + ": file is closed");
    size_t off = 0;
    while (off < data.size()) {
      ssize_t w = ::write(fd_, data.data() + off, data.size() - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      off += static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
    return Status::OK();
  }

  Status Sync() override {
    if (fd_ < 0) return Internal("sync " + path_ + ": file is closed");
    if ((data_sync_ ? ::fdatasync(fd_) : ::fsync(fd_)) != 0)
      return ErrnoStatus(data_sync_ ? "fdatasync" : "fsync", path_, errno);
    return Status::OK();
  }

  Status Truncate(uint64_t size) override {
    if (fd_ < 0) return Internal("ftruncate " + path_ + ": file is closed");
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return ErrnoStatus("ftruncate", path_, errno);
    size_ = size;
    return Status::OK();
  }

  Status Close() override {
    if (fd_ < 0) return Status::OK();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return ErrnoStatus("close", path_, errno);
    return Status::OK();
  }

  uint64_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
  bool data_sync_;
};

class PosixEnv final : public Env {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("create", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd, 0, /*data_sync=*/false));
  }

  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("open", path, errno);
    off_t end = ::lseek(fd, 0, SEEK_END);
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(path, fd, end > 0 ? static_cast<uint64_t>(end) : 0, /*data_sync=*/true));
  }

  StatusOr<std::string> ReadFile(const std::string& path) override { return ns::ReadFile(path); }
  StatusOr<MappedFile> MapFile(const std::string& path) override { return MappedFile::Open(path); }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename", from, errno);
    return Status::OK();
  }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return Status::OK();
  }
  Status CreateDirs(const std::string& dir) override { return MakeDirs(dir); }
  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override { return ns::ListDir(dir); }
  Status SyncDir(const std::string& dir) override { return FsyncDir(dir); }
  bool FileExists(const std::string& path) override { return ns::FileExists(path); }
};

}  // namespace

Env* Env::Default() {
  static Env* env = new PosixEnv();  // never deleted: stores may outlive static destructors
  return env;
}

Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data, bool* renamed) {
  if (renamed) *renamed = false;
  const std::string tmp = path + ".tmp";
  NS_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> f, env->NewWritableFile(tmp));
  Status st = f->Append(data);
  if (st.ok()) st = f->Sync();
  if (st.ok()) st = f->Close();
  if (st.ok()) st = env->RenameFile(tmp, path);
  if (!st.ok()) {
    f.reset();
    (void)env->RemoveFile(tmp);
    return st;
  }
  if (renamed) *renamed = true;
  auto slash = path.find_last_of('/');
  return env->SyncDir(slash == std::string::npos ? "." : path.substr(0, slash));
}

}  // namespace ns
