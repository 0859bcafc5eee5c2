// Feature flags of every project (docs/flags.md): their definitions in meta.db (this
// subsystem's migrations, "flags"), every change in the audit log, and their evaluation for a
// distinct id against the project's person table and cohorts. The HTTP routes
// (server/flag_routes.cc) serve the native API and PostHog's /flags and /decide on top.
//
// Stickiness: a person's flags are hashed on the person's first identified distinct id when
// it has one, else on the distinct id asked about, so an assignment survives later merges
// (docs/decisions.md).
// Threading: thread-safe (meta.db serialises; evaluation reads immutable snapshots).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "auth/principal.h"
#include "core/status.h"
#include "flags/flag_definition.h"
#include "flags/flag_eval.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "people/people_service.h"

namespace ns {

// This subsystem's metadata migrations (subsystem "flags").
const std::vector<Migration>& FlagMigrations();

struct FlagEvalRequest {
  std::string distinct_id;
  // Override the stored person properties (PostHog's `person_properties`).
  nlohmann::json person_properties = nlohmann::json::object();
  std::vector<std::string> keys;  // only these flags (empty: every flag)
  bool include_inactive = false;  // answer inactive flags as disabled (PostHog leaves them out)
};

struct EvaluatedFlag {
  int64_t id = 0;
  int64_t version = 0;
  std::string key;
  std::string description;
  FlagOutcome outcome;
};

struct FlagEvaluation {
  std::vector<EvaluatedFlag> flags;  // in key order
  bool errors = false;               // a flag could not be evaluated (it is left out)
  std::string hashed_id;             // what was hashed (never answered to clients: personal data)
};

class FlagsService {
 public:
  // `people` (may be null: cohort conditions then fail to evaluate) resolves cohorts; a cohort
  // a flag names cannot be deleted there. REQUIRES: before the server serves (AddReferrers).
  static StatusOr<std::unique_ptr<FlagsService>> Open(ProjectRegistry& registry, PeopleService* people);

  // ---- definitions. Answers are the JSON of the API.
  StatusOr<nlohmann::json> Create(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> List(const std::string& project);
  StatusOr<nlohmann::json> Update(const Principal& who, int64_t id, const nlohmann::json& patch);
  // Refused (FailedPrecondition, a 409 naming them) while a referrer (AddReferrers) names
  // something that uses the flag's key: an experiment reads its exposures.
  Status Delete(const Principal& who, int64_t id);
  // What uses a flag key in a project ("experiment 'Checkout'"), empty when nothing does.
  using FlagReferrers =
      std::function<StatusOr<std::vector<std::string>>(const std::string& project, const std::string& key)>;
  // REQUIRES: before the server serves.
  void AddReferrers(FlagReferrers referrers) { referrers_.push_back(std::move(referrers)); }

  // ---- evaluation
  StatusOr<FlagEvaluation> Evaluate(const std::string& project, const FlagEvalRequest& req);
  // One `$feature_flag_called` event per evaluated flag for `distinct_id`, as PostHog's SDKs
  // send them; deduplicated per (hashed id, flag, answer, local day) by a derived event uuid.
  // Answers how many were new.
  StatusOr<size_t> RecordExposures(const std::string& project, const std::string& distinct_id,
                                   const FlagEvaluation& evaluation);

 private:
  FlagsService(ProjectRegistry& registry, PeopleService* people)
      : registry_(registry), db_(registry.meta_db()), people_(people) {}
  struct FlagRow {
    int64_t id = 0, version = 0, created_at = 0, updated_at = 0;
    std::string created_by;
    FlagDefinition def;
  };
  // One row of kFlagColumns; Corruption naming the row when its definition does not read back.
  static StatusOr<FlagRow> RowOf(const SqlRow& r);
  StatusOr<FlagRow> Load(const std::string& project, int64_t id);
  StatusOr<std::vector<FlagRow>> LoadAll(const std::string& project);
  static nlohmann::json RowJson(const FlagRow& row);
  Status CheckUniqueKey(const std::string& project, const std::string& key, int64_t except_id);

  ProjectRegistry& registry_;
  MetaDb& db_;
  PeopleService* people_;
  std::vector<FlagReferrers> referrers_;  // set before serving, then read only
};

}  // namespace ns
