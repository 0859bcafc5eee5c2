// Journeys (docs/automation.md): triggered touches with a holdout. The service owns the
// journeys of every project in meta.db (subsystem "automation"), their CRUD, results and dead
// letters, and the engine: one thread that enters persons (from the event store's append hook,
// cohort diffs and schedules), advances them through waits and conditions, and delivers
// their actions through the notification sender of ops/ (ops/notify.h, Deliver) with an
// idempotency key per (journey, person, step).
//
// Durability: every state change is a meta.db transaction (entries, step log and the sends
// they create commit together), so a kill -9 loses nothing the engine had committed; what
// the hook had queued but not committed is found again by the catch-up scan at start.
// Threading: public methods are thread-safe; the engine's work runs on its own thread (or on
// the caller's through RunOnce, in tests).
#pragma once

#include <nlohmann/json.hpp>
#include <roaring/roaring.hh>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "auth/principal.h"
#include "automation/journey_doc.h"
#include "core/status.h"
#include "meta/project_registry.h"
#include "ops/ops_service.h"
#include "people/people_service.h"

namespace ns {

// The automation subsystem's migrations (subsystem "automation").
const std::vector<Migration>& AutomationMigrations();

struct JourneyEngineOptions {
  int64_t tick_ms = 500;     // the engine wakes at least this often (and on trigger events)
  size_t step_batch = 5000;  // entries advanced per transaction
  size_t send_batch = 200;   // sends claimed per round
  int send_threads = 4;      // concurrent deliveries (the HTTP calls block)
  int64_t send_timeout_ms = 5000;
  // The engine's clock (UTC ms). Waits end at (trigger event time + wait) measured on it, so
  // back-dated events, or a clock set ahead in unit tests, end waits early (docs/automation.md).
  std::function<int64_t()> now;
};

class JourneyService {
 public:
  static StatusOr<std::unique_ptr<JourneyService>> Open(ProjectRegistry& registry, OpsService& ops,
                                                        PeopleService& people, JourneyEngineOptions options = {});
  ~JourneyService();

  // ---- the API (answers are the JSON of docs/api.md, "Journeys")
  StatusOr<nlohmann::json> Create(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> List(const std::string& project);
  // reveal_urls: the caller may edit (operator, admin); viewers see webhook URLs masked.
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t id, bool reveal_urls = true);
  // The journeys of a project that name cohort `cohort` ("journey 3 'Recall'").
  StatusOr<std::vector<std::string>> UsingCohort(const std::string& project, int64_t cohort);
  // Replaces the definition. Once persons have entered, the trigger, steps and holdout are
  // fixed (FailedPrecondition naming the field): entries point at step numbers.
  StatusOr<nlohmann::json> Update(const Principal& who, int64_t id, const nlohmann::json& body);
  Status Delete(const Principal& who, int64_t id);  // not while active
  StatusOr<nlohmann::json> SetStatus(const Principal& who, int64_t id, const std::string& status);
  StatusOr<nlohmann::json> Results(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> DeadLetters(const std::string& project, int64_t id, int limit);
  // Makes dead letters pending again (one, or all of the journey's when send_id is 0).
  StatusOr<nlohmann::json> RetryDead(const Principal& who, int64_t id, int64_t send_id);
  // Evaluates a cohort or schedule trigger now (outside its schedule); answers who entered.
  StatusOr<nlohmann::json> EvaluateTrigger(const Principal& who, int64_t id);

  // ---- the engine
  void Start();
  void Stop();
  // One round of the engine's work on the caller's thread (tests; the engine thread calls it).
  Status RunOnce();

 private:
  JourneyService(ProjectRegistry& registry, OpsService& ops, PeopleService& people, JourneyEngineOptions options);
  struct Active {
    int64_t id = 0;
    std::string project;
    JourneyDoc doc;
    int64_t activated_at = 0;
  };
  struct Candidate {
    int64_t journey_id;
    uint32_t person;
    int64_t ts;
  };
  int64_t Now() const { return options_.now ? options_.now() : NowMs(); }
  StatusOr<std::vector<Active>> LoadActive();
  StatusOr<Active> LoadJourney(const std::string& project, int64_t id, std::string* status);
  void HookProjects(const std::vector<Active>& active);
  Status CatchUp(const Active& j);
  Status EnterCandidates(const std::vector<Active>& active, std::vector<Candidate> candidates);
  Status EnterPersons(const Active& j, const std::vector<std::pair<uint32_t, int64_t>>& persons, Project& p,
                      const StoreSnapshot& snap);
  Status RunCohortTriggers(const std::vector<Active>& active, bool force_id_only, int64_t only_id, int* entered);
  Status AdvanceDue(const std::vector<Active>& active);
  Status DispatchSends(const std::vector<Active>& active);
  Status RecoverSending();

  ProjectRegistry& registry_;
  OpsService& ops_;
  PeopleService& people_;
  MetaDb& db_;
  JourneyEngineOptions options_;

  std::mutex work_mu_;  // one RunOnce at a time

  // Trigger events from the append hooks, waiting for the engine.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<Candidate> queue_;
  bool stop_ = false;
  // project -> (trigger event name -> journeys); what the hooks match on.
  struct TriggerIndex {
    std::map<std::string, std::vector<int64_t>> by_event;
  };
  std::map<std::string, std::shared_ptr<const TriggerIndex>> triggers_;  // under queue_mu_
  std::map<std::string, uint64_t> hooks_;                                // project -> listener id (engine thread)
  // (journey, activation time) scanned since start: a re-activation scans again.
  std::set<std::pair<int64_t, int64_t>> caught_up_;
  std::thread thread_;
  // A round stopped at a batch limit: the engine starts the next one at once (engine thread).
  bool more_work_ = false;
};

// The template language of journey messages: {{person.KEY}}, {{distinct_id}}, {{journey.name}},
// {{journey.id}}; an unknown or absent value renders as "".
std::string RenderTemplate(const std::string& tmpl, const std::function<std::string(const std::string&)>& lookup);

}  // namespace ns
