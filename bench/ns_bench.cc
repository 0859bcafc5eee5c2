// Times Northstar on the peer workload (DESIGN §8) over a project holding the peers'
// dataset, and writes results in the peers' format (results/<TAG>/northstar/) so that
// ../shared/bench-peers/compare.py cross-checks the answers and prints one table.
// usage: ns_bench --data DIR --project P --out DIR [--runs 5] [--from 2024-01-01 --to 2024-03-30]
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "meta/project_registry.h"
#include "query/operators.h"

using nlohmann::json;

namespace {

std::string Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; i++)
    if (std::string(argv[i]) == name) return argv[i + 1];
  return def;
}

json Must(ns::StatusOr<json> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "query failed: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = Arg(argc, argv, "--data", "./data"), project = Arg(argc, argv, "--project", "bench");
  std::string out = Arg(argc, argv, "--out", "results/S/northstar");
  int runs = std::stoi(Arg(argc, argv, "--runs", "5"));
  std::string from = Arg(argc, argv, "--from", "2024-01-01"), to = Arg(argc, argv, "--to", "2024-03-30");
  ns::StoreOptions so;
  so.background = false;
  auto reg = ns::ProjectRegistry::Open(data, so);
  if (!reg.ok()) return std::fprintf(stderr, "%s\n", reg.status().ToString().c_str()), 1;
  auto p = (*reg)->OpenProject(project);
  if (!p.ok()) return std::fprintf(stderr, "%s\n", p.status().ToString().c_str()), 1;
  ns::EventStore& store = *(*p)->store;
  const ns::TimeZone& tz = (*p)->tz;
  auto run = [&](const json& q) { return Must(ns::RunQuery(q, store, tz)); };

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
  const json q5_new{
      {"kind", "trends"},
      {"series",
       {{{"event", "register"}, {"math", "total"}}, {{"event", "pay"}, {"math", "sum"}, {"property", "amount"}}}},
      {"date_from", from},
      {"date_to", to},
      {"interval", "month"},
      {"breakdown", "channel"}};
  const json q5_conv{{"kind", "funnel"},
                     {"steps", {{{"event", "register"}}, {{"event", "pay"}}}},
                     {"window_seconds", 604800},
                     {"date_from", from},
                     {"date_to", to},
                     {"breakdown", "channel"}};
  json q5_payers = q5_conv;
  q5_payers["window_seconds"] = 366 * 86400;

  std::map<std::string, std::function<std::string()>> queries;
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
    json a = run(q5_new), b = run(q5_conv), c = run(q5_payers);
    std::map<std::string, std::array<double, 4>> rows;
    auto total = [](const json& s) {
      double t = 0;
      for (auto& v : s["values"]) t += v.is_null() ? 0 : v.get<double>();
      return t;
    };
    for (auto& s : a["series"]) {
      std::string ch = s["breakdown_value"].is_null() ? "" : s["breakdown_value"].get<std::string>();
      int col = s["event"] == "register" ? 0 : 2;
      rows[ch][static_cast<size_t>(col)] = total(s);
    }
    for (auto& bd : b["breakdowns"])
      rows[bd["breakdown_value"].get<std::string>()][3] = bd["steps"][1]["count"].get<double>();
    for (auto& bd : c["breakdowns"])
      rows[bd["breakdown_value"].get<std::string>()][1] = bd["steps"][1]["count"].get<double>();
    std::string csv = "channel,new_users,paying_users,revenue_cents,conv7_users\n";
    for (auto& [ch, v] : rows)
      csv += ch + "," + std::to_string(static_cast<uint64_t>(v[0])) + "," +
             std::to_string(static_cast<uint64_t>(v[1])) + "," +
             std::to_string(static_cast<uint64_t>(std::llround(v[2] * 100))) + "," +
             std::to_string(static_cast<uint64_t>(v[3])) + "\n";
    return csv;
  };
  // Q5 as an operator would ask it in Northstar: new users and revenue from trends (additive
  // over buckets), payers and 7-day converters from register -> pay funnels by channel.
  json timings = json::object();
  std::string cmd = "mkdir -p '" + out + "'";
  if (std::system(cmd.c_str()) != 0) return 1;
  std::string only = Arg(argc, argv, "--only", "");
  for (auto& [name, fn] : queries) {
    if (!only.empty() && only.find(name) == std::string::npos) continue;
    std::string res = fn();  // warm-up; result kept
    std::ofstream(out + "/" + name + ".csv") << res;
    std::vector<double> ts;
    for (int i = 0; i < runs; i++) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::vector<double> s = ts;
    std::sort(s.begin(), s.end());
    std::printf("northstar %s: min %.1f ms, median %.1f ms\n", name.c_str(), s.front(), s[s.size() / 2]);
    json arr = json::array();
    for (double x : ts) arr.push_back(std::round(x * 10) / 10);
    timings[name] = arr;
  }
  std::ofstream(out + "/timings.json") << timings.dump(1);
  return 0;
}
