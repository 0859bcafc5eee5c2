// The people layer's service: cohorts (stored in the metadata store, evaluated to bitmaps of
// persons and cached per state of the store, so a size is never stale), the person page,
// timelines, lists and exports, and the project's people settings. The HTTP routes
// (server/people_routes.cc) call it; the query layer sees cohorts through Source() (a
// CohortSource), so `{"cohort": ID}` works as a filter in every query kind.
#pragma once

#include <nlohmann/json.hpp>
#include <roaring/roaring.hh>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/mutex.h"
#include "core/status.h"
#include "meta/project_registry.h"
#include "people/cohort_definition.h"
#include "people/cohort_eval.h"
#include "query/cohort_source.h"
#include "query/person_facts.h"

namespace ns {

// The people layer's migrations (subsystem "people").
const std::vector<Migration>& PeopleMigrations();

// How a person list is asked for (GET /api/v1/persons).
struct PersonListRequest {
  int64_t cohort = 0;           // 0: everyone
  std::vector<Filter> filters;  // person properties
  // Cohort-definition conditions every listed person meets today (docs/people.md
  // "Definitions"): the `definition` parameter and the lifecycle / tier / tag shorthands.
  std::vector<CohortCondition> conditions;
  std::string q;                       // a distinct id or a property value contains this (case-insensitive)
  std::string order_by = "last_seen";  // last_seen, first_seen or event_count (descending)
  size_t limit = 50;
  size_t offset = 0;  // the cursor
};

class PeopleService {
 public:
  static StatusOr<std::unique_ptr<PeopleService>> Open(ProjectRegistry& registry);

  // ---- settings
  StatusOr<PeopleSettings> Settings(const std::string& project);
  StatusOr<PeopleSettings> UpdateSettings(const std::string& project, const nlohmann::json& patch);
  // A text that changes whenever the project's people settings or any of its cohorts (a
  // definition, static members, a cohort added or deleted) change: with the store's state, it
  // keys answers cached by the layers above (saved insights).
  StatusOr<std::string> DefinitionsVersion(const std::string& project);

  // ---- cohorts (docs/people.md). Answers are the JSON of the API.
  StatusOr<nlohmann::json> CreateCohort(const std::string& project, const nlohmann::json& body,
                                        const std::string& actor);
  StatusOr<nlohmann::json> GetCohort(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> ListCohorts(const std::string& project);
  StatusOr<nlohmann::json> UpdateCohort(const std::string& project, int64_t id, const nlohmann::json& patch);
  // Evaluates definitions without saving them (the console's live size, its distributions):
  // {"definition":{…}} → {"size","as_of"}; {"definitions":[…]} (1 to 100) → {"sizes":[…],"as_of"}.
  StatusOr<nlohmann::json> PreviewCohorts(const std::string& project, const nlohmann::json& body);
  // Refused (FailedPrecondition, a 409) while another cohort or a referrer (AddReferrers)
  // names it; the answer names them.
  Status DeleteCohort(const std::string& project, int64_t id);
  // Who outside the people layer names a cohort: descriptions such as "scenario 4 'Recall'"
  // (the operations layer's key user groups). Called inside the deleting transaction.
  using CohortReferrers = std::function<StatusOr<std::vector<std::string>>(const std::string& project, int64_t id)>;
  // REQUIRES: before the service is shared between threads (server start).
  void AddReferrers(CohortReferrers referrers) { referrers_.push_back(std::move(referrers)); }
  // A cohort's name and, `with_size`, its size now (for other layers: a scenario's key
  // user group). NotFound if the project has no cohort `id`.
  struct CohortHeadline {
    std::string name;
    std::optional<int64_t> size;  // with_size and evaluable
    int64_t as_of_ms = 0;
  };
  StatusOr<CohortHeadline> Headline(const std::string& project, int64_t id, bool with_size);
  // Static cohorts: adds distinct ids (a JSON array / {"distinct_ids":[...]} or CSV text
  // whose first column holds them); unknown ids are reported, not added.
  StatusOr<nlohmann::json> AddMembers(const std::string& project, int64_t id, const std::string& body, bool csv);
  // The cohort's persons under `snap` (cached per cohort version and store state).
  StatusOr<std::shared_ptr<const Roaring>> Members(const std::string& project, int64_t id, const StoreSnapshot& snap,
                                                   const TimeZone& tz);
  // A CohortSource of one project for the query layer (valid while this service lives).
  std::unique_ptr<CohortSource> Source(const std::string& project);

  // ---- tags (people/tags.h): the catalogue of built-in base and rule tags and the
  // project's own rule tags (cohorts created with "tag": true).
  StatusOr<nlohmann::json> Tags(const std::string& project);
  // A base tag's values today with their persons, most persons first (then by value), at
  // most `limit` of them: {"tag","label","label_zh","values":[{"value","persons"}],"persons","other_values",
  // "as_of"}. NotFound for an unknown key; InvalidArgument for a rule tag (no values). A
  // masked property's values are masked unless `unmasked`.
  StatusOr<nlohmann::json> TagValues(const std::string& project, const std::string& key, size_t limit, bool unmasked);

  // ---- persons. `unmasked`: the caller is an admin (personal data in clear).
  StatusOr<nlohmann::json> Person(const std::string& project, const std::string& distinct_id,
                                  std::optional<int32_t> as_of_day, bool unmasked);
  // Newest first; `before` is a cursor from "next" (or empty: from the newest).
  StatusOr<nlohmann::json> Timeline(const std::string& project, const std::string& distinct_id,
                                    const std::string& before, size_t limit, bool unmasked);
  StatusOr<nlohmann::json> ListPersons(const std::string& project, const PersonListRequest& req, bool unmasked);
  // Every match as CSV (UTF-8 BOM, formula-safe cells, core/csv_text.h), for streaming: the
  // persons are matched here, so every error comes back before a byte is written; the
  // answer then writes the rows in pieces of about 64 KiB to `write` until it returns false.
  // It owns the snapshot it reads, so it may run after the request's handler returned; only
  // the matched person ids are held, never the whole body.
  using CsvWrite = std::function<bool(std::string_view piece)>;
  using CsvProducer = std::function<void(const CsvWrite& write)>;
  StatusOr<CsvProducer> PersonsCsv(const std::string& project, PersonListRequest req, bool unmasked);

  // ---- erasure (docs/people.md, "Erasure"): the person of any of its distinct ids, durable
  // when it returns (EventStore::ErasePerson); static cohort memberships of its ids are
  // deleted. The answer holds no personal data (tombstone id, counts): the route audits it.
  StatusOr<nlohmann::json> ErasePerson(const std::string& project, const std::string& distinct_id);

 private:
  explicit PeopleService(ProjectRegistry& registry) : registry_(registry), db_(registry.meta_db()) {}
  struct CohortRow {
    int64_t id = 0;
    std::string name, description, kind, created_by;
    nlohmann::json definition;
    int64_t created_at = 0, updated_at = 0, version = 0;
    bool is_tag = false;
  };
  StatusOr<CohortRow> LoadCohort(const std::string& project, int64_t id);
  StatusOr<std::shared_ptr<const Roaring>> MembersOf(const std::string& project, int64_t id, const StoreSnapshot& snap,
                                                     const TimeZone& tz, std::vector<int64_t>& path);
  Status CheckNoCycle(const std::string& project, int64_t id, const CohortCondition& def);
  // The evaluation context of a cohort definition of `project` on `snap` (other cohorts,
  // tags and tiers resolved through this service; `path` detects cycles).
  CohortEvalContext EvalContext(const std::string& project, const StoreSnapshot& snap, const TimeZone& tz,
                                const PeopleSettings& settings, int32_t today, std::vector<int64_t>& path);
  // Persons whose base tag `key` has one of `values`, or who have rule tag `key`.
  StatusOr<std::shared_ptr<const Roaring>> TagMembers(const std::string& project, const std::string& key,
                                                      const std::vector<std::string>& values, const StoreSnapshot& snap,
                                                      const TimeZone& tz, std::vector<int64_t>& path);
  StatusOr<nlohmann::json> CohortJson(const std::string& project, const CohortRow& row, bool with_size);
  StatusOr<std::vector<uint32_t>> MatchPersons(Project& p, const StoreSnapshot& snap, const PersonFacts& facts,
                                               const PersonListRequest& req, const PeopleSettings& s);

  ProjectRegistry& registry_;
  MetaDb& db_;
  // The state a cached answer was computed on: the store's, the day, the people settings.
  struct StateKey {
    SnapshotState store;
    int32_t today = 0;
    std::string settings;  // PeopleSettings::ToJson().dump()
    bool operator==(const StateKey&) const = default;
  };
  static StateKey StateOf(const StoreSnapshot& snap, int32_t today, const PeopleSettings& settings);
  std::map<std::string, std::pair<StateKey, std::shared_ptr<const Roaring>>> tag_cache_ GUARDED_BY(mu_);
  struct CacheEntry {
    int64_t version = 0;  // the cohort's
    StateKey state;
    std::shared_ptr<const Roaring> members;
  };
  Mutex mu_;
  std::map<int64_t, CacheEntry> cache_ GUARDED_BY(mu_);  // cohort id -> latest evaluation
  std::vector<CohortReferrers> referrers_;               // set before serving, then read only
};

}  // namespace ns
