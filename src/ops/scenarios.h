// Scenarios (template 1, "scenario requirements") and their actions (template 2,
// "process design"): validation, the action dependency DAG (cycles refused), automatic
// `delayed` status for overdue actions, Gantt data with the critical path, CSV import.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "auth/accounts.h"
#include "core/status.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "ops/cohort_directory.h"
#include "ops/documents.h"

namespace ns {

// A scenario or an action as stored: the document and the columns its answers add.
struct ScenarioRow {
  int64_t id = 0;
  ScenarioDoc doc;
  int64_t created_at = 0, updated_at = 0;
  nlohmann::json ToJson() const;  // the document with "id", "created_at", "updated_at"
};
struct ActionRow {
  int64_t id = 0, scenario_id = 0;
  ActionDoc doc;
  int64_t created_at = 0, updated_at = 0;
  nlohmann::json ToJson() const;  // the document with "id", "scenario_id", "created_at", "updated_at"
};

class Scenarios {
 public:
  Scenarios(MetaDb& db, ProjectRegistry& registry) : db_(db), registry_(registry) {}
  // The cohorts a key user group may name (not owned; set once before the server serves).
  // Without it a scenario naming a cohort is refused (FailedPrecondition).
  void SetCohorts(CohortDirectory* cohorts) { cohorts_ = cohorts; }

  StatusOr<int64_t> Create(const Principal& who, const nlohmann::json& body);
  // The scenario with its actions ("actions": [...]) and, when its key user group names a
  // cohort, "key_user_group_cohort" (KeyUserGroupCohort). NotFound if not in the project.
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> List(const std::string& project);
  Status Patch(const Principal& who, int64_t id, const nlohmann::json& body);
  Status Delete(const Principal& who, int64_t id);

  StatusOr<int64_t> AddAction(const Principal& who, int64_t scenario_id, const nlohmann::json& body);
  Status PatchAction(const Principal& who, int64_t action_id, const nlohmann::json& body);
  Status DeleteAction(const Principal& who, int64_t action_id);
  StatusOr<nlohmann::json> GetAction(const std::string& project, int64_t action_id);
  // Gantt rows: start, due, dependencies, earliest/latest start, slack, critical flag.
  StatusOr<nlohmann::json> Gantt(const std::string& project, int64_t scenario_id);
  // Imports actions from CSV (header row; columns by English or Chinese template names).
  // All rows or none: returns the ids, or the first error naming the line.
  StatusOr<std::vector<int64_t>> ImportActionsCsv(const Principal& who, int64_t scenario_id, std::string_view csv);

  // Marks actions past their due date (before `today`) and not done/cancelled as delayed;
  // each change goes to the audit log with actor "scheduler". Returns how many changed.
  StatusOr<int> MarkDelayed(const std::string& project, int32_t today);

  // The cohort a key user group names, as answers show it: {"id","name","size","as_of"} now,
  // or {"id","name":null,"deleted":true} when the project has no such cohort any more (a
  // row written before cohorts were checked); null when it names none.
  nlohmann::json KeyUserGroupCohort(const std::string& project, const nlohmann::json& key_user_group);
  // The scenarios whose key user group is cohort `cohort_id`, as "scenario 4 'Name'" (the
  // people layer refuses to delete such a cohort).
  StatusOr<std::vector<std::string>> UsingCohort(const std::string& project, int64_t cohort_id);

  // The scenario's project ("" if there is none).
  std::string ProjectOf(int64_t scenario_id);

  // The stored scenario (NotFound if not in the project); its actions in id order and one
  // action, overdue ones already `delayed` (as every read shows them).
  StatusOr<ScenarioRow> Load(const std::string& project, int64_t id);
  StatusOr<std::vector<ActionRow>> Actions(int64_t scenario_id);
  StatusOr<ActionRow> LoadAction(const std::string& project, int64_t action_id);

 private:
  // A key user group naming a cohort names one of the project's (InvalidArgument naming
  // key_user_group.cohort_id otherwise).
  Status CheckCohort(const std::string& project, const nlohmann::json& key_user_group);
  // A goal naming a KPI (goal.kpi_id) names one of the project's (InvalidArgument naming
  // goal.kpi_id otherwise).
  Status CheckGoalKpi(const std::string& project, const nlohmann::json& goal);
  Status CheckDag(int64_t scenario_id, int64_t action_id, const std::vector<int64_t>& depends_on);
  // Today in the project's time zone (dated progress notes, Gantt defaults).
  StatusOr<int32_t> Today(const std::string& project);
  MetaDb& db_;
  ProjectRegistry& registry_;
  CohortDirectory* cohorts_ = nullptr;
};

// Validation of the documents (exposed for tests). `partial`: a PATCH (only present fields).
StatusOr<nlohmann::json> ValidateScenario(const nlohmann::json& body, const nlohmann::json* base);
// `today`: the project-local day given to a progress note sent without a date.
StatusOr<nlohmann::json> ValidateAction(const nlohmann::json& body, const nlohmann::json* base, int32_t today);

}  // namespace ns
