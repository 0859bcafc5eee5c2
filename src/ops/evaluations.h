// Evaluation (template 4, "effect evaluation") and the SOP library. At a scenario's
// period end Northstar drafts the evaluation from the data: target vs result per KPI,
// actions done/late, the biggest movers (root-cause hints of its alerts); the owner adds
// what worked, the problems and the next measures. A finished evaluation can be saved as
// an SOP: a reusable scenario template with its actions; new scenarios start from SOPs.
#pragma once

#include <nlohmann/json.hpp>

#include "auth/accounts.h"
#include "core/status.h"
#include "meta/meta_db.h"
#include "ops/kpis.h"
#include "ops/scenarios.h"

namespace ns {

class Evaluations {
 public:
  Evaluations(MetaDb& db, Scenarios& scenarios, Kpis& kpis) : db_(db), scenarios_(scenarios), kpis_(kpis) {}
  // The stored evaluation merged with fresh numbers (a draft if none is stored), and the
  // scenario's key user group as it is now ("key_user_group", "key_user_group_cohort").
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t scenario_id);
  // Saves the owner's fields: what_worked, problems, next_measures, owner, status (draft|final).
  Status Save(const Principal& who, int64_t scenario_id, const nlohmann::json& body);
  // Drafts evaluations of scenarios whose period ended before `today` and have none.
  StatusOr<int> DraftEnded(const std::string& project, int32_t today);
  // SOPs.
  StatusOr<int64_t> SaveAsSop(const Principal& who, int64_t scenario_id, const nlohmann::json& body);
  StatusOr<nlohmann::json> ListSops(const std::string& project);
  StatusOr<nlohmann::json> GetSop(const std::string& project, int64_t id);
  // A new scenario (and its actions) from an SOP; body may override name, owner, period.
  StatusOr<int64_t> StartFromSop(const Principal& who, int64_t sop_id, const nlohmann::json& body);

 private:
  StatusOr<nlohmann::json> Draft(const std::string& project, int64_t scenario_id);
  // Get without the key user group: what Save stores.
  StatusOr<nlohmann::json> Merged(const std::string& project, int64_t scenario_id);
  StatusOr<SopDoc> LoadSop(const std::string& project, int64_t id);
  MetaDb& db_;
  Scenarios& scenarios_;
  Kpis& kpis_;
};

}  // namespace ns
