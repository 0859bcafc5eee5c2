#include "storage/column_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <string>

namespace ns {

std::atomic<uint64_t> CachedSlot::epoch_{1};

namespace {
// A slot lock is held on this thread (a load that reads another column): no eviction pass
// then, since it could try to lock a slot this thread holds.
thread_local int t_loads_in_progress = 0;
}  // namespace

CachedSlot::~CachedSlot() {
  if (stamp_.load(std::memory_order_relaxed) != UINT64_MAX) {
    ColumnCache& cache = ColumnCache::Global();
    std::lock_guard lk(cache.mu_);
    if (linked_) cache.Unlink(this);
  }
  delete data_.load(std::memory_order_relaxed);
}

void CachedSlot::SetPermanent(std::unique_ptr<CachedData> data) {
  bytes_.store(data->Bytes(), std::memory_order_relaxed);
  data_.store(data.release(), std::memory_order_release);
  stamp_.store(UINT64_MAX, std::memory_order_release);
}

CachedData* CachedSlot::GetSlow(uint64_t e, const std::function<std::unique_ptr<CachedData>()>& load) const {
  ColumnCache& cache = ColumnCache::Global();
  // Raise the stamp, never lower it (a newer reader's stamp protects the column for
  // longer), then look at the data again: either an evictor that nulled it sees the new
  // stamp and puts it back, or we see the null (both seq_cst; ColumnCache::EvictLocked).
  uint64_t s = stamp_.load(std::memory_order_seq_cst);
  while (s < e && !stamp_.compare_exchange_weak(s, e, std::memory_order_seq_cst)) {}
  if (CachedData* p = data_.load(std::memory_order_seq_cst)) {
    cache.hits_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  CachedData* p;
  {
    std::lock_guard lk(mu_);
    p = data_.load(std::memory_order_seq_cst);
    if (p) {
      cache.hits_.fetch_add(1, std::memory_order_relaxed);
      return p;
    }
    struct InLoad {
      InLoad() { t_loads_in_progress++; }
      ~InLoad() { t_loads_in_progress--; }
    } in_load;
    std::unique_ptr<CachedData> d = load();  // may use other slots (the event index reads ev)
    const size_t b = d->Bytes();
    bytes_.store(b, std::memory_order_relaxed);
    p = d.release();
    data_.store(p, std::memory_order_seq_cst);
    cache.Link(this, b);
    cache.misses_.fetch_add(1, std::memory_order_relaxed);
  }
  cache.EvictIfOver();
  return p;
}

ColumnCache& ColumnCache::Global() {
  static ColumnCache* cache = [] {
    auto* c = new ColumnCache();  // never destroyed: blocks may outlive static destructors
    c->budget_.store(DefaultBudget(), std::memory_order_relaxed);
    return c;
  }();
  return *cache;
}

uint64_t ColumnCache::DefaultBudget() { return std::max<uint64_t>(MachineMemory() / 4, uint64_t{256} << 20); }

uint64_t ColumnCache::MachineMemory() {
  uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  // A container's or service's memory limit counts, not the host's RAM: cgroup v2
  // (memory.max) or v1 (memory.limit_in_bytes; "no limit" is a huge number), of the
  // process's own cgroup (/proc/self/cgroup) and of the root the container sees.
  auto limit_in = [&](const std::string& file) {
    std::ifstream f(file);
    std::string limit;
    if (f >> limit && limit != "max") {
      try {
        ram = std::min<uint64_t>(ram, std::stoull(limit));
      } catch (...) {}
    }
  };
  std::ifstream groups("/proc/self/cgroup");
  for (std::string line; std::getline(groups, line);) {  // "0::/path" (v2), "4:memory:/path" (v1)
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (path.find("..") != std::string::npos) continue;
    if (controllers.empty()) limit_in("/sys/fs/cgroup" + path + "/memory.max");
    if (controllers == "memory") limit_in("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes");
  }
  limit_in("/sys/fs/cgroup/memory.max");
  limit_in("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  return ram;
}

void ColumnCache::SetBudget(uint64_t bytes) {
  budget_.store(bytes, std::memory_order_relaxed);
  EvictIfOver();
}

ColumnCacheStats ColumnCache::Stats() const {
  std::lock_guard lk(mu_);
  ColumnCacheStats s;
  s.budget_bytes = budget_.load(std::memory_order_relaxed);
  s.resident_bytes = resident_.load(std::memory_order_relaxed);
  s.resident_columns = slots_.size();
  s.peak_bytes = peak_;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.evictions = evictions_;
  s.evicted_bytes = evicted_bytes_;
  for (const auto& [e, n] : live_) s.readers += n;
  return s;
}

void ColumnCache::Link(const CachedSlot* s, size_t bytes) {
  std::lock_guard lk(mu_);
  s->index_ = slots_.size();
  s->linked_ = true;
  slots_.push_back(s);
  const uint64_t r = resident_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  peak_ = std::max(peak_, r);
}

void ColumnCache::Unlink(const CachedSlot* s) {
  const size_t i = s->index_;
  slots_[i] = slots_.back();
  slots_[i]->index_ = i;
  slots_.pop_back();
  s->linked_ = false;
  resident_.fetch_sub(s->bytes_.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void ColumnCache::EvictLocked(uint64_t target, std::vector<std::unique_ptr<CachedData>>* freed) {
  if (resident_.load(std::memory_order_relaxed) <= target) return;
  // No new ticket can start meanwhile (tickets take mu_), so min_live is exact or, as
  // tickets end, conservative.
  const uint64_t min_live = live_.empty() ? UINT64_MAX : live_.begin()->first;
  std::vector<std::pair<uint64_t, const CachedSlot*>> cand;
  for (const CachedSlot* s : slots_)
    if (uint64_t st = s->stamp_.load(std::memory_order_seq_cst); st < min_live) cand.push_back({st, s});
  std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [st, s] : cand) {
    if (resident_.load(std::memory_order_relaxed) <= target) break;
    FreeUnlessStampReaches(s, min_live, freed);
  }
}

void ColumnCache::FreeUnlessStampReaches(const CachedSlot* s, uint64_t keep_from,
                                         std::vector<std::unique_ptr<CachedData>>* freed) {
  if (!s->mu_.try_lock()) return;  // being decoded: in use
  // Null the data, then read the stamp again: a reader that raised it meanwhile either
  // sees the null (and decodes again under mu_) or is seen here (and the data stays).
  CachedData* p = s->data_.exchange(nullptr, std::memory_order_seq_cst);
  if (p && s->stamp_.load(std::memory_order_seq_cst) >= keep_from) {
    s->data_.store(p, std::memory_order_seq_cst);
    p = nullptr;
  }
  if (p) {
    evictions_++;
    evicted_bytes_ += s->bytes_.load(std::memory_order_relaxed);
    Unlink(s);
    freed->emplace_back(p);
  }
  s->mu_.unlock();
}

void ColumnCache::EvictIfOver() {
  if (!OverBudget() || t_loads_in_progress > 0) return;
  const uint64_t budget = budget_.load(std::memory_order_relaxed);
  std::vector<std::unique_ptr<CachedData>> freed;  // freed after the lock is released
  std::lock_guard lk(mu_);
  // Down to 90 %: a pass does not run again for every column decoded next.
  EvictLocked(budget - budget / 10, &freed);
}

void ColumnCache::Retire(const std::vector<const CachedSlot*>& slots, uint64_t reader) {
  if (!OverBudget() || t_loads_in_progress > 0) return;
  std::vector<std::unique_ptr<CachedData>> freed;  // freed after the lock is released
  std::lock_guard lk(mu_);
  for (const CachedSlot* s : slots) {
    if (!s->linked_) continue;  // not resident, or permanent
    const uint64_t st = s->stamp_.load(std::memory_order_seq_cst);
    bool alone = true;
    for (auto it = live_.begin(); it != live_.end() && it->first <= st && alone; ++it)
      alone = it->first == reader && it->second == 1;
    // Stamps only rise: a reader that touched the slot since `st` was read raised it past st.
    if (alone) FreeUnlessStampReaches(s, st + 1, &freed);
  }
}

void ColumnCache::EvictUnpinned() {
  std::vector<std::unique_ptr<CachedData>> freed;
  std::lock_guard lk(mu_);
  EvictLocked(0, &freed);
}

ColumnCache::ReadTicket::ReadTicket() {
  ColumnCache& c = Global();
  std::lock_guard lk(c.mu_);
  epoch_ = CachedSlot::epoch_.load(std::memory_order_relaxed) + 1;
  CachedSlot::epoch_.store(epoch_, std::memory_order_relaxed);
  c.live_[epoch_]++;
}

ColumnCache::ReadTicket::~ReadTicket() {
  ColumnCache& c = Global();
  {
    std::lock_guard lk(c.mu_);
    auto it = c.live_.find(epoch_);
    if (--it->second == 0) c.live_.erase(it);
  }
  c.EvictIfOver();
}

StatusOr<uint64_t> ParseMemoryBudget(std::string_view text, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument(field + ": '" + std::string(text.substr(0, 64)) + "' " + why +
                               " (bytes, a size such as 512MiB or 2GiB, a share of memory such as 25%, or unlimited)",
                           field);
  };
  std::string t;
  for (char c : text)
    if (c != ' ') t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "unlimited" || t == "0") return uint64_t{0};
  size_t digits = 0;
  while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) digits++;
  if (digits == 0 || digits > 15) return bad("is not a memory size");
  const uint64_t n = std::stoull(t.substr(0, digits));
  std::string unit = t.substr(digits);
  if (unit == "%") {
    if (n < 1 || n > 100) return bad("is not a share between 1% and 100%");
    return ColumnCache::MachineMemory() / 100 * n;
  }
  int shift = -1;
  if (unit.empty() || unit == "b") shift = 0;
  for (auto [name, s] : {std::pair<const char*, int>{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40}})
    if (unit == name || unit == std::string(name) + "b" || unit == std::string(name) + "ib") shift = s;
  if (shift < 0) return bad("has an unknown unit");
  if (n > (UINT64_MAX >> shift)) return bad("is too large");
  return n << shift;
}

}  // namespace ns
