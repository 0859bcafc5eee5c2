// How a query kind becomes a KPI: one KpiReducer per kind, listed in kpi_reducers.cc. A
// reducer runs its kind's typed operator (query/operators.h) and reads the typed result. The
// KPI layer (kpis.cc) finds the reducer by the query's kind, so it keeps no chain of kind
// names; a kind without a reducer cannot be a KPI (a 400 that says so), never a silent
// fallback to another kind.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>

#include "core/status.h"
#include "ops/forecast.h"
#include "query/query_kind.h"

namespace ns {

// A KPI value with its parts: ratio KPIs (funnel, retention, avg) keep numerator and
// denominator so that changes can be attributed to breakdown values.
struct KpiParts {
  double num = 0;
  double den = 0;
  bool ratio = false;
  double Value() const { return ratio ? (den > 0 ? num / den : 0.0) : num; }
};

struct PeriodRange {
  int32_t from = 0, to = 0;  // inclusive local days
};

struct KpiReducer {
  std::string_view kind;
  // Checks the KPI's `reduce` against its query (already valid as a query), filling defaults
  // into `reduce`. Errors name the field ("reduce.series").
  Status (*validate)(const nlohmann::json& query, nlohmann::json& reduce);
  // Rewrites the query for one evaluation (dates and the breakdown are set by the caller).
  void (*shape)(nlohmann::json& query, const nlohmann::json& reduce);
  // Runs the shaped query (dates and breakdown set by the caller) on `ctx` and reduces its
  // typed result to parts per breakdown key ("" when not broken down).
  StatusOr<std::map<std::string, KpiParts>> (*reduce)(const nlohmann::json& query, const nlohmann::json& reduce,
                                                      PeriodRange range, bool broken_down, const QueryContext& ctx);
  // Daily values of the range from one run of the query (funnels: conversion over time by
  // entry day); nullptr: the KPI layer evaluates each day as its own range.
  Status (*daily)(const nlohmann::json& query, const nlohmann::json& reduce, PeriodRange range, const QueryContext& ctx,
                  DailySeries* out);
  // A line for alerts' root-cause hints that says where the value stands beyond the
  // breakdown contributions (channels: the channels past their stop-loss line); "" when
  // nothing to say. nullptr: the kind has none.
  StatusOr<std::string> (*explain)(const nlohmann::json& query, const nlohmann::json& reduce, PeriodRange range,
                                   const QueryContext& ctx) = nullptr;
};

// The reducer of a query kind, nullptr if that kind cannot be a KPI.
const KpiReducer* FindKpiReducer(std::string_view kind);
// "trends, funnel or retention"
std::string KpiKindList();

}  // namespace ns
