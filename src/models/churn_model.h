// The churn-risk model (docs/models.md): gradient-boosted trees on the features of
// churn_features.h, trained and evaluated on a time split of the project's own events.
//
//   train:    features as of T1 = E - 2h, label = no activity in (T1, T1 + h]
//   evaluate: features as of T2 = E - h,  label = no activity in (T2, T2 + h]  (not used to train)
//   score:    features as of E, the last day whose events are all in: the risk of no
//             activity in the next h days
// with E the last complete day with events and h the horizon (30 days). The evaluation
// window's labels lie entirely after every label the model was trained on, as they would in
// use; the model evaluated is the one that scores.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/boosted_trees.h"
#include "models/churn_features.h"

namespace ns {

struct ChurnTrainOptions {
  int horizon_days = 30;
  BoostedTreesParams trees;
  ChurnFeatureOptions features;
};

// One feature's part in a person's score (SHAP, log-odds).
struct FeatureContribution {
  int feature = 0;  // ChurnFeature
  float contribution = 0;
};
constexpr int kTopFeatures = 3;

struct ChurnScores {
  int32_t as_of_day = 0;
  std::vector<uint32_t> persons;  // ascending person id
  std::vector<float> risk;        // P(no activity in the next horizon days)
  // The features that moved each person's score most, by |contribution|, largest first.
  std::vector<std::array<FeatureContribution, kTopFeatures>> top;
  std::vector<uint8_t> decile;  // 1..10 by risk among the scored (10: the riskiest tenth; ties share)
};

struct ChurnModelRun {
  int32_t train_as_of = 0, eval_as_of = 0;
  int horizon_days = 30;
  size_t train_rows = 0, train_churned = 0, eval_rows = 0, eval_churned = 0;
  double auc = 0, precision_at_10 = 0;  // on the evaluation window
  double train_auc = 0;
  // Per feature: the mean |SHAP contribution| over the evaluation rows (log-odds).
  std::array<double, kChurnFeatureCount> importance{};
  std::optional<BoostedTrees> model;
  ChurnScores scores;
};

// The last complete local day with events: the day of the newest event, but not today
// (`today`'s events are still arriving). nullopt for an empty store.
std::optional<int32_t> LastCompleteDay(const StoreSnapshot& snap, const TimeZone& tz, int32_t today);

// Trains, evaluates and scores with `last_day` as E. FailedPrecondition (saying what is
// missing) when the data is too short or a window has only one outcome.
StatusOr<ChurnModelRun> TrainChurnModel(const QueryContext& ctx, int32_t last_day, const ChurnTrainOptions& options);

// Scores the population as of `as_of_day` with a trained model.
StatusOr<ChurnScores> ScoreChurn(const QueryContext& ctx, const BoostedTrees& model, int32_t as_of_day,
                                 const ChurnFeatureOptions& options);

}  // namespace ns
