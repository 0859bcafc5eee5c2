#include "cli/import_bulk.h"

#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/file_util.h"
#include "ingest/csv_reader.h"
#include "storage/bulk_loader.h"

namespace ns {

StatusOr<ColumnMap> ParseTarget(const std::string& field) {
  if (field == "event") return ColumnMap{ColumnMap::kEvent, ""};
  if (field == "distinct_id") return ColumnMap{ColumnMap::kDistinctId, ""};
  if (field == "timestamp") return ColumnMap{ColumnMap::kTimestamp, ""};
  if (field == "uuid") return ColumnMap{ColumnMap::kUuid, ""};
  if (field == "-" || field == "skip") return ColumnMap{ColumnMap::kSkip, ""};
  if (field.rfind("properties.", 0) == 0 && field.size() > 11) return ColumnMap{ColumnMap::kProperty, field.substr(11)};
  if (field.rfind("person.", 0) == 0 && field.size() > 7) return ColumnMap{ColumnMap::kPersonProperty, field.substr(7)};
  if (field.rfind("$set.", 0) == 0 && field.size() > 5) return ColumnMap{ColumnMap::kPersonProperty, field.substr(5)};
  if (field.empty()) return InvalidArgument("--map: empty target field");
  return ColumnMap{ColumnMap::kProperty, field};
}

bool CsvNumber(std::string_view s, double* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty() && s[0] != '+' &&
         !(s.size() > 1 && s[0] == '0' && s[1] != '.');  // keep "007" and "+86..." as text
}

PropValue CsvValue(const std::string& s) {
  double d;
  if (CsvNumber(s, &d)) return PropValue::Num(d);
  return PropValue::Str(s);
}

namespace {

// Distinct strings by first appearance; the views must outlive the index. Open addressing;
// a slot holds the hash and the first 19 bytes of its key, so a lookup of a short key (ids,
// names, property values usually are) touches one cache line and not the file where the
// key first appeared (that pointer chase was half of the lookup's time on dataset S).
class ViewIndex {
 public:
  uint32_t Intern(std::string_view s) {
    if ((keys_.size() + 1) * 2 > slots_.size()) Grow();
    const uint64_t h = std::hash<std::string_view>{}(s);
    char probe[kInline] = {};
    const bool short_key = s.size() <= kInline;
    if (short_key) std::memcpy(probe, s.data(), s.size());
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.idx == 0) {
        keys_.push_back(s);
        slot.hash = h;
        slot.idx = static_cast<uint32_t>(keys_.size());
        slot.len = static_cast<uint8_t>(std::min<size_t>(s.size(), 255));
        std::memcpy(slot.text, probe, kInline);
        return slot.idx - 1;
      }
      if (slot.hash != h) continue;
      if (short_key ? slot.len == s.size() && std::memcmp(slot.text, probe, kInline) == 0 : keys_[slot.idx - 1] == s)
        return slot.idx - 1;
    }
  }
  size_t size() const { return keys_.size(); }
  std::vector<std::string> Strings() const { return std::vector<std::string>(keys_.begin(), keys_.end()); }

 private:
  static constexpr size_t kInline = 19;
  struct Slot {
    uint64_t hash = 0;
    uint32_t idx = 0;  // 1 + index into keys_; 0 = empty
    uint8_t len = 0;
    char text[kInline] = {};  // the key zero-padded, when it is at most kInline bytes
  };
  void Grow() {
    std::vector<Slot> slots(std::max<size_t>(64, slots_.size() * 2));
    const size_t mask = slots.size() - 1;
    for (const Slot& old : slots_) {
      if (!old.idx) continue;
      size_t i = old.hash & mask;
      while (slots[i].idx) i = (i + 1) & mask;
      slots[i] = old;
    }
    slots_.swap(slots);
  }
  std::vector<Slot> slots_;
  std::vector<std::string_view> keys_;
};

bool IsAscii(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t acc = 0;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc |= w;
  }
  for (; n; p++, n--) acc |= static_cast<unsigned char>(*p);
  return (acc & 0x8080808080808080ULL) == 0;
}

// What one piece of the file gave.
struct Piece {
  BulkRows rows;
  // (line within the piece, message naming that line): renumbered when consumed.
  std::vector<std::pair<size_t, std::string>> errors;
  uint64_t records = 0;   // CSV records / NDJSON lines read
  size_t lines_done = 0;  // lines the piece spans (the next one's line offset)
  bool stop = false;      // a malformed record: nothing after it is read (as before)
};

// "line 7: ..." of a piece as "line 1007: ..." of the file.
std::string Relined(const std::string& msg, size_t rel, size_t abs) {
  const std::string prefix = "line " + std::to_string(rel);
  if (msg.compare(0, prefix.size(), prefix) == 0 &&
      (msg.size() == prefix.size() || !std::isdigit(static_cast<unsigned char>(msg[prefix.size()]))))
    return "line " + std::to_string(abs) + msg.substr(prefix.size());
  return msg;
}

class MappedInput {
 public:
  static StatusOr<MappedInput> Open(const std::string& path) {
    NS_ASSIGN_OR_RETURN(MappedFile f, MappedFile::Open(path));
    MappedInput in;
    in.file_ = std::move(f);
    if (in.file_.size()) {  // a hint only: read ahead, each thread reads its pieces in order
      ::madvise(const_cast<uint8_t*>(in.file_.data()), in.file_.size(), MADV_SEQUENTIAL);
      ::madvise(const_cast<uint8_t*>(in.file_.data()), in.file_.size(), MADV_WILLNEED);
    }
    return in;
  }
  std::string_view text() const { return std::string_view(reinterpret_cast<const char*>(file_.data()), file_.size()); }
  // Drops the pages of [begin, end) from this process (they stay in the page cache): the
  // file does not count in the import's memory once read.
  void Release(size_t begin, size_t end) const { file_.DropPages(begin, end - begin); }

 private:
  MappedFile file_;
};

// Parses pieces on r.threads threads (a few ahead of the consumer) and hands them to the
// bulk loader in file order on this thread: line numbers, errors and dedup come out in
// file order, as the per-event path gives them.
template <class ParseFn>
StatusOr<BulkImportResult> RunPieces(const BulkImportRequest& r, const std::vector<size_t>& starts, size_t end,
                                     ParseFn parse, const std::function<void(size_t, size_t)>& release) {
  std::unique_ptr<BulkLoader> loader;
  if (r.store) {
    BulkLoader::Options lo;
    lo.spill_rows = r.spill_rows;
    lo.threads = r.threads;
    NS_ASSIGN_OR_RETURN(loader, BulkLoader::Begin(r.store, lo));
  }
  const size_t pieces = starts.size();
  std::vector<std::optional<Piece>> done(pieces);
  std::mutex mu;
  std::condition_variable cv;
  size_t next = 0, consumed = 0;
  bool stop = false;
  const size_t window = static_cast<size_t>(std::max(1, r.threads)) * 2;
  auto worker = [&] {
    for (;;) {
      size_t k;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stop || next >= pieces || next < consumed + window; });
        if (stop || next >= pieces) return;
        k = next++;
      }
      Piece p = parse(starts[k], k + 1 < pieces ? starts[k + 1] : end);
      {
        std::lock_guard lk(mu);
        done[k] = std::move(p);
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, r.threads); t++) threads.emplace_back(worker);
  BulkImportResult res;
  size_t line_base = r.lines_before;
  Status fatal;
  for (size_t k = 0; k < pieces; k++) {
    Piece p;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return done[k].has_value(); });
      p = std::move(*done[k]);
      done[k].reset();
      consumed = k + 1;
    }
    cv.notify_all();
    for (const auto& [rel, msg] : p.errors) r.report(line_base + rel, Relined(msg, rel, line_base + rel));
    line_base += p.lines_done;
    res.lines += p.records;
    if (loader) {
      auto added = loader->Add(std::move(p.rows));
      if (!added.ok()) {
        fatal = added.status();
        break;
      }
      res.accepted += added->accepted;
      res.duplicates += added->duplicates;
      if (k == 0 && pieces > 1 && starts[1] > starts[0])  // rows per byte of the first piece
        loader->Reserve(
            static_cast<size_t>(static_cast<double>(added->accepted) * 1.05 * static_cast<double>(end - starts[0]) /
                                static_cast<double>(starts[1] - starts[0])));
    } else {
      res.accepted += p.rows.size();
    }
    res.bytes = k + 1 < pieces ? starts[k + 1] : end;
    if (release) release(starts[k], res.bytes);
    if (r.progress) r.progress(res.bytes, res.accepted);
    if (p.stop) break;
  }
  {
    std::lock_guard lk(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  if (!fatal.ok()) return fatal;
  if (loader) NS_RETURN_IF_ERROR(loader->Finish());
  return res;
}

// The CSV columns as the parser uses them.
struct CsvPlan {
  std::vector<ColumnMap::Kind> kind;
  std::vector<int> slot;          // property columns: index into keys
  std::vector<std::string> keys;  // property keys, in order of their first column
  bool person_columns = false;
  enum Unit { kAuto, kSeconds, kMillis } unit = kAuto;
};

Piece ParseCsvPiece(const BulkImportRequest& r, const CsvPlan& plan, std::string_view text, size_t begin, size_t end) {
  Piece out;
  BulkRows& rows = out.rows;
  const std::string_view piece = text.substr(begin, end - begin);
  CsvSpanReader rd(piece);
  std::vector<std::string_view> f;
  std::deque<std::string> arena;  // copies of fields that are not views into the file
  auto stable = [&](std::string_view v) -> std::string_view {
    if (v.data() >= text.data() && v.data() + v.size() <= text.data() + text.size()) return v;
    return arena.emplace_back(v);
  };
  const size_t ncols = plan.kind.size(), nkeys = plan.keys.size();
  ViewIndex ids, names;
  std::vector<ViewIndex> texts(nkeys);
  rows.props.resize(nkeys);
  for (size_t k = 0; k < nkeys; k++) rows.props[k].key = plan.keys[k];
  std::vector<std::string_view> slot(nkeys);
  std::vector<uint8_t> slot_set(nkeys);
  const IngestLimits& lim = r.limits;
  for (;;) {
    auto more = rd.Next(&f);
    if (!more.ok()) {
      out.errors.push_back({rd.line(), "line " + std::to_string(rd.line()) + ": " + more.status().message()});
      out.stop = true;
      break;
    }
    if (!*more) break;
    out.records++;
    const size_t line = rd.line();
    if (f.size() == 1 && f[0].empty()) continue;  // blank line
    if (f.size() != ncols) {
      out.errors.push_back({line, "line " + std::to_string(line) + ": " + std::to_string(f.size()) +
                                      " fields, the header has " + std::to_string(ncols)});
      continue;
    }
    const bool ascii = IsAscii(piece.substr(rd.record_start(), rd.offset() - rd.record_start()));
    std::string err;
    std::string_view ev, id;
    bool ev_field = true;
    int64_t ts = 0;
    Uuid uuid;
    bool has_uuid = false;
    std::fill(slot_set.begin(), slot_set.end(), 0);
    std::vector<Property> person_set;
    for (size_t i = 0; i < ncols; i++) {
      const std::string_view v = f[i];
      if (!ascii) {
        if (size_t bad = FindInvalidUtf8(v); bad != std::string_view::npos) {
          err = "column '" + r.header[i] + "': invalid UTF-8 at byte " + std::to_string(bad) + " of the value";
          break;
        }
      }
      switch (plan.kind[i]) {
        case ColumnMap::kSkip: break;
        case ColumnMap::kEvent: ev = v; break;
        case ColumnMap::kDistinctId: id = v; break;
        case ColumnMap::kUuid:
          if (!v.empty()) {
            uuid = Uuid::FromClientId(v);
            has_uuid = true;
          }
          break;
        case ColumnMap::kTimestamp: {
          int64_t n;
          auto pr = std::from_chars(v.data(), v.data() + v.size(), n);
          if (v.empty()) {
            err = "column '" + r.header[i] + "' (timestamp) is empty";
          } else if (pr.ec == std::errc() && pr.ptr == v.data() + v.size()) {
            bool secs = plan.unit == CsvPlan::kSeconds || (plan.unit == CsvPlan::kAuto && n < 100'000'000'000LL);
            if (secs && (n > 9'000'000'000'000'000LL / 1000 || n < -9'000'000'000'000'000LL / 1000))
              err = "column '" + r.header[i] + "': timestamp " + std::string(v) + " is out of range";
            else
              ts = secs ? n * 1000 : n;
          } else {
            auto t = ParseIsoTimestamp(v, *r.tz);
            if (!t.ok())
              err = "column '" + r.header[i] + "': " + t.status().message();
            else
              ts = *t;
          }
          break;
        }
        case ColumnMap::kProperty: {
          const int k = plan.slot[i];
          if (!v.empty() && !slot_set[k]) {  // two columns of one key: the first value wins
            slot[k] = v;
            slot_set[k] = 1;
          }
          break;
        }
        case ColumnMap::kPersonProperty:
          if (!v.empty()) person_set.push_back({r.cols[i].name, CsvValue(std::string(v))});
          break;
      }
      if (!err.empty()) break;
    }
    if (ev.empty() && !r.has_event_column) {
      ev = r.event_name;
      ev_field = false;
    }
    if (err.empty() && ev.empty()) err = "the event name is empty";
    if (err.empty() && id.empty()) err = "the distinct id is empty";
    if (err.empty() && Utf8Length(ev) > lim.max_name_chars) err = "the event name is longer than 200 characters";
    if (err.empty() && (ts < lim.min_ts_ms || ts > r.now_ms + lim.max_future_ms)) {
      Status ts_ok = CheckTimestamp(ts, r.now_ms, lim, "timestamp");
      if (!ts_ok.ok()) err = ts_ok.message();
    }
    if (!err.empty()) {
      out.errors.push_back({line, "line " + std::to_string(line) + ": " + err});
      continue;
    }
    const size_t row = rows.ts.size();
    rows.ts.push_back(ts);
    rows.id.push_back(ids.Intern(stable(id)));
    rows.name.push_back(names.Intern(ev_field ? stable(ev) : ev));
    if (has_uuid || !rows.has_uuid.empty()) {  // the uuid columns start with the first uuid
      rows.has_uuid.resize(row, 0);
      rows.uuid.resize(row);
      rows.has_uuid.push_back(has_uuid ? 1 : 0);
      rows.uuid.push_back(uuid);
    }
    for (size_t k = 0; k < nkeys; k++) {
      BulkRows::PropCol& c = rows.props[k];
      double d;
      if (!slot_set[k]) {
        c.code.push_back(BulkRows::kAbsent);
        if (!c.num.empty()) c.num.push_back(0);
      } else if (CsvNumber(slot[k], &d)) {
        if (c.num.empty()) c.num.assign(row, 0);
        c.code.push_back(BulkRows::kNumber);
        c.num.push_back(d);
      } else {
        c.code.push_back(1 + texts[k].Intern(stable(slot[k])));
        if (!c.num.empty()) c.num.push_back(0);
      }
    }
    const bool identifies = ev == "$identify" || ev == "$create_alias" || ev == "$merge_dangerously";
    if (identifies || !person_set.empty()) {
      BulkRows::Identity e;
      e.row = static_cast<uint32_t>(row);
      e.identifies = identifies;
      e.set = std::move(person_set);
      rows.identity.push_back(std::move(e));
    }
  }
  out.lines_done = rd.lines_done();
  rows.ids = ids.Strings();
  rows.names = names.Strings();
  for (size_t k = 0; k < nkeys; k++) {
    rows.props[k].text = texts[k].Strings();
    rows.props[k].kind.assign(rows.props[k].text.size(), PropValue::kStr);
  }
  return out;
}

// Events of a parsed NDJSON piece as columns.
void EventsToRows(std::vector<Event>& events, BulkRows* rows) {
  const size_t n = events.size();
  ViewIndex ids, names;
  struct Texts {
    ViewIndex str, json;
    std::vector<uint32_t> str_text, json_text;  // kind-local index -> text index
  };
  std::vector<Texts> texts;
  std::unordered_map<std::string_view, size_t> col_of;
  std::vector<std::pair<std::string_view, size_t>> last_keys;  // the previous event's keys
  for (size_t row = 0; row < n; row++) {
    Event& e = events[row];
    rows->ts.push_back(e.ts_ms);
    rows->id.push_back(ids.Intern(e.distinct_id));
    rows->name.push_back(names.Intern(e.event));
    if (e.has_uuid || !rows->has_uuid.empty()) {
      rows->has_uuid.resize(row, 0);
      rows->uuid.resize(row);
      rows->has_uuid.push_back(e.has_uuid ? 1 : 0);
      rows->uuid.push_back(e.has_uuid ? e.uuid : Uuid{});
    }
    for (size_t k = 0; k < e.props.size(); k++) {
      const Property& p = e.props[k];
      size_t ci;
      if (k < last_keys.size() && last_keys[k].first == p.key) {
        ci = last_keys[k].second;
      } else {
        auto it = col_of.find(p.key);
        if (it == col_of.end()) {
          it = col_of.emplace(p.key, rows->props.size()).first;
          rows->props.push_back(BulkRows::PropCol{p.key, {}, {}, {}, {}});
          texts.emplace_back();
        }
        ci = it->second;
        if (k < last_keys.size())
          last_keys[k] = {p.key, ci};
        else
          last_keys.emplace_back(p.key, ci);
      }
      BulkRows::PropCol& c = rows->props[ci];
      if (c.code.size() > row) continue;  // a key twice in one event: the first wins
      c.code.resize(row, BulkRows::kAbsent);
      if (!c.num.empty()) c.num.resize(row, 0);
      if (p.value.kind == PropValue::kNum) {
        if (c.num.empty()) c.num.assign(row, 0);
        c.code.push_back(BulkRows::kNumber);
        c.num.push_back(p.value.num);
        continue;
      }
      Texts& t = texts[ci];
      const bool json = p.value.kind == PropValue::kJson;
      ViewIndex& index = json ? t.json : t.str;
      std::vector<uint32_t>& to_text = json ? t.json_text : t.str_text;
      const uint32_t local = index.Intern(p.value.str);
      if (local == to_text.size()) {
        to_text.push_back(static_cast<uint32_t>(c.text.size()));
        c.text.push_back(p.value.str);
        c.kind.push_back(p.value.kind);
      }
      c.code.push_back(1 + to_text[local]);
      if (!c.num.empty()) c.num.push_back(0);
    }
    // last_keys may point at this event's keys: they stay valid (events outlive the loop).
    const bool identifies = IdentifiesPerson(e);
    if (identifies || !e.merge_with.empty() || !e.person_set.empty() || !e.person_set_once.empty()) {
      BulkRows::Identity id;
      id.row = static_cast<uint32_t>(row);
      id.identifies = identifies;
      id.merge_with = std::move(e.merge_with);
      id.set = std::move(e.person_set);
      id.set_once = std::move(e.person_set_once);
      rows->identity.push_back(std::move(id));
    }
  }
  for (auto& c : rows->props) {
    c.code.resize(n, BulkRows::kAbsent);
    if (!c.num.empty()) c.num.resize(n, 0);
  }
  rows->ids = ids.Strings();
  rows->names = names.Strings();
}

}  // namespace

StatusOr<BulkImportResult> BulkImportCsv(const BulkImportRequest& r) {
  NS_ASSIGN_OR_RETURN(MappedInput in, MappedInput::Open(r.path));
  const std::string_view text = in.text();
  CsvPlan plan;
  plan.unit = r.time_unit == "s" ? CsvPlan::kSeconds : r.time_unit == "ms" ? CsvPlan::kMillis : CsvPlan::kAuto;
  for (const auto& c : r.cols) {
    plan.kind.push_back(c.kind);
    int slot = -1;
    if (c.kind == ColumnMap::kProperty) {
      auto it = std::find(plan.keys.begin(), plan.keys.end(), c.name);
      slot = static_cast<int>(it - plan.keys.begin());
      if (it == plan.keys.end()) plan.keys.push_back(c.name);
    }
    plan.person_columns |= c.kind == ColumnMap::kPersonProperty;
    plan.slot.push_back(slot);
  }
  const size_t from = std::min(r.data_offset, text.size());
  // Finding the pieces reads the whole file (a search for quotes): its pages are let go as
  // it goes, or the import's memory would hold the whole file (2.4 GiB of dataset M) until
  // each piece is parsed and released. Each piece maps its pages again from the page cache.
  // (A page across two calls' bounds stays until its piece is parsed and released.)
  size_t released = 0;
  const std::vector<size_t> starts = CsvPieceStarts(text, from, r.piece_bytes, ',', [&](size_t upto) {
    in.Release(released, upto);
    released = upto;
  });
  return RunPieces(
      r, starts, text.size(), [&](size_t begin, size_t end) { return ParseCsvPiece(r, plan, text, begin, end); },
      [&](size_t begin, size_t end) { in.Release(begin, end); });
}

StatusOr<BulkImportResult> BulkImportNdjson(const BulkImportRequest& r) {
  NS_ASSIGN_OR_RETURN(MappedInput in, MappedInput::Open(r.path));
  const std::string_view text = in.text();
  // Pieces end at newlines (a JSON text holds none outside its strings, where they are escaped).
  std::vector<size_t> starts{0};
  for (size_t p = r.piece_bytes; p < text.size();) {
    const size_t nl = text.find('\n', p);
    if (nl == std::string_view::npos || nl + 1 >= text.size()) break;
    starts.push_back(nl + 1);
    p = nl + 1 + r.piece_bytes;
  }
  // One line is one event whatever its size, as the per-event import reads it; the piece
  // is not a request body.
  IngestLimits limits = r.limits;
  limits.max_body_bytes = std::max(limits.max_body_bytes, text.size());
  limits.max_event_bytes = std::max(limits.max_event_bytes, text.size());
  auto parse_piece = [&](size_t begin, size_t end) {
    Piece out;
    const std::string_view piece = text.substr(begin, end - begin);
    size_t lines = static_cast<size_t>(std::count(piece.begin(), piece.end(), '\n'));
    if (!piece.empty() && piece.back() != '\n') lines++;
    out.records = lines;
    out.lines_done = lines;
    auto parsed = ParseNativeBatch(piece, /*ndjson=*/true, *r.tz, r.now_ms, limits);
    if (!parsed.ok()) {
      out.errors.push_back({1, "line 1: " + parsed.status().message()});
      out.stop = true;
      return out;
    }
    for (const auto& e : parsed->errors) out.errors.push_back({e.index + 1, e.message});
    EventsToRows(parsed->events, &out.rows);
    return out;
  };
  return RunPieces(r, starts, text.size(), parse_piece, [&](size_t begin, size_t end) { in.Release(begin, end); });
}

}  // namespace ns
