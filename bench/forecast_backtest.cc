// Back-test of the period-end forecaster (ops/forecast.h) on real public datasets and on the
// generated demo data. Prints a Markdown table (docs/forecasting.md holds a copy).
//
//   forecast_backtest [--datasets DIR] [--csv-out DIR]
//
// DIR defaults to ../shared/datasets relative to the repository (see its README.md):
//   online_retail_invoices/online_retail_invoices.csv  InvoiceNo,InvoiceDate,CustomerID,TotalPrice
//   cdnow/CDNOW_master.txt                              customer_id date(YYYYMMDD) cds dollars
// Daily series derived: invoices/orders, revenue, new customers (first purchase day); a
// day without rows is a real 0 (the shop was closed or sold nothing). The demo series come
// from GenerateDemo (cli/demo_data.h): pay count, GMV, registrations, DAU (distinct ids)
// and the pay rate (payers / DAU, weighted by DAU).
//
// Each series is back-tested with 30-day and 7-day periods at cut points 0 (period not
// started, history only), 1/3 and 2/3 of the period.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cli/demo_data.h"
#include "core/time_zone.h"
#include "ops/forecast.h"

namespace {

using ns::DailySeries;
using ns::PeriodAggregate;

struct Named {
  std::string dataset, name;
  PeriodAggregate agg;
  DailySeries series;
};

// Dense daily series from a day -> value map over [min day, max day], absent days = 0.
DailySeries Dense(const std::map<int32_t, double>& m, int32_t first, int32_t last) {
  DailySeries s;
  s.first_day = first;
  for (int32_t d = first; d <= last; ++d) {
    auto it = m.find(d);
    s.values.push_back(it == m.end() ? 0.0 : it->second);
  }
  return s;
}

void AddCustomerSeries(const std::string& dataset, const std::string& orders_name,
                       const std::vector<std::tuple<int32_t, std::string, double>>& rows, std::vector<Named>* out) {
  if (rows.empty()) return;
  std::map<int32_t, double> orders, revenue, new_customers;
  std::unordered_map<std::string, int32_t> first_seen;
  int32_t lo = INT32_MAX, hi = INT32_MIN;
  for (const auto& [day, customer, amount] : rows) {
    orders[day] += 1;
    revenue[day] += amount;
    lo = std::min(lo, day);
    hi = std::max(hi, day);
    if (customer.empty()) continue;
    auto [it, inserted] = first_seen.emplace(customer, day);
    if (!inserted && day < it->second) it->second = day;
  }
  for (const auto& [c, d] : first_seen) new_customers[d] += 1;
  out->push_back({dataset, orders_name, PeriodAggregate::kSum, Dense(orders, lo, hi)});
  out->push_back({dataset, "revenue", PeriodAggregate::kSum, Dense(revenue, lo, hi)});
  out->push_back({dataset, "new customers", PeriodAggregate::kSum, Dense(new_customers, lo, hi)});
}

bool LoadOnlineRetail(const std::string& path, std::vector<Named>* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::string line;
  std::getline(f, line);  // header
  std::vector<std::tuple<int32_t, std::string, double>> rows;
  while (std::getline(f, line)) {
    std::stringstream ss(line);
    std::string inv, date, cust, price;
    std::getline(ss, inv, ',');
    std::getline(ss, date, ',');
    std::getline(ss, cust, ',');
    std::getline(ss, price, ',');
    auto day = ns::ParseDate(date, "InvoiceDate");
    if (!day.ok()) continue;
    rows.emplace_back(*day, cust, std::stod(price));
  }
  AddCustomerSeries("UCI Online Retail", "invoices", rows, out);
  return true;
}

bool LoadCdnow(const std::string& path, std::vector<Named>* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::string cust, date, header;
  std::getline(f, header);  // " customer_id  date number_of_cds  dollar_value"
  double cds, dollars;
  std::vector<std::tuple<int32_t, std::string, double>> rows;
  while (f >> cust >> date >> cds >> dollars) {
    if (date.size() != 8) continue;
    auto day = ns::ParseDate(date.substr(0, 4) + "-" + date.substr(4, 2) + "-" + date.substr(6, 2), "date");
    if (!day.ok()) continue;
    rows.emplace_back(*day, cust, dollars);
  }
  AddCustomerSeries("CDNOW", "orders", rows, out);
  return true;
}

bool LoadDemo(std::vector<Named>* out) {
  auto tz = ns::TimeZone::Load("Asia/Shanghai");
  if (!tz.ok()) return false;
  ns::DemoOptions opt;
  opt.last_day = ns::ParseDate("2026-11-22", "demo").value();
  std::map<int32_t, double> pays, gmv, registers;
  std::map<int32_t, std::unordered_set<std::string>> dau, payers;
  auto st = ns::GenerateDemo(opt, *tz, [&](std::vector<ns::Event>& batch) -> ns::Status {
    for (const auto& e : batch) {
      int32_t d = tz->LocalDay(e.ts_ms);
      dau[d].insert(e.distinct_id);
      if (e.event == "pay") {
        pays[d] += 1;
        payers[d].insert(e.distinct_id);
        if (const auto* a = e.Find("amount"); a && a->kind == ns::PropValue::kNum) gmv[d] += a->num;
      } else if (e.event == "register") {
        registers[d] += 1;
      }
    }
    batch.clear();
    return ns::Status::OK();
  });
  if (!st.ok()) return false;
  int32_t lo = opt.last_day - opt.days + 1, hi = opt.last_day;
  std::map<int32_t, double> dau_n;
  DailySeries rate;
  rate.first_day = lo;
  for (int32_t d = lo; d <= hi; ++d) {
    double n = dau.count(d) ? dau[d].size() : 0;
    dau_n[d] = n;
    rate.values.push_back(n > 0 ? (payers.count(d) ? payers[d].size() : 0) / n : NAN);
    rate.weights.push_back(n);
  }
  out->push_back({"demo (20k users, 90 days)", "pay events", PeriodAggregate::kSum, Dense(pays, lo, hi)});
  out->push_back({"demo (20k users, 90 days)", "GMV", PeriodAggregate::kSum, Dense(gmv, lo, hi)});
  out->push_back({"demo (20k users, 90 days)", "registrations", PeriodAggregate::kSum, Dense(registers, lo, hi)});
  out->push_back({"demo (20k users, 90 days)", "DAU (distinct ids)", PeriodAggregate::kMean, Dense(dau_n, lo, hi)});
  out->push_back({"demo (20k users, 90 days)", "pay rate (payers / DAU)", PeriodAggregate::kMean, rate});
  return true;
}

void WriteCsv(const std::string& dir, const Named& n) {
  std::string file = dir + "/" + n.dataset + " - " + n.name + ".csv";
  for (char& c : file)
    if (c == ' ' || c == '(' || c == ')' || c == ',' || c == '/') c = c == '/' ? '/' : '_';
  std::ofstream f(file);
  f << "day,value,weight\n";
  for (size_t i = 0; i < n.series.values.size(); ++i)
    f << ns::FormatDate(n.series.first_day + static_cast<int32_t>(i)) << ',' << n.series.values[i] << ','
      << (n.series.weights.empty() ? 1.0 : n.series.weights[i]) << '\n';
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "../shared/datasets", csv_out;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--datasets")
      dir = argv[i + 1];
    else if (a == "--csv-out")
      csv_out = argv[i + 1];
  }
  std::vector<Named> all;
  if (!LoadOnlineRetail(dir + "/online_retail_invoices/online_retail_invoices.csv", &all))
    std::cerr << "online retail not found under " << dir << "\n";
  if (!LoadCdnow(dir + "/cdnow/CDNOW_master.txt", &all)) std::cerr << "CDNOW not found under " << dir << "\n";
  if (!LoadDemo(&all)) std::cerr << "demo generation failed\n";

  std::printf("| dataset | series | days | period | cut | forecasts | MAPE | 80%% coverage | bias | width |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  struct Cut {
    const char* label;
    double frac;
  };
  for (const auto& n : all) {
    if (!csv_out.empty()) WriteCsv(csv_out, n);
    for (int period : {30, 7}) {
      for (Cut c : {Cut{"start", 0.0}, Cut{"1/3", 1.0 / 3}, Cut{"2/3", 2.0 / 3}}) {
        ns::BacktestResult r = ns::Backtest(n.series, period, n.agg, 0.8, {c.frac});
        if (r.forecasts == 0) continue;
        std::printf("| %s | %s | %zu | %d | %s | %d | %.1f%% | %.0f%% | %+.1f%% | %.1f%% |\n", n.dataset.c_str(),
                    n.name.c_str(), n.series.values.size(), period, c.label, r.forecasts, r.mape * 100,
                    r.coverage * 100, r.bias * 100, r.mean_width * 100);
      }
    }
  }
  return 0;
}
