// Times Northstar on the peer workload (DESIGN §8) over a project holding the peers'
// dataset, and writes results in the peers' format (results/<TAG>/northstar/) so that
// ../shared/bench-peers/compare.py cross-checks the answers and prints one table.
// usage: ns_bench --data DIR --project P --out DIR [--runs 5] [--from 2024-01-01 --to 2024-03-30]
//                 [--only q1,q4] [--people [--people-only rfm,lifecycle]]
//                 (--only q2,paths: the paths query of issue 11 too)
//                 [--project30 bench30]  (--only q2_30: the 30-step funnel too, see below)
// Q4 (RFM) is Northstar's `rfm` query as of --to (the day of the data's largest ts) with the
// people settings of the generator (payment event `pay`, amount property `amount`); its
// scores are rank quintiles, not the peers' NTILE, so it writes rfm_totals.csv (payers and
// revenue in cents, which do agree with the peers' q4.csv) rather than a q4.csv for compare.py.
// --people (after the peer queries; the project must hold person properties `platform` and
// `channel`, see bench/run_bench.sh) times the people layer alone: a fresh three-condition
// behavioural cohort, rfm with and without its facts cached, lifecycle stages by week, and
// Q2 with and without a cohort filter; writes people.json.
// --person-chunks N sets the plain funnel's and retention's person chunks per thread (default
// 4; 1 is one range per thread), to compare the two in one sitting.
// --memory-budget SIZE (as `northstar --memory-budget`, default 25% of RAM) bounds the
// decoded columns kept between queries; each query's line shows the process's peak RSS
// while that query ran (warm-up and timed runs) and the column cache's bytes after it.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "meta/project_registry.h"
#include "people/cohort_eval.h"
#include "query/cohort_source.h"
#include "query/lifecycle_plain.h"
#include "query/operators.h"
#include "query/person_facts.h"
#include "query/person_scan.h"
#include "query/query_kind.h"
#include "storage/column_cache.h"

using nlohmann::json;

namespace {

// Starts a new peak: the kernel resets VmHWM to the current RSS (Linux 4.0+).
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// VmHWM of this process in MiB ("?" if /proc is not there).
std::string PeakRssMiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::to_string(std::stoull(line.substr(6)) / 1024);
  return "?";
}

std::string Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; i++)
    if (std::string(argv[i]) == name) return argv[i + 1];
  return def;
}

bool HasFlag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; i++)
    if (std::string(argv[i]) == name) return true;
  return false;
}

json Must(ns::StatusOr<json> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "query failed: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  return *r;
}

// The bench's one cohort (id 1), evaluated once per store state with "today" the data's
// last day (the server's PeopleService would end "last N days" at the real today).
class BenchCohorts : public ns::CohortSource {
 public:
  BenchCohorts(const ns::CohortCondition& def, const ns::PeopleSettings& s, int32_t today)
      : def_(def), settings_(s), today_(today) {}
  ns::StatusOr<std::shared_ptr<const Roaring>> Members(int64_t id, const ns::StoreSnapshot& snap,
                                                       const ns::TimeZone& tz) const override {
    if (id != 1) return ns::NotFound("cohort " + std::to_string(id));
    if (!cached_) {
      ns::CohortEvalContext ctx{snap, tz, settings_, today_, nullptr, nullptr, nullptr};
      auto r = ns::EvaluateCohort(def_, ctx);
      if (!r.ok()) return r.status();
      cached_ = std::make_shared<const Roaring>(std::move(*r));
    }
    return cached_;
  }

 private:
  const ns::CohortCondition& def_;
  const ns::PeopleSettings& settings_;
  int32_t today_;
  mutable std::shared_ptr<const Roaring> cached_;
};

// Median and min of `runs` timed calls of fn after one untimed warm-up.
std::pair<std::vector<double>, std::string> Time(int runs, const std::function<void(int)>& fn) {
  fn(-1);
  std::vector<double> ts;
  for (int i = 0; i < runs; i++) {
    auto t0 = std::chrono::steady_clock::now();
    fn(i);
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<double> s = ts;
  std::sort(s.begin(), s.end());
  char buf[96];
  std::snprintf(buf, sizeof buf, "min %.1f ms, median %.1f ms", s.front(), s[s.size() / 2]);
  return {ts, buf};
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = Arg(argc, argv, "--data", "./data"), project = Arg(argc, argv, "--project", "bench");
  std::string out = Arg(argc, argv, "--out", "results/S/northstar");
  int runs = std::stoi(Arg(argc, argv, "--runs", "5"));
  std::string from = Arg(argc, argv, "--from", "2024-01-01"), to = Arg(argc, argv, "--to", "2024-03-30");
  // --person-chunks N: the plain funnel's and retention's person chunks per thread (1: one
  // range per thread, as before b24c735), for same-run comparisons.
  if (const std::string chunks = Arg(argc, argv, "--person-chunks", ""); !chunks.empty()) {
    const int n = std::atoi(chunks.c_str());
    if (n < 1 || n > 64) return std::fprintf(stderr, "--person-chunks: expected 1-64, got %s\n", chunks.c_str()), 1;
    ns::SequenceScanTuning().person_chunks_per_slot = n;
  }
  if (auto budget = ns::ParseMemoryBudget(Arg(argc, argv, "--memory-budget", "25%"), "--memory-budget"); budget.ok())
    ns::ColumnCache::Global().SetBudget(*budget);
  else
    return std::fprintf(stderr, "%s\n", budget.status().message().c_str()), 1;
  ns::StoreOptions so;
  so.background = false;
  auto reg = ns::ProjectRegistry::Open(data, so);
  if (!reg.ok()) return std::fprintf(stderr, "%s\n", reg.status().ToString().c_str()), 1;
  auto p = (*reg)->OpenProject(project);
  if (!p.ok()) return std::fprintf(stderr, "%s\n", p.status().ToString().c_str()), 1;
  ns::EventStore& store = *(*p)->store;
  const ns::TimeZone& tz = (*p)->tz;
  // The generator's payment event and amount property (gen_events.cpp: `pay`, `amount` in
  // currency units with two decimals); the data has no order id, so every pay is an order.
  ns::PeopleSettings people;
  people.pay_event = "pay";
  people.amount_property = "amount";
  ns::QueryOptions qopt;
  qopt.people = &people;
  auto run = [&](const json& q) { return Must(ns::RunQuery(q, store, tz, qopt)); };

  const json q1{
      {"kind", "trends"}, {"series", {{{"event", "$any"}, {"math", "dau"}}}}, {"date_from", from}, {"date_to", to}};
  const json q2{{"kind", "funnel"},
                {"steps",
                 {{{"event", "product_exposure"}},
                  {{"event", "product_click"}},
                  {{"event", "add_to_cart"}},
                  {{"event", "order"}},
                  {{"event", "pay"}}}},
                {"window_seconds", 604800},
                {"date_from", from},
                {"date_to", to}};
  const json q3{{"kind", "retention"}, {"start_event", "register"}, {"return_event", "$any"}, {"period", "day"},
                {"periods", 31},       {"date_from", from},         {"date_to", to}};
  // Q5 as one request: the channels kind (issue 13) with the register event as the
  // acquisition (the channel of its row), the new persons' payments as revenue and payers,
  // and conversions within 604800 s of the register, as the peers' Q5 counts them.
  const json q5{{"kind", "channels"},
                {"date_from", from},
                {"date_to", to},
                {"acquisition_event", "register"},
                {"channel_properties", json::array({"channel"})},
                {"conversion_seconds", 604800}};

  // Q4: every payer scored as of the last day of the data (recency counted to that day).
  const json q4{{"kind", "rfm"}, {"as_of", to}, {"limit", 0}};

  std::map<std::string, std::function<std::string()>> queries;
  // The per-person facts (one pass over the rows) are cached per store state and settings;
  // like the peers' Q4 every run must redo that pass, so each run names another, absent,
  // order property: the facts are recomputed and the answer is the same.
  int q4_runs = 0;
  auto q4_fresh = [&] {
    ns::PeopleSettings s = people;
    s.order_property = "order_id_bench_" + std::to_string(++q4_runs);
    ns::QueryOptions o = qopt;
    o.people = &s;
    return Must(ns::RunQuery(q4, store, tz, o));
  };
  queries["q4"] = [&] {
    json r = q4_fresh();
    double revenue = 0;
    for (auto& g : r["segments"]) revenue += g["revenue"].get<double>();
    std::ofstream(out + "/rfm_totals.csv")
        << "payers,monetary_cents\n"
        << r["persons_scored"].get<uint64_t>() << "," << static_cast<uint64_t>(std::llround(revenue * 100)) << "\n";
    return r.dump();
  };
  queries["q1"] = [&] {
    json r = run(q1);
    std::string csv = "day,dau\n";
    auto& s = r["series"][0];
    for (size_t i = 0; i < s["dates"].size(); i++) {
      int32_t d = *ns::ParseDate(s["dates"][i].get<std::string>(), "d");
      if (s["values"][i].get<uint64_t>() > 0)
        csv += std::to_string(d) + "," + std::to_string(s["values"][i].get<uint64_t>()) + "\n";
    }
    return csv;
  };
  queries["q2"] = [&] {
    json r = run(q2);
    std::string csv = "step,users\n";
    int k = 1;
    for (auto& s : r["steps"]) csv += std::to_string(k++) + "," + std::to_string(s["count"].get<uint64_t>()) + "\n";
    return csv;
  };
  queries["q3"] = [&] {
    json r = run(q3);
    std::string csv = "cohort_day,cohort_size,d1,d7,d30\n";
    for (auto& c : r["cohorts"]) {
      if (c["size"].get<uint64_t>() == 0) continue;
      int32_t d = *ns::ParseDate(c["date"].get<std::string>(), "d");
      auto& v = c["values"];
      csv += std::to_string(d) + "," + std::to_string(c["size"].get<uint64_t>()) + "," + v[1].dump() + "," +
             v[7].dump() + "," + v[30].dump() + "\n";
    }
    return csv;
  };
  queries["q5"] = [&] {
    json r = run(q5);
    std::map<std::string, std::string> rows;  // by channel name, as the peers order them
    for (auto& c : r["channels"]) {
      std::string ch = c["channel"].get<std::string>();
      if (ch == "(none)") ch = "";  // no channel on the register row
      rows[ch] = std::to_string(c["new_persons"].get<uint64_t>()) + "," +
                 std::to_string(c["paying_persons"].get<uint64_t>()) + "," +
                 std::to_string(static_cast<uint64_t>(std::llround(c["revenue"].get<double>() * 100))) + "," +
                 std::to_string(c["converted_persons"].get<uint64_t>());
    }
    std::string csv = "channel,new_users,paying_users,revenue_cents,conv7_users\n";
    for (auto& [ch, v] : rows) csv += ch + "," + v + "\n";
    return csv;
  };
  // Paths (issue 11; Northstar only, run when --only names it: `--only q2,paths` times it next
  // to the plain funnel it is held to): every session's first five elements over the range.
  const json paths{{"kind", "paths"}, {"step_limit", 5}, {"date_from", from}, {"date_to", to}};
  queries["paths"] = [&] {
    json r = run(paths);
    std::string csv = "source,target,persons,paths\n";
    for (auto& e : r["edges"])
      csv += e["source"].get<std::string>() + "," + e["target"].get<std::string>() + "," + e["persons"].dump() + "," +
             e["paths"].dump() + "\n";
    return csv;
  };
  // The 30-step funnel of issue 15 (Northstar only, run when --only names q2_30; `--only
  // q2_30` matches q2 as well, so both are timed in one run): 30 distinct event names, the
  // five Q2 events in six purchase rounds, over the project --project30 (default bench30)
  // of the same data directory, imported from the peer CSV rewritten by bench/rounds30.py
  // (a person's n-th occurrence of E renamed E_rK, K = (n - 1) mod 6 + 1). It reads exactly
  // the rows and columns Q2 reads, each row matching one step: its time over Q2's is the
  // cost of the step count.
  ns::EventStore* store30 = nullptr;
  const ns::TimeZone* tz30 = nullptr;
  json q2_30{
      {"kind", "funnel"}, {"steps", json::array()}, {"window_seconds", 604800}, {"date_from", from}, {"date_to", to}};
  for (int round = 1; round <= 6; round++)
    for (const char* e : {"product_exposure", "product_click", "add_to_cart", "order", "pay"})
      q2_30["steps"].push_back({{"event", std::string(e) + "_r" + std::to_string(round)}});
  queries["q2_30"] = [&] {
    if (!store30) {
      auto p30 = (*reg)->OpenProject(Arg(argc, argv, "--project30", "bench30"));
      if (!p30.ok()) {
        std::fprintf(stderr, "q2_30: %s\n", p30.status().ToString().c_str());
        std::exit(1);
      }
      store30 = &*(*p30)->store;
      tz30 = &(*p30)->tz;
    }
    json r = Must(ns::RunQuery(q2_30, *store30, *tz30, qopt));
    std::string csv = "step,users\n";
    int k = 1;
    for (auto& s : r["steps"]) csv += std::to_string(k++) + "," + std::to_string(s["count"].get<uint64_t>()) + "\n";
    return csv;
  };
  json timings = json::object();
  std::string cmd = "mkdir -p '" + out + "'";
  if (std::system(cmd.c_str()) != 0) return 1;
  std::string only = Arg(argc, argv, "--only", "");
  for (auto& [name, fn] : queries) {
    if (!only.empty() && only.find(name) == std::string::npos) continue;
    if ((name == "paths" || name == "q2_30") && only.find(name) == std::string::npos) continue;  // opt-in
    ResetPeakRss();                                                                              // this query's peak
    std::string res = fn();                                                                      // warm-up; result kept
    if (name == "q4")
      std::ofstream(out + "/rfm_q4.json") << res;  // not q4.csv: other scoring than the peers'
    else
      std::ofstream(out + "/" + name + ".csv") << res;
    std::vector<double> ts;
    for (int i = 0; i < runs; i++) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::vector<double> s = ts;
    std::sort(s.begin(), s.end());
    const ns::ColumnCacheStats cs = ns::ColumnCache::Global().Stats();
    std::printf(
        "northstar %s: min %.1f ms, median %.1f ms (peak RSS %s MiB, columns %.0f MiB (peak %.0f MiB) of budget %.0f "
        "MiB)\n",
        name.c_str(), s.front(), s[s.size() / 2], PeakRssMiB().c_str(), cs.resident_bytes / 1048576.0,
        cs.peak_bytes / 1048576.0, cs.budget_bytes / 1048576.0);
    json arr = json::array();
    for (double x : ts) arr.push_back(std::round(x * 10) / 10);
    timings[name] = arr;
  }
  if (!timings.empty()) std::ofstream(out + "/timings.json") << timings.dump(1);
  if (!HasFlag(argc, argv, "--people")) return 0;

  // ---- the people layer alone (Northstar only): warm, one untimed run first.
  int32_t today = *ns::ParseDate(to, "--to");
  const json def_json{
      {"op", "and"},
      {"conditions",
       {{{"type", "performed"}, {"event", "pay"}, {"count", {{"op", "gte"}, {"value", 2}}}, {"last_days", 30}},
        {{"type", "performed"}, {"event", "add_to_cart"}, {"last_days", 7}},
        {{"type", "property"}, {"property", "platform"}, {"op", "in"}, {"value", {"ios", "android"}}}}}};
  auto def = ns::ParseCohortDefinition(def_json);
  if (!def.ok()) return std::fprintf(stderr, "cohort: %s\n", def.status().ToString().c_str()), 1;
  json pt = json::object(), pinfo = json::object();
  // --people-only: the people timings whose names contain one of its words (all without it).
  const std::string people_only = Arg(argc, argv, "--people-only", "");
  auto want = [&](const std::string& name) {
    if (people_only.empty()) return true;
    size_t b = 0;
    while (b <= people_only.size()) {
      size_t e = people_only.find(',', b);
      if (e == std::string::npos) e = people_only.size();
      if (e > b && name.find(people_only.substr(b, e - b)) != std::string::npos) return true;
      b = e + 1;
    }
    return false;
  };
  auto record = [&](const std::string& name, std::pair<std::vector<double>, std::string> r) {
    std::printf("northstar people %s: %s\n", name.c_str(), r.second.c_str());
    std::fflush(stdout);
    json arr = json::array();
    for (double x : r.first) arr.push_back(std::round(x * 10) / 10);
    pt[name] = arr;
  };
  // A fresh evaluation each run: EvaluateCohort on a fresh snapshot (no cache in between).
  uint64_t cohort_size = 0;
  if (want("cohort_3_conditions"))
    record("cohort_3_conditions", Time(runs, [&](int) {
             ns::QueryScope scope(store, tz, qopt);
             ns::CohortEvalContext ctx{scope.ctx().snap, tz, people, today, nullptr, nullptr, nullptr};
             auto r = ns::EvaluateCohort(*def, ctx);
             if (!r.ok()) std::fprintf(stderr, "cohort: %s\n", r.status().ToString().c_str()), std::exit(1);
             cohort_size = r->cardinality();
           }));
  pinfo["cohort_definition"] = def_json;
  pinfo["cohort_size"] = cohort_size;
  // rfm with the per-person facts computed in the run (as Q4) and with them cached (as the
  // server answers a second rfm of one store state: scoring and segments only).
  json rfm_answer;
  if (want("rfm_facts_computed")) record("rfm_facts_computed", Time(runs, [&](int) { rfm_answer = q4_fresh(); }));
  if (want("rfm_facts_cached")) record("rfm_facts_cached", Time(runs, [&](int) { run(q4); }));
  pinfo["rfm_persons_scored"] = rfm_answer["persons_scored"];
  const json lifecycle{
      {"kind", "lifecycle"}, {"mode", "stages"}, {"interval", "week"}, {"date_from", from}, {"date_to", to}};
  json lc_answer;
  if (want("lifecycle_stages_weekly"))
    record("lifecycle_stages_weekly", Time(runs, [&](int) { lc_answer = run(lifecycle); }));
  json lc_activity_answer;
  json lifecycle_activity = lifecycle;
  lifecycle_activity["mode"] = "activity";
  if (want("lifecycle_activity_weekly"))
    record("lifecycle_activity_weekly", Time(runs, [&](int) { lc_activity_answer = run(lifecycle_activity); }));
  // Opt-in (--people-only lifecycle_plain): both modes through the per-person driver, the
  // path before the day-bitmap pass, timed in the same process and checked equal.
  if (!people_only.empty() && want("lifecycle_plain")) {
    const json* modes[] = {&lifecycle, &lifecycle_activity};
    for (const json* lj : modes) {
      const std::string mode = (*lj)["mode"].get<std::string>();
      auto lq = ns::ParseLifecycleQuery(*lj);
      if (!lq.ok()) return std::fprintf(stderr, "lifecycle: %s\n", lq.status().ToString().c_str()), 1;
      json plain_answer;
      record("lifecycle_plain_" + mode + "_weekly", Time(runs, [&](int) {
               ns::QueryScope scope(store, tz, qopt);
               auto r = ns::RunLifecyclePlain(*lq, scope.ctx());
               if (!r.ok()) std::fprintf(stderr, "lifecycle: %s\n", r.status().ToString().c_str()), std::exit(1);
               plain_answer = ns::ToJson(*r);
             }));
      const bool same = plain_answer["series"] == run(*lj)["series"];
      std::printf("lifecycle %s: day-bitmap pass and per-person driver %s\n", mode.c_str(), same ? "agree" : "DIFFER");
      if (!same) return 1;
    }
  }
  pinfo["lifecycle_buckets"] = lc_answer["dates"].size();
  pinfo["lifecycle_stages"] = lc_answer["series"];  // to compare builds' answers
  pinfo["lifecycle_activity"] = lc_activity_answer["series"];
  // Q2 with the cohort as a filter: the member set is evaluated once (as the server caches
  // it per store state), so this is the funnel's cost with the filter applied.
  BenchCohorts cohorts(*def, people, today);
  ns::QueryOptions with_cohorts = qopt;
  with_cohorts.cohorts = &cohorts;
  json q2c = q2;
  q2c["filters"] = json::array({{{"cohort", 1}}});
  json f_plain, f_cohort;
  if (want("q2_funnel")) record("q2_funnel", Time(runs, [&](int) { f_plain = run(q2); }));
  if (want("q2_funnel_cohort_filter"))
    record("q2_funnel_cohort_filter",
           Time(runs, [&](int) { f_cohort = Must(ns::RunQuery(q2c, store, tz, with_cohorts)); }));
  pinfo["q2_step1"] = f_plain["steps"][0]["count"];
  pinfo["q2_cohort_step1"] = f_cohort["steps"][0]["count"];
  pinfo["q2_cohort_step5"] = f_cohort["steps"][4]["count"];
  std::printf("people: cohort %llu persons, rfm %s payers, q2 step 1 %s -> with cohort %s (step 5 %s)\n",
              static_cast<unsigned long long>(cohort_size), pinfo["rfm_persons_scored"].dump().c_str(),
              pinfo["q2_step1"].dump().c_str(), pinfo["q2_cohort_step1"].dump().c_str(),
              pinfo["q2_cohort_step5"].dump().c_str());
  std::ofstream(out + "/people.json") << json{{"timings", pt}, {"info", pinfo}}.dump(1);
  return 0;
}
