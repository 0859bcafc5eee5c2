// Experiments (docs/experiments.md): A/B tests on a feature flag's exposures, kept in meta.db
// (this subsystem's migrations, "experiments"), optionally linked to an operations scenario
// as a KPI is, and their results computed from events (experiment_metrics.h) and analysed by
// the statistics engine (stats/experiment_analysis.h). Every change is written to the audit
// log in its transaction. Answers are the JSON of the API.
// Threading: thread-safe (meta.db serialises; results read their own snapshot).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/principal.h"
#include "core/deadline.h"
#include "core/status.h"
#include "experiments/experiment_doc.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"

namespace ns {

// This subsystem's metadata migrations (subsystem "experiments").
const std::vector<Migration>& ExperimentMigrations();

class ExperimentsService {
 public:
  static StatusOr<std::unique_ptr<ExperimentsService>> Open(ProjectRegistry& registry);

  StatusOr<nlohmann::json> Create(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t id);
  // scenario_id: only the experiments linked to it.
  StatusOr<nlohmann::json> List(const std::string& project, std::optional<int64_t> scenario_id);
  // A partial document: the fields given replace the stored ones (null clears an optional one).
  StatusOr<nlohmann::json> Update(const Principal& who, int64_t id, const nlohmann::json& patch);
  Status Delete(const Principal& who, int64_t id);
  // Per metric and variant the statistics and per treatment the effect; SRM, exposures per day
  // and power (docs/experiments.md, "Results"). `today` overrides the project's current local
  // day (tests). deadline may be null.
  StatusOr<nlohmann::json> Results(const std::string& project, int64_t id, const Deadline* deadline,
                                   std::optional<int32_t> today = std::nullopt);

 private:
  explicit ExperimentsService(ProjectRegistry& registry) : registry_(registry), db_(registry.meta_db()) {}
  struct Row {
    int64_t id = 0;
    ExperimentDoc doc;
    std::string created_by;
    int64_t created_at = 0, updated_at = 0;
  };
  StatusOr<Row> Load(const std::string& project, int64_t id);
  Status CheckScenario(const std::string& project, const ExperimentDoc& doc);
  static nlohmann::json RowJson(const Row& row);

  ProjectRegistry& registry_;
  MetaDb& db_;
};

}  // namespace ns
