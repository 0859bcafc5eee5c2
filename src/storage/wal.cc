#include "storage/wal.h"

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/checksum.h"

namespace ns {

constexpr uint32_t kMaxWalRecord = 256u << 20;

std::string WalFileName(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%012llu.wal", static_cast<unsigned long long>(seq));
  return buf;
}

WalWriter::~WalWriter() = default;

StatusOr<std::unique_ptr<WalWriter>> WalWriter::Open(Env* env, const std::string& dir, uint64_t seq) {
  auto w = std::unique_ptr<WalWriter>(new WalWriter());
  w->path_ = dir + "/" + WalFileName(seq);
  w->seq_ = seq;
  NS_ASSIGN_OR_RETURN(w->file_, env->NewAppendableFile(w->path_));
  w->size_ = w->written_ = w->file_->size();
  w->synced_size_ = w->size_;
  NS_RETURN_IF_ERROR(env->SyncDir(dir));
  return w;
}

Status WalWriter::Append(std::string_view payload) {
  if (payload.size() > kMaxWalRecord)
    return ResourceExhausted("WAL record of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                             std::to_string(kMaxWalRecord));
  AppendWalRecord(buf_, payload);
  return Status::OK();
}

void AppendWalRecord(std::string& out, std::string_view payload) {
  uint32_t hdr[2] = {static_cast<uint32_t>(payload.size()), Crc32c(payload)};
  out.append(reinterpret_cast<const char*>(hdr), 8);
  out.append(payload);
}

Status WalWriter::Sync() {
  if (torn_tail_ || write_failed_) {
    // An earlier failed write left bytes that could not be cut off: remove them first.
    std::string pending = std::move(buf_);
    Status st = Rollback();
    if (!st.ok()) return Unavailable("WAL " + path_ + " has a torn tail that cannot be removed yet: " + st.message());
    buf_ = std::move(pending);
  }
  Status st = Write();
  if (st.ok()) st = SyncThrough(written_);
  if (!st.ok()) (void)Rollback();
  return st;
}

Status WalWriter::Write() {
  if (torn_tail_ || write_failed_)
    return Unavailable("WAL " + path_ + " is not written to until a failed write is rolled back");
  if (buf_.empty()) return Status::OK();
  // Counted before the write: a failed write may have left any prefix of buf_ behind,
  // and Rollback must cut it.
  size_ += buf_.size();
  Status st = file_->Append(buf_);
  buf_.clear();
  if (!st.ok()) {
    write_failed_ = true;
    return st;
  }
  written_ = size_;
  return Status::OK();
}

Status WalWriter::SyncThrough(uint64_t end) {
  if (end <= synced_size_.load()) return Status::OK();  // an fsync that started later covered it
  NS_RETURN_IF_ERROR(file_->Sync());
  synced_size_.store(end);
  return Status::OK();
}

Status WalWriter::Rollback() {
  buf_.clear();
  const uint64_t synced = synced_size_.load();
  if (size_ == synced && !torn_tail_) {  // nothing reached the file
    write_failed_ = false;
    return Status::OK();
  }
  if (Status st = file_->Truncate(synced); !st.ok()) {
    torn_tail_ = true;
    return st;
  }
  torn_tail_ = write_failed_ = false;
  size_ = written_ = synced;
  return Status::OK();
}

StatusOr<std::vector<uint64_t>> ListWalFiles(Env* env, const std::string& dir) {
  NS_ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
  std::vector<uint64_t> seqs;
  for (const auto& n : names) {
    if (n.size() != 16 || n.substr(12) != ".wal") continue;
    if (n.find_first_not_of("0123456789") != 12) continue;  // not one of ours
    seqs.push_back(std::stoull(n.substr(0, 12)));
  }
  return seqs;
}

StatusOr<size_t> ParseWalRecords(std::string_view data, const std::function<Status(std::string_view)>& fn,
                                 uint64_t* records) {
  size_t off = 0;
  while (off + 8 <= data.size()) {
    uint32_t len, crc;
    std::memcpy(&len, data.data() + off, 4);
    std::memcpy(&crc, data.data() + off + 4, 4);
    if (len > kMaxWalRecord || len > data.size() - off - 8) break;
    std::string_view payload(data.data() + off + 8, len);
    if (Crc32c(payload) != crc) break;
    NS_RETURN_IF_ERROR(fn(payload));
    (*records)++;
    off += 8 + len;
  }
  return off;
}

Status ReplayWal(Env* env, const std::string& dir, uint64_t seq, bool truncate,
                 const std::function<Status(std::string_view)>& fn, WalReplayStats* stats) {
  std::string path = dir + "/" + WalFileName(seq);
  NS_ASSIGN_OR_RETURN(std::string data, env->ReadFile(path));
  NS_ASSIGN_OR_RETURN(size_t off, ParseWalRecords(data, fn, &stats->records));
  if (off < data.size()) {
    stats->truncated_bytes += data.size() - off;
    if (truncate) {
      Status st;
      auto f = env->NewAppendableFile(path);
      if (!f.ok()) st = f.status();
      if (st.ok()) st = (*f)->Truncate(off);
      if (st.ok()) st = (*f)->Sync();
      if (!st.ok()) return Status(st.code(), "truncate " + path + ": " + st.message());
    }
  }
  return Status::OK();
}

}  // namespace ns
