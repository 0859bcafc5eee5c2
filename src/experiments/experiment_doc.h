// The experiment document (docs/experiments.md, "The experiment"): what POST/PATCH
// /api/v1/experiments take, validated once here with errors naming the field, and what
// meta.db keeps (experiments.doc, the normalised JSON of ToJson).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "experiments/experiment_metrics.h"
#include "stats/experiment_analysis.h"

namespace ns {

struct ExperimentVariant {
  std::string key;
  double weight = 1;  // planned share of traffic (any positive scale), for the SRM check
};

struct ExperimentMetric {
  std::string name;
  ExperimentMetricSpec spec;
};

struct ExperimentDoc {
  std::string name;
  std::string hypothesis;
  std::string owner;
  std::string description;
  std::string flag_key;
  std::vector<ExperimentVariant> variants;  // control first
  std::optional<int32_t> start_day, end_day;
  std::string status = "draft";  // draft | running | stopped
  std::vector<ExperimentMetric> primary_metrics, secondary_metrics, guardrail_metrics;
  double minimum_detectable_effect = 0.05;  // relative (0.05 = 5%), for the power estimate
  double power = 0.8;                       // for the power estimate
  stats::AnalysisOptions analysis;          // traffic_weights filled from the variants when run
  int cuped_days = 0;                       // 0 = no CUPED
  std::optional<int64_t> scenario_id;

  // Validates a whole document (defaults for what is missing); InvalidArgument naming the
  // field otherwise ("variants[1].key", "primary_metrics[0].steps").
  static StatusOr<ExperimentDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// The metric's JSON as in the document ({"name","type",...}).
nlohmann::json MetricJson(const ExperimentMetric& m);

}  // namespace ns
