// The bulk import path (cli/import_bulk.cc, storage/bulk_loader.cc) against the per-event
// path (`import --per-event`: Events through EventStore::Append, flushes, compaction), on
// random CSV and NDJSON files with identity merges, person properties, duplicate uuids,
// bad rows, quoted fields, CRLF, equal timestamps and Asia/Shanghai day edges, imported
// twice into one project (the second import meets stored uuids and stored partitions).
// Every stored row, every distinct id's person, the person properties, the rejected lines
// and a few query answers must be the same; the bulk store has one segment per day.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "core/time_zone.h"
#include "meta/project_registry.h"
#include "query/query_kind.h"
#include "storage/block.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

// 2026-03-01 00:00 Asia/Shanghai = 2026-02-28 16:00 UTC.
constexpr int64_t kBaseS = 1772294400;

std::string Pad2(int v) {
  char b[8];
  std::snprintf(b, sizeof b, "%02d", v);
  return b;
}

// A timestamp near a Shanghai day edge, in one of the forms the import reads.
std::string RandomTime(std::mt19937& rng, int64_t* secs_out) {
  const int day = static_cast<int>(rng() % 4);
  const int64_t edge = kBaseS + day * 86400;
  const int64_t s = edge + static_cast<int64_t>(rng() % 7) - 3;  // equal timestamps are common
  *secs_out = s;
  switch (rng() % 4) {
    case 0: return std::to_string(s);
    case 1: return std::to_string(s * 1000 + static_cast<int64_t>(rng() % 2));
    case 2: {  // local time, no offset: the project's zone (UTC+8)
      const int64_t local = s + 8 * 3600;
      const int64_t sod = ((local % 86400) + 86400) % 86400;
      const int64_t days = (local - sod) / 86400;
      // 2026-03-01 is day 20513 since the epoch.
      const int d = static_cast<int>(days - 20513);
      std::string date = d < 0 ? "2026-02-28" : "2026-03-" + Pad2(1 + d);
      return date + " " + Pad2(static_cast<int>(sod / 3600)) + ":" + Pad2(static_cast<int>(sod / 60 % 60)) + ":" +
             Pad2(static_cast<int>(sod % 60));
    }
    default: return std::to_string(s) + "000";
  }
}

std::string MakeCsv(uint32_t seed, int rows, std::vector<std::string>* uuids) {
  std::mt19937 rng(seed);
  std::string out = "uuid,user,action,time,price,plan,city,extra\n";
  const char* names[] = {"view", "buy", "$identify", "signup", "\xe5\x8a\xa0\xe8\xb4\xad"};
  const char* cities[] = {"Hangzhou",       "\"Hang, zhou\"",           "\"say \"\"hi\"\"\"",
                          "\"two\nlines\"", "\xe6\x9d\xad\xe5\xb7\x9e", ""};
  const char* prices[] = {"12.5", "0", "free", "007", "+86", "1e3", "", "-0", "3"};
  for (int i = 0; i < rows; i++) {
    const std::string eol = rng() % 10 == 0 ? "\r\n" : "\n";
    const int bad = static_cast<int>(rng() % 40);
    if (bad == 0) {
      out += eol;  // blank line
      continue;
    }
    std::string uuid;
    if (rng() % 3 == 0) {
      if (!uuids->empty() && rng() % 4 == 0)
        uuid = (*uuids)[rng() % uuids->size()];  // a retry
      else
        uuids->push_back(uuid = "u-" + std::to_string(seed) + "-" + std::to_string(i));
    }
    std::string user = "user" + std::to_string(rng() % 40);
    std::string action = names[rng() % 5];
    int64_t secs;
    std::string time = RandomTime(rng, &secs);
    std::string price = prices[rng() % 9];
    std::string plan = rng() % 5 == 0 ? (rng() % 2 ? "pro" : "42") : "";
    std::string city = cities[rng() % 6];
    std::string extra = rng() % 3 == 0 ? "x" + std::to_string(rng() % 3) : "";
    switch (bad) {
      case 1: user = ""; break;
      case 2: action = ""; break;
      case 3: time = "yesterday"; break;
      case 4: time = "946684"; break;      // 1970: before 2000
      case 5: time = "4102444800"; break;  // 2100: in the future
      case 6: city = "bad\xff"; break;
      case 7: action = std::string(201, 'a'); break;
      case 8: time = ""; break;
      default: break;
    }
    if (bad == 9) {
      out += uuid + "," + user + "," + action + eol;  // too few fields
      continue;
    }
    out += uuid + "," + user + "," + action + "," + time + "," + price + "," + plan + "," + city + "," + extra + eol;
  }
  if (seed % 5 == 0) out += "u9,user1,view,\"" + std::to_string(kBaseS) + "\"x,1,,,\n";  // stops the import here
  if (seed % 5 == 1) out += "u9,user1,view,1772294400,1,,\"open";                        // unterminated
  return out;
}

std::string MakeNdjson(uint32_t seed, int rows, std::vector<std::string>* uuids) {
  std::mt19937 rng(seed * 7 + 1);
  std::string out;
  for (int i = 0; i < rows; i++) {
    const int bad = static_cast<int>(rng() % 30);
    if (bad == 0) {
      out += "\n";
      continue;
    }
    if (bad == 1) {
      out += "{\"event\": \"view\", \"distinct_id\": \n";  // malformed
      continue;
    }
    json e;
    const std::string user = "user" + std::to_string(rng() % 30);
    const std::string anon = "anon" + std::to_string(rng() % 50);
    const int kind = static_cast<int>(rng() % 6);
    e["event"] = kind == 0 ? "$identify" : kind == 1 ? "buy" : "view";
    e["distinct_id"] = kind == 2 ? anon : user;
    int64_t secs;
    std::string t = RandomTime(rng, &secs);
    e["timestamp"] = rng() % 2 ? json(secs * 1000) : json(FormatIsoUtc(secs * 1000));
    if (bad == 2) e.erase("distinct_id");
    if (bad == 3) e["timestamp"] = "not a time";
    if (rng() % 3 == 0) {
      std::string uuid;
      if (!uuids->empty() && rng() % 4 == 0)
        uuid = (*uuids)[rng() % uuids->size()];
      else
        uuids->push_back(uuid = "n-" + std::to_string(seed) + "-" + std::to_string(i));
      e["uuid"] = uuid;
    }
    json props = json::object();
    if (kind == 0) props["$anon_distinct_id"] = anon;
    if (rng() % 2) props["price"] = rng() % 3 ? json(static_cast<double>(rng() % 100) / 4) : json("free");
    if (rng() % 3 == 0) props["flag"] = rng() % 2 == 0;
    if (rng() % 4 == 0) props["obj"] = json{{"a", rng() % 3}};
    if (rng() % 3 == 0) props["city"] = rng() % 2 ? "Hangzhou" : "\xe6\x9d\xad\xe5\xb7\x9e";
    if (!props.empty()) e["properties"] = props;
    if (rng() % 6 == 0) e["$set"] = json{{"plan", rng() % 2 ? "pro" : "free"}};
    if (rng() % 6 == 0) e["$set_once"] = json{{"first", static_cast<int>(rng() % 9)}};
    out += e.dump() + (rng() % 8 == 0 ? "\r\n" : "\n");
  }
  return out;
}

struct ImportRun {
  int rc = 0;
  std::vector<std::string> errors;
};

ImportRun Import(const std::string& data, const std::string& file, bool per_event, const std::string& errors_file,
                 const std::vector<std::string>& maps) {
  GlobalOptions g;
  g.data = data;
  g.store.flush_rows = 500;  // the per-event path flushes often: several segments a day to compact
  ImportOptions o;
  o.file = file;
  o.project = "p";
  o.maps = maps;
  o.progress = false;
  o.per_event = per_event;
  o.batch = 300;
  o.errors_file = errors_file;
  o.piece_bytes = 2000;  // many pieces
  o.spill_rows = 700;    // several writes, then compaction
  ImportRun r;
  r.rc = RunImport(g, o);
  std::ifstream in(errors_file);
  for (std::string line; std::getline(in, line);) {
    // The two imports run at different times: drop the clock from "in the future" errors.
    if (size_t at = line.find(" (server time "); at != std::string::npos) line.resize(at);
    r.errors.push_back(line);
  }
  return r;
}

// Everything a query can see, as text.
struct StoreDump {
  std::vector<std::string> rows, ids, person_props, answers;
  uint64_t segments = 0;
  std::set<int32_t> days;
};

StoreDump Dump(const std::string& data) {
  StoreDump d;
  auto reg = ProjectRegistry::Open(data);
  EXPECT_TRUE(reg.ok());
  auto p = (*reg)->OpenProject("p");
  EXPECT_TRUE(p.ok());
  EventStore& store = *(*p)->store;
  auto snap = store.Snapshot();
  std::vector<Property> props;
  for (const auto& b : snap->blocks) {
    for (size_t i = 0; i < b->size(); i++) {
      std::ostringstream s;
      s << b->did()[i] << "|" << b->ts()[i] << "|" << snap->events->Name(b->ev()[i]) << "|"
        << (b->has_uuid()[i] ? b->uuid()[i].ToString() : "-");
      b->RowProps(i, &props);
      for (const auto& pr : props) s << "|" << pr.key << "=" << int(pr.value.kind) << ":" << pr.value.AsString();
      d.rows.push_back(s.str());
      d.days.insert(UtcDay(b->ts()[i]));
    }
  }
  std::sort(d.rows.begin(), d.rows.end());
  const StoreStats st = store.Stats();
  d.segments = st.segments;
  for (uint32_t did = 0; did < st.distinct_ids; did++)
    d.ids.push_back(store.DistinctId(did) + " person " + std::to_string(snap->persons->PersonOf(did)) + " " +
                    (store.Identified(did) ? "identified " : "") + store.DisplayId(snap->persons->PersonOf(did)));
  for (const auto& [key, col] : snap->persons->columns)
    col->ForEach([&](uint32_t person, const PropValue& v) {
      d.person_props.push_back(key + " " + std::to_string(person) + " " + v.AsString());
    });
  const TimeZone& tz = (*p)->tz;
  for (const json& q : {json{{"kind", "trends"},
                             {"series", {{{"event", "view"}}, {{"event", "buy"}, {"math", "dau"}}}},
                             {"date_from", "2026-02-27"},
                             {"date_to", "2026-03-06"}},
                        json{{"kind", "funnel"},
                             {"steps", {{{"event", "view"}}, {{"event", "buy"}}}},
                             {"date_from", "2026-02-27"},
                             {"date_to", "2026-03-06"}}}) {
    auto r = RunQuery(q, store, tz);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) {
      r->erase("took_ms");
      d.answers.push_back(r->dump());
    }
  }
  return d;
}

void CreateProject(const std::string& data) {
  auto reg = ProjectRegistry::Open(data);
  ASSERT_TRUE(reg.ok());
  ASSERT_TRUE((*reg)->Create("p", "Asia/Shanghai").ok());
}

// Line numbers of "line N..." messages (NDJSON: the bulk path's JSON errors are
// ParseNativeBatch's, worded unlike the per-event path's json::parse message).
std::vector<std::string> LinePrefixes(const std::vector<std::string>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) {
    size_t end = 5;
    while (end < e.size() && std::isdigit(static_cast<unsigned char>(e[end]))) end++;
    out.push_back(e.substr(0, end));
  }
  return out;
}

void Compare(const std::string& what, uint32_t seed, const std::vector<std::string>& files,
             const std::vector<std::string>& maps, bool exact_errors) {
  testing::TempDir old_dir, new_dir, tmp;
  CreateProject(old_dir.path());
  CreateProject(new_dir.path());
  for (size_t f = 0; f < files.size(); f++) {
    const std::string e1 = tmp.path() + "/old.err", e2 = tmp.path() + "/new.err";
    ImportRun a = Import(old_dir.path(), files[f], true, e1, maps);
    ImportRun b = Import(new_dir.path(), files[f], false, e2, maps);
    SCOPED_TRACE(what + " seed " + std::to_string(seed) + " file " + std::to_string(f));
    EXPECT_EQ(a.rc, b.rc);
    if (exact_errors)
      EXPECT_EQ(a.errors, b.errors);
    else
      EXPECT_EQ(LinePrefixes(a.errors), LinePrefixes(b.errors));
  }
  StoreDump x = Dump(old_dir.path()), y = Dump(new_dir.path());
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  EXPECT_FALSE(y.rows.empty());
  EXPECT_EQ(x.rows.size(), y.rows.size());
  std::vector<std::string> only_old, only_new;
  std::set_difference(x.rows.begin(), x.rows.end(), y.rows.begin(), y.rows.end(), std::back_inserter(only_old));
  std::set_difference(y.rows.begin(), y.rows.end(), x.rows.begin(), x.rows.end(), std::back_inserter(only_new));
  only_old.resize(std::min<size_t>(only_old.size(), 5));
  only_new.resize(std::min<size_t>(only_new.size(), 5));
  EXPECT_EQ(only_old, only_new) << "rows stored by one path only (first 5 of each)";
  EXPECT_EQ(x.ids, y.ids);
  EXPECT_EQ(x.person_props, y.person_props);
  EXPECT_EQ(x.answers, y.answers);
  EXPECT_EQ(y.segments, y.days.size());  // compacted: one segment per day
}

// Each seed imports four files and reads two stores back (about 1 s on a loaded machine,
// mostly fsyncs).
const uint32_t kSeeds = std::getenv("NS_BULK_SEEDS") ? std::atoi(std::getenv("NS_BULK_SEEDS")) : 16;

TEST(BulkImportTest, CsvMatchesPerEventPath) {
  for (uint32_t seed = 0; seed < kSeeds; seed++) {
    testing::TempDir files;
    std::vector<std::string> uuids, paths;
    for (int f = 0; f < 2; f++) {
      paths.push_back(files.path() + "/f" + std::to_string(f) + ".csv");
      std::ofstream(paths.back()) << MakeCsv(seed * 2 + f, 400 + static_cast<int>(seed) * 13, &uuids);
    }
    Compare("csv", seed, paths, {"user=distinct_id", "plan=person.plan", "extra=properties.price"}, true);
  }
}

TEST(BulkImportTest, NdjsonMatchesPerEventPath) {
  for (uint32_t seed = 0; seed < kSeeds; seed++) {
    testing::TempDir files;
    std::vector<std::string> uuids, paths;
    for (int f = 0; f < 2; f++) {
      paths.push_back(files.path() + "/f" + std::to_string(f) + ".ndjson");
      std::ofstream(paths.back()) << MakeNdjson(seed * 2 + f, 400 + static_cast<int>(seed) * 13, &uuids);
    }
    Compare("ndjson", seed, paths, {}, false);
  }
}

}  // namespace
}  // namespace ns
