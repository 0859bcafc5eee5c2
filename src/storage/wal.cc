#include "storage/wal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/checksum.h"
#include "core/file_util.h"

namespace ns {

constexpr uint32_t kMaxWalRecord = 256u << 20;

std::string WalFileName(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012llu.wal", static_cast<unsigned long long>(seq));
  return buf;
}

WalWriter::~WalWriter() {
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<std::unique_ptr<WalWriter>> WalWriter::Open(const std::string& dir, uint64_t seq) {
  auto w = std::unique_ptr<WalWriter>(new WalWriter());
  w->path_ = dir + "/" + WalFileName(seq);
  w->seq_ = seq;
  w->fd_ = ::open(w->path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return ErrnoStatus("open", w->path_, errno);
  off_t end = ::lseek(w->fd_, 0, SEEK_END);
  w->size_ = w->synced_size_ = end > 0 ? static_cast<uint64_t>(end) : 0;
  NS_RETURN_IF_ERROR(FsyncDir(dir));
  return w;
}

Status WalWriter::Append(std::string_view payload) {
  if (payload.size() > kMaxWalRecord)
    return ResourceExhausted("WAL record of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                             std::to_string(kMaxWalRecord));
  uint32_t hdr[2] = {static_cast<uint32_t>(payload.size()), Crc32c(payload)};
  buf_.append(reinterpret_cast<const char*>(hdr), 8);
  buf_.append(payload);
  return Status::OK();
}

Status WalWriter::Sync() {
  if (torn_tail_) {
    // An earlier failed write left bytes that could not be cut off: remove them first.
    std::string pending = std::move(buf_);
    Status st = Rollback();
    if (!st.ok()) return Unavailable("WAL " + path_ + " has a torn tail that cannot be removed yet: " + st.message());
    buf_ = std::move(pending);
  }
  size_t off = 0;
  while (off < buf_.size()) {
    ssize_t w = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      (void)Rollback();
      return ErrnoStatus("write", path_, err);
    }
    off += static_cast<size_t>(w);
    size_ += static_cast<uint64_t>(w);
  }
  buf_.clear();
  if (::fdatasync(fd_) != 0) {
    int err = errno;
    (void)Rollback();
    return ErrnoStatus("fdatasync", path_, err);
  }
  synced_size_ = size_;
  return Status::OK();
}

Status WalWriter::Rollback() {
  buf_.clear();
  if (size_ == synced_size_ && !torn_tail_) return Status::OK();  // nothing reached the file
  if (::ftruncate(fd_, static_cast<off_t>(synced_size_)) != 0) {
    torn_tail_ = true;
    return ErrnoStatus("ftruncate", path_, errno);
  }
  torn_tail_ = false;
  size_ = synced_size_;
  return Status::OK();
}

StatusOr<std::vector<uint64_t>> ListWalFiles(const std::string& dir) {
  NS_ASSIGN_OR_RETURN(auto names, ListDir(dir));
  std::vector<uint64_t> seqs;
  for (const auto& n : names) {
    if (n.size() != 16 || n.substr(12) != ".wal") continue;
    if (n.find_first_not_of("0123456789") != 12) continue;  // not one of ours
    seqs.push_back(std::stoull(n.substr(0, 12)));
  }
  return seqs;
}

Status ReplayWal(const std::string& dir, uint64_t seq, bool truncate,
                 const std::function<Status(std::string_view)>& fn, WalReplayStats* stats) {
  std::string path = dir + "/" + WalFileName(seq);
  NS_ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  size_t off = 0;
  while (off + 8 <= data.size()) {
    uint32_t len, crc;
    std::memcpy(&len, data.data() + off, 4);
    std::memcpy(&crc, data.data() + off + 4, 4);
    if (len > kMaxWalRecord || off + 8 + len > data.size()) break;
    std::string_view payload(data.data() + off + 8, len);
    if (Crc32c(payload) != crc) break;
    NS_RETURN_IF_ERROR(fn(payload));
    stats->records++;
    off += 8 + len;
  }
  if (off < data.size()) {
    stats->truncated_bytes += data.size() - off;
    if (truncate) {
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return ErrnoStatus("open", path, errno);
      int rc = ::ftruncate(fd, static_cast<off_t>(off));
      if (rc == 0) rc = ::fsync(fd);
      int err = errno;
      ::close(fd);
      if (rc != 0) return ErrnoStatus("truncate", path, err);
    }
  }
  return Status::OK();
}

}  // namespace ns
