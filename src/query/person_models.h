// The person-level models as query kinds (docs/queries.md, docs/people.md): RFM scores and
// the eight classic segments, and lifecycle stages over time. Both read PersonFacts
// (query/person_facts.h); the people layer uses the same scoring for the person page and
// for cohort conditions, so a person's segment is the same everywhere.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "query/person_facts.h"
#include "query/query_kind.h"
#include "query/query_spec.h"

namespace ns {

// ---------------------------------------------------------------- RFM

// The eight segments: high/low of each of R, F, M (a score above the population's mean
// score is high). Index = (r_high << 2) | (f_high << 1) | m_high.
struct RfmSegmentInfo {
  const char* key;       // "champions"
  const char* label_zh;  // "重要价值客户"
  const char* label_en;  // "Champions"
};
const RfmSegmentInfo& RfmSegment(int index);
// Index of a segment key ("champions"), -1 if unknown.
int RfmSegmentIndex(std::string_view key);
// "champions, potential, ..." for error messages.
std::string RfmSegmentList();

struct RfmScoring {
  bool quintiles = true;
  // Explicit bins (quintiles == false): 4 ascending edges each. F and M score 1 + the number
  // of edges <= the value; R (days, fewer is better) scores 5 - the number of edges <= it.
  std::array<std::vector<double>, 3> edges;
};

struct RfmQuery {
  int32_t as_of_day = 0;
  std::optional<int32_t> from_day;  // only payments on or after this day count
  RfmScoring scoring;
  std::vector<Filter> filters;  // person-level: person properties and cohorts
  std::string segment;          // list only this segment's persons ("" = all)
  size_t limit = 100;           // persons listed (0 = none)
  size_t offset = 0;
  std::string order_by = "monetary";  // monetary, frequency, recency_days
};
// `today` is the default as_of (the project's current local day).
StatusOr<RfmQuery> ParseRfmQuery(const nlohmann::json& j, int32_t today);

struct RfmPerson {
  uint32_t person = 0;
  int32_t recency_days = 0;
  uint32_t frequency = 0;
  double monetary = 0;
  int r = 0, f = 0, m = 0;
  int segment = 0;
};

// Scores of every payer (persons with at least one order) in the population.
class RfmModel {
 public:
  // Scores the payers among `include` (nullptr: all persons) from facts.
  static RfmModel Build(const PersonFacts& facts, const TimeZone& tz, const RfmScoring& scoring,
                        const std::vector<uint8_t>* include = nullptr);
  const std::vector<RfmPerson>& persons() const { return persons_; }  // ascending person id
  // The person's scores, or nullptr if the person is not a payer of the population.
  const RfmPerson* Find(uint32_t person) const;
  std::array<double, 3> mean_scores() const { return means_; }
  // Quintile scoring: the values at the edges between scores (R in days, F orders, M amount).
  const std::array<std::vector<double>, 3>& edges() const { return edges_; }

 private:
  std::vector<RfmPerson> persons_;
  std::array<double, 3> means_{};
  std::array<std::vector<double>, 3> edges_;
};

struct RfmSegmentResult {
  int segment = 0;
  uint64_t persons = 0;
  double share = 0;
  double avg_recency_days = 0, avg_frequency = 0, avg_monetary = 0;
  double revenue = 0, revenue_share = 0;
};

struct RfmResult {
  std::string timezone;
  int32_t as_of_day = 0;
  uint64_t persons_scored = 0;
  std::array<double, 3> mean_scores{};
  std::array<std::vector<double>, 3> edges;
  bool quintiles = true;
  std::vector<RfmSegmentResult> segments;  // all eight, in index order (champions first)
  std::vector<RfmPerson> persons;          // the page asked for
  uint64_t persons_total = 0;              // persons matching (segment) before paging
  std::vector<std::string> person_ids;     // display ids of `persons`
};

StatusOr<RfmResult> RunRfm(const RfmQuery& q, const QueryContext& ctx);
nlohmann::json ToJson(const RfmResult& r);
nlohmann::json RfmPersonJson(const RfmPerson& p);

// ---------------------------------------------------------------- lifecycle

enum class LifecycleMode { kStages, kActivity };

struct LifecycleQuery {
  LifecycleMode mode = LifecycleMode::kStages;
  int32_t from_day = 0, to_day = 0;
  Interval interval = Interval::kDay;
  std::string event = "$any";   // what counts as activity
  std::vector<Filter> filters;  // on the activity events (event, person and cohort filters)
};
StatusOr<LifecycleQuery> ParseLifecycleQuery(const nlohmann::json& j);

struct LifecycleResult {
  std::string timezone;
  LifecycleMode mode = LifecycleMode::kStages;
  Interval interval = Interval::kDay;
  int32_t date_from = 0, date_to = 0;
  std::vector<std::string> dates;  // bucket labels
  // stages: new, active, silent, churned (persons in the stage at the end of each bucket);
  // activity: new, returning, resurrecting, dormant (dormant negative, as PostHog draws it).
  std::vector<std::pair<std::string, std::vector<int64_t>>> series;
};

StatusOr<LifecycleResult> RunLifecycle(const LifecycleQuery& q, const QueryContext& ctx);
nlohmann::json ToJson(const LifecycleResult& r);

// ---------------------------------------------------------------- CLV per person

// Every customer's CLV predictions for the models layer (person.$clv, person.$p_alive, and
// churn features): the clv kind's models (docs/queries.md "CLV", daily time unit, 10% a
// year discount) fitted on every payment up to local day `cal_to`, each customer's P(alive),
// purchases expected in the next `horizon_days` and CLV over them (NaN without a value
// model), in ascending person order. Empty when there are too few customers to fit.
struct ClvScores {
  std::vector<uint32_t> persons;
  std::vector<double> p_alive, expected_purchases, clv;
};
ClvScores ScoreClv(const QueryContext& ctx, int32_t cal_to, int64_t horizon_days);

}  // namespace ns
