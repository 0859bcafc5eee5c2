// The models layer's service (docs/models.md): per project, the churn-risk model (trained on
// demand in the background or by the daily job), its evaluation and scores, and the person
// properties the models compute: $churn_risk, $churn_risk_decile (churn model), $clv and
// $p_alive (the CLV models of query/clv.cc). They are laid over each store's person
// properties (EventStore::SetComputedPersonColumns), so filters, cohorts, breakdowns and
// the built-in rule tag "high_churn_risk" read them like $set properties; and the referral
// attributes of each person ($invitees, $clean_invitees, $referred_by, $referral_generation).
//
// Persistence: the last run of each project (its summary, the trees, the scores) is written
// to DATA/models/PROJECT/ (churn-model.json, churn-scores.bin: derived data, recomputed by
// the next daily job if lost) and read back when the service opens.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/mutex.h"
#include "core/status.h"
#include "meta/project_registry.h"
#include "models/churn_model.h"
#include "people/people_service.h"

namespace ns {

class ModelsService {
 public:
  // Reads every project's saved run and lays its person properties over the store; starts
  // computing the referral attributes in the background (ChurnStatus says when they are in).
  static StatusOr<std::unique_ptr<ModelsService>> Open(ProjectRegistry& registry, PeopleService& people);
  ~ModelsService();  // waits for a training in progress

  // GET /api/v1/models/churn: status ("untrained", "training", "ready", "failed"), the last
  // run's summary (trained_at, T, sizes, AUC, precision@10%, feature importances, the
  // distribution of risk), the job in progress or the last error; and "referral_attributes"
  // ("computing" while the start-up computation has not reached the project, "ready", "none").
  StatusOr<nlohmann::json> ChurnStatus(const std::string& project);
  // POST /api/v1/models/churn/train: starts a training in the background and answers its
  // job ({"job_id", "status":"training"}); while one runs, answers that one.
  StatusOr<nlohmann::json> StartChurnTraining(const std::string& project, const std::string& actor);
  // The daily job: trains, scores, stores and installs the properties, on the calling thread.
  Status RefreshChurn(const std::string& project);
  // The referral attributes ($invitees, $clean_invitees, $referred_by, $referral_generation;
  // models/referral_attributes.h) from the invite graph as of now, installed at once. Run
  // in the background when the service opens (Open returns before) and with every churn
  // run (the daily job, Train now).
  Status RefreshReferral(const std::string& project);
  // The person API's "churn": {risk, decile, as_of, top_features:[{feature, contribution}]},
  // null when the person was not scored.
  nlohmann::json PersonChurn(const std::string& project, uint32_t person);
  // The riskiest scored persons first (the console's table): distinct id, risk, decile, top
  // features, CLV and P(alive).
  StatusOr<nlohmann::json> AtRiskPersons(const std::string& project, size_t limit);

 private:
  struct Scored;  // a run's per-person answers
  struct ProjectState {
    std::string status = "untrained";
    nlohmann::json summary;  // the last successful run (null: none)
    std::string error;       // the last failed run's message
    int64_t job_id = 0, job_started_ms = 0, failed_at_ms = 0;
    std::string job_actor;
    std::shared_ptr<const Scored> scored;
    std::shared_ptr<const PersonColumns> referral;  // the referral attributes (null: none yet)
    bool referral_pending = false;                  // the start-up computation has not done it yet
  };
  ModelsService(ProjectRegistry& registry, PeopleService& people) : registry_(registry), people_(people) {}
  Status Run(const std::string& project);  // one training; records the outcome in states_
  void Load(const std::string& project);
  Status Save(const std::string& project, const nlohmann::json& summary, const std::string& trees,
              const Scored& scored);
  // Lays the project's current computed columns (referral attributes and the churn run's)
  // over its store, as one set.
  void Install(Project& p, const std::string& project);
  static PersonColumns ScoredColumns(const Scored& scored);
  std::string Dir(const std::string& project) const;

  ProjectRegistry& registry_;
  PeopleService& people_;
  Mutex mu_;
  std::map<std::string, ProjectState> states_ GUARDED_BY(mu_);
  int64_t next_job_ GUARDED_BY(mu_) = 1;
  std::vector<std::thread> workers_ GUARDED_BY(mu_);
  std::atomic<bool> stopping_{false};  // the destructor runs: background work stops early
  Mutex run_mu_;                       // one training at a time in the process: a background job shares the cores
  Mutex install_mu_;                   // one Install at a time: the columns read are the columns set
};

}  // namespace ns
