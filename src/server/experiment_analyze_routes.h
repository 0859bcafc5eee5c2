// The experiment calculator's routes (experiment_analyze_routes.cc; docs/api.md "Experiment
// statistics", formulas in docs/statistics.md): numbers in, statistics out, nothing stored.
// - POST /api/v1/experiments/analyze: per-variant sufficient statistics -> effects, intervals,
//   p-values or chances to win, SRM (stats::AnalyzeExperiment).
// - POST /api/v1/experiments/power: a metric's mean and variance, an effect and traffic ->
//   persons per variant and days (stats::EstimatePower).
// Both need a reading principal (a secret key, an API key or a session with any role); a
// write key is refused.
//
// The JSON translation is public so an experiment's results from events answer in the same
// shape (request fields and response fields are a contract: add, never rename).
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "core/status.h"
#include "server/http_types.h"
#include "server/server_context.h"
#include "stats/experiment_analysis.h"

namespace ns {

// An analyze request's body, validated (errors name the field: "variants[1].sum_squares").
struct AnalyzeRequest {
  stats::MetricKind kind = stats::MetricKind::kMean;
  std::vector<stats::VariantStatistics> variants;
  stats::AnalysisOptions options;
};
StatusOr<AnalyzeRequest> ParseAnalyzeRequest(const nlohmann::json& body);

// The answer: {"metric", "difference", "method", "alternative", "alpha", "correction",
// "variants": [{"name", "n", "mean", "variance"}], "effects": [{"name", "ok", "error",
// "expected", "ci": [low, high], "standard_error", "p_value", "chance_to_win", "risk":
// [control, treatment], ...}], "srm_p_value", "srm_flagged"}; an infinite interval end or a
// number that does not apply (a p-value under the Bayesian method) is null.
nlohmann::json AnalysisToJson(const AnalyzeRequest& request, const stats::ExperimentAnalysis& analysis);

std::vector<Route> ExperimentAnalyzeRoutes(ServerContext& ctx);

}  // namespace ns
