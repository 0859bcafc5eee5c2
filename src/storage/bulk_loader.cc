#include "storage/bulk_loader.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/time_zone.h"
#include "storage/block.h"
#include "storage/event_store_impl.h"

namespace ns {

struct BulkLoader::State {
  EventStoreImpl* store = nullptr;
  Options opt;
  // Pending rows, in input order (duplicates dropped).
  std::vector<uint32_t> did;
  std::vector<int64_t> ts;
  std::vector<uint32_t> ev;
  std::vector<uint8_t> has_uuid;  // empty while no row has one
  std::vector<Uuid> uuid;
  // One property key over the pending rows; texts numbered for the whole import.
  struct Prop {
    std::vector<uint32_t> code;  // BulkRows codes, text indexes into `text` below
    std::vector<double> num;     // empty while no row holds a number
    std::vector<std::string> text;
    std::vector<PropValue::Kind> kind;
    std::unordered_map<std::string, uint32_t> index;  // kind byte + text -> index
  };
  std::map<std::string, Prop, std::less<>> props;  // sorted: the block's column order
  size_t reserve = 0;                              // expected pending rows (Reserve): the columns are sized once
  // The identity map's reloads() when the first pending row took its did: a reload since
  // (a failed Append's rollback) may have dropped the identities `did` holds.
  uint64_t identity_reloads = 0;
};

BulkLoader::BulkLoader(std::unique_ptr<State> s) : s_(std::move(s)) {}

// The pending rows' dids are stale if the identity map was reloaded since they were taken
// (an Append beside the load failed to write and rolled the identities back): those dids may
// now be missing or name other ids, so the load must not write them.
Status BulkLoader::CheckIdentityKept() const {
  const State& s = *s_;
  if (s.ts.empty() || s.store->identity_->reloads() == s.identity_reloads) return Status::OK();
  return Unavailable("bulk load: a failed write beside it rolled the identity map back; load the file again");
}
BulkLoader::~BulkLoader() = default;

StatusOr<std::unique_ptr<BulkLoader>> BulkLoader::Begin(EventStore* store, Options options) {
  auto* impl = dynamic_cast<EventStoreImpl*>(store);
  if (!impl) return Internal("bulk load: not a Northstar event store");
  if (impl->has_listeners_) return FailedPrecondition("bulk load: the store has append listeners");
  auto s = std::make_unique<State>();
  s->store = impl;
  s->opt = options;
  s->opt.threads = std::max(1, options.threads);
  return std::unique_ptr<BulkLoader>(new BulkLoader(std::move(s)));
}

size_t BulkLoader::pending_rows() const { return s_->ts.size(); }

void BulkLoader::Reserve(size_t rows) {
  State& s = *s_;
  rows = std::min(rows, s.opt.spill_rows + (size_t{1} << 20));
  s.did.reserve(rows);
  s.ts.reserve(rows);
  s.ev.reserve(rows);
  s.reserve = rows;
}

StatusOr<AppendResult> BulkLoader::Add(BulkRows rows) {
  EventStoreImpl& st = *s_->store;
  State& s = *s_;
  AppendResult result;
  const size_t n = rows.size();
  const size_t before = s.ts.size();
  std::vector<uint8_t> keep;  // empty: every row kept
  {
    MutexLock ml(&st.maint_mu_);
    MutexLock wl(&st.write_mu_);
    NS_RETURN_IF_ERROR(st.Quiesce());  // no Append round between its write and its fsync
    if (s.ts.empty()) s.identity_reloads = st.identity_->reloads();
    NS_RETURN_IF_ERROR(CheckIdentityKept());
    // Dedup, then identity, row by row in input order: the dids, merges and dictionary
    // codes come out as Append's would (Append resolves only the rows it keeps).
    if (!rows.has_uuid.empty()) {
      keep.assign(n, 1);
      for (size_t i = 0; i < n; i++)
        if (rows.has_uuid[i] && !st.InsertUuid(rows.uuid[i])) {
          keep[i] = 0;
          result.duplicates++;
        }
    }
    std::vector<int64_t> did_of(rows.ids.size(), -1);
    std::vector<int64_t> code_of(rows.names.size(), -1);
    size_t next_effect = 0;
    for (size_t i = 0; i < n; i++) {
      while (next_effect < rows.identity.size() && rows.identity[next_effect].row < i) next_effect++;
      if (!keep.empty() && !keep[i]) continue;
      const uint32_t local = rows.id[i];
      if (did_of[local] < 0) did_of[local] = st.identity_->Resolve(rows.ids[local]);
      const auto did = static_cast<uint32_t>(did_of[local]);
      if (next_effect < rows.identity.size() && rows.identity[next_effect].row == i) {
        const BulkRows::Identity& e = rows.identity[next_effect];
        for (const auto& other : e.merge_with)
          if (!other.empty() && other != rows.ids[local] &&
              !st.identity_->Merge(did, st.identity_->Resolve(other), true))
            result.merges_refused++;
        if (e.identifies) st.identity_->MarkIdentified(did);
        st.identity_->SetProps(did, e.set, false);
        st.identity_->SetProps(did, e.set_once, true);
      }
      const uint32_t name = rows.name[i];
      if (code_of[name] < 0) code_of[name] = st.dict_.Intern(rows.names[name]);
      s.did.push_back(did);
      s.ev.push_back(static_cast<uint32_t>(code_of[name]));
      result.accepted++;
    }
  }
  // The columns (no store state): copied as they are, without the duplicates.
  auto append = [&](auto& to, const auto& from) {
    if (keep.empty()) {
      to.insert(to.end(), from.begin(), from.end());
      return;
    }
    for (size_t i = 0; i < n; i++)
      if (keep[i]) to.push_back(from[i]);
  };
  append(s.ts, rows.ts);
  if (!rows.has_uuid.empty()) {
    s.has_uuid.resize(before, 0);
    s.uuid.resize(before);
    append(s.has_uuid, rows.has_uuid);
    append(s.uuid, rows.uuid);
  } else if (!s.has_uuid.empty()) {
    s.has_uuid.resize(s.ts.size(), 0);
    s.uuid.resize(s.ts.size());
  }
  std::string key_text;
  for (auto& col : rows.props) {
    auto it = s.props.find(col.key);
    if (it == s.props.end()) it = s.props.emplace(col.key, State::Prop{}).first;
    State::Prop& p = it->second;
    std::vector<uint32_t> remap(col.text.size());
    for (size_t t = 0; t < col.text.size(); t++) {
      key_text.assign(1, static_cast<char>(col.kind[t]));
      key_text += col.text[t];
      auto [pos, inserted] = p.index.try_emplace(key_text, static_cast<uint32_t>(p.text.size()));
      if (inserted) {
        p.text.push_back(std::move(col.text[t]));
        p.kind.push_back(col.kind[t]);
      }
      remap[t] = pos->second + 1;
    }
    if (p.code.capacity() < s.reserve) p.code.reserve(s.reserve);
    p.code.resize(before, BulkRows::kAbsent);
    for (size_t i = 0; i < n; i++) {
      if (!keep.empty() && !keep[i]) continue;
      const uint32_t c = col.code[i];
      p.code.push_back(c == BulkRows::kAbsent || c == BulkRows::kNumber ? c : remap[c - 1]);
    }
    if (!col.num.empty() || !p.num.empty()) {
      if (p.num.capacity() < s.reserve) p.num.reserve(s.reserve);
      p.num.resize(before, 0);
      if (col.num.empty())
        p.num.resize(s.ts.size(), 0);
      else
        append(p.num, col.num);
    }
  }
  if (s.ts.size() >= s.opt.spill_rows) NS_RETURN_IF_ERROR(Write());
  return result;
}

Status BulkLoader::Finish() { return Write(); }

namespace {

// One partition's rows, sorted.
struct SortKey {
  uint32_t person;
  uint32_t row;
  int64_t ts;
};

}  // namespace

Status BulkLoader::Write() {
  State& s = *s_;
  EventStoreImpl& st = *s.store;
  const size_t total = s.ts.size();
  if (total == 0) return Status::OK();
  for (auto& [key, p] : s.props) {
    p.code.resize(total, BulkRows::kAbsent);
    if (!p.num.empty()) p.num.resize(total, 0);
  }
  MutexLock ml(&st.maint_mu_);
  std::shared_ptr<const PersonTable> persons;
  {
    // The identity records these rows need are durable before any segment names them.
    MutexLock wl(&st.write_mu_);
    NS_RETURN_IF_ERROR(st.Quiesce());
    NS_RETURN_IF_ERROR(CheckIdentityKept());
    NS_RETURN_IF_ERROR(st.identity_->Commit());
    persons = st.identity_->Snapshot();
  }
  // Rows by UTC day (a counting sort keeps input order within a day).
  int32_t min_day = INT32_MAX, max_day = INT32_MIN;
  for (int64_t t : s.ts) {
    const int32_t d = UtcDay(t);
    min_day = std::min(min_day, d);
    max_day = std::max(max_day, d);
  }
  const size_t span = static_cast<size_t>(int64_t{max_day} - min_day + 1);
  std::vector<uint32_t> order(total);
  std::vector<std::pair<int32_t, std::pair<size_t, size_t>>> days;  // day -> [begin, end) of order
  if (span <= (size_t{1} << 22)) {
    std::vector<uint32_t> start(span + 1, 0);
    for (int64_t t : s.ts) start[static_cast<size_t>(UtcDay(t) - min_day) + 1]++;
    for (size_t d = 0; d < span; d++) {
      if (start[d + 1]) days.push_back({static_cast<int32_t>(min_day + d), {start[d], start[d] + start[d + 1]}});
      start[d + 1] += start[d];
    }
    for (uint32_t i = 0; i < total; i++) order[start[static_cast<size_t>(UtcDay(s.ts[i]) - min_day)]++] = i;
  } else {  // timestamps decades apart: a plain sort by day
    for (uint32_t i = 0; i < total; i++) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return UtcDay(s.ts[a]) < UtcDay(s.ts[b]); });
    for (size_t b = 0; b < total;) {
      const int32_t d = UtcDay(s.ts[order[b]]);
      size_t e = b;
      while (e < total && UtcDay(s.ts[order[e]]) == d) e++;
      days.push_back({d, {b, e}});
      b = e;
    }
  }
  // Largest days first, so the threads finish together.
  std::vector<size_t> todo(days.size());
  for (size_t i = 0; i < todo.size(); i++) todo[i] = i;
  std::sort(todo.begin(), todo.end(), [&](size_t a, size_t b) {
    return days[a].second.second - days[a].second.first > days[b].second.second - days[b].second.first;
  });

  const uint64_t gen = st.generation_ + 1;
  std::vector<std::optional<SegmentInfo>> written(days.size());
  std::atomic<size_t> next{0};
  std::mutex err_mu;
  Status first_error;
  auto worker = [&] {
    std::vector<SortKey> keys, sorted;
    std::vector<uint32_t> counts;
    std::vector<uint32_t> local, stamp;  // text index -> partition dictionary code, per (day, key)
    uint32_t epoch = 0;
    for (size_t k; (k = next.fetch_add(1)) < todo.size();) {
      {
        std::lock_guard lk(err_mu);
        if (!first_error.ok()) return;
      }
      const auto [day, range] = days[todo[k]];
      keys.clear();
      for (size_t j = range.first; j < range.second; j++) {
        const uint32_t r = order[j];
        if (persons->Erased(s.did[r])) continue;
        keys.push_back({persons->PersonOf(s.did[r]), r, s.ts[r]});
      }
      // (person, ts), ties in input order: what a flush's stable sort gives. Fast path:
      // when the day's rows came in time order (exports usually are sorted by time), a
      // stable counting sort on the person alone gives that order, in two linear passes
      // instead of a comparison sort (which was 10 % of the import's CPU on dataset S).
      bool time_ordered = true;
      uint32_t pmin = UINT32_MAX, pmax = 0;
      for (size_t i = 0; i < keys.size(); i++) {
        if (i && keys[i].ts < keys[i - 1].ts) time_ordered = false;
        pmin = std::min(pmin, keys[i].person);
        pmax = std::max(pmax, keys[i].person);
      }
      if (time_ordered && !keys.empty() && pmax - pmin <= 16 * keys.size() + 4096) {
        counts.assign(size_t{pmax - pmin} + 2, 0);
        for (const SortKey& key : keys) counts[key.person - pmin + 1]++;
        for (size_t p = 1; p < counts.size(); p++) counts[p] += counts[p - 1];
        sorted.resize(keys.size());
        for (const SortKey& key : keys) sorted[counts[key.person - pmin]++] = key;
        keys.swap(sorted);
      } else {
        std::sort(keys.begin(), keys.end(), [](const SortKey& a, const SortKey& b) {
          if (a.person != b.person) return a.person < b.person;
          if (a.ts != b.ts) return a.ts < b.ts;
          return a.row < b.row;
        });
      }
      const size_t m = keys.size();
      BlockColumns b;
      b.did.resize(m);
      b.ts.resize(m);
      b.ev.resize(m);
      b.has_uuid.assign(m, 0);
      b.uuid.assign(m, Uuid{});
      for (size_t i = 0; i < m; i++) {
        const uint32_t r = keys[i].row;
        b.did[i] = s.did[r];
        b.ts[i] = s.ts[r];
        b.ev[i] = s.ev[r];
        if (!s.has_uuid.empty() && s.has_uuid[r]) {
          b.has_uuid[i] = 1;
          b.uuid[i] = s.uuid[r];
        }
      }
      for (const auto& [key, p] : s.props) {
        bool any = false, any_text = false;
        for (size_t i = 0; i < m && !any_text; i++) {
          const uint32_t c = p.code[keys[i].row];
          any |= c != BulkRows::kAbsent;
          any_text |= c != BulkRows::kAbsent && c != BulkRows::kNumber;
        }
        if (!any) continue;  // a key no row of the day has is no column of it
        PropColumn col;
        if (!any_text) {
          col.numeric = true;
          col.present.resize(m);
          col.num.assign(m, 0);
          for (size_t i = 0; i < m; i++) {
            const uint32_t r = keys[i].row;
            col.present[i] = p.code[r] != BulkRows::kAbsent;
            if (col.present[i]) col.num[i] = p.num[r];
          }
        } else {
          // Dictionary in order of first appearance, then the numbers as text (kNum), as
          // BlockBuilder::Finish orders a mixed column.
          if (local.size() < p.text.size()) {
            local.resize(p.text.size());
            stamp.resize(p.text.size(), 0);
          }
          if (++epoch == 0) {
            std::fill(stamp.begin(), stamp.end(), 0);
            epoch = 1;
          }
          col.code.resize(m);
          col.dict.assign(1, std::string());
          col.dict_kind.assign(1, PropValue::kStr);
          bool numbers = false;
          for (size_t i = 0; i < m; i++) {
            const uint32_t c = p.code[keys[i].row];
            if (c == BulkRows::kAbsent || c == BulkRows::kNumber) {
              col.code[i] = 0;
              numbers |= c == BulkRows::kNumber;
              continue;
            }
            const uint32_t t = c - 1;
            if (stamp[t] != epoch) {
              stamp[t] = epoch;
              local[t] = static_cast<uint32_t>(col.dict.size());
              col.dict.push_back(p.text[t]);
              col.dict_kind.push_back(p.kind[t]);
            }
            col.code[i] = local[t];
          }
          if (numbers) {
            std::unordered_map<std::string, uint32_t> num_index;
            for (size_t i = 0; i < m; i++) {
              const uint32_t r = keys[i].row;
              if (p.code[r] != BulkRows::kNumber) continue;
              std::string text = PropValue::Num(p.num[r]).AsString();
              auto [pos, inserted] = num_index.try_emplace(text, static_cast<uint32_t>(col.dict.size()));
              if (inserted) {
                col.dict.push_back(std::move(text));
                col.dict_kind.push_back(PropValue::kNum);
              }
              col.code[i] = pos->second;
            }
          }
        }
        b.props.emplace_back(key, std::move(col));
      }
      const std::string path = st.dir_ + "/segments/" + SegmentFileName(day, gen);
      Status ws = WriteSegment(st.env_, path, *BlockFromColumns(std::move(b)), SegmentMeta{day, gen, {}}, st.dict_);
      StatusOr<SegmentInfo> info = ws.ok() ? OpenSegment(st.env_, path, st.dict_) : StatusOr<SegmentInfo>(ws);
      if (!info.ok()) {
        (void)st.env_->RemoveFile(path);
        std::lock_guard lk(err_mu);
        if (first_error.ok()) first_error = info.status();
        return;
      }
      written[todo[k]] = std::move(info).value();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < s.opt.threads; t++) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  auto remove_written = [&] {
    for (auto& w : written)
      if (w) (void)st.env_->RemoveFile(w->path);
  };
  if (!first_error.ok()) {
    remove_written();
    return first_error;
  }
  // Commit: one CHECKPOINT for every partition (the WAL is untouched: the memtable, if the
  // store has one, is the next flush's).
  const uint64_t prev_gen = st.generation_;
  st.generation_ = gen;
  bool renamed = false;
  Status commit = st.WriteCheckpoint(&renamed);
  if (!commit.ok() && !renamed) {
    st.generation_ = prev_gen;
    remove_written();
    return commit;
  }
  st.published_generation_ = st.generation_;
  {
    MutexLock sl(&st.state_mu_);
    for (auto& w : written)
      if (w) st.partitions_[w->meta.partition_day].push_back(std::move(*w));
  }
  // The pending rows are stored: free them.
  s.did = {};
  s.ts = {};
  s.ev = {};
  s.has_uuid = {};
  s.uuid = {};
  for (auto& [key, p] : s.props) {
    p.code = {};
    p.num = {};
  }
  return commit;
}

}  // namespace ns
