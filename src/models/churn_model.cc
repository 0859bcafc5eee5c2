#include "models/churn_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "stats/classification.h"

namespace ns {

std::optional<int32_t> LastCompleteDay(const StoreSnapshot& snap, const TimeZone& tz, int32_t today) {
  std::optional<int64_t> newest;
  for (const auto& b : snap.blocks)
    if (b->size()) newest = std::max(newest.value_or(b->max_ts()), b->max_ts());
  if (!newest) return std::nullopt;
  return std::min(tz.LocalDay(*newest), today - 1);
}

StatusOr<ChurnScores> ScoreChurn(const QueryContext& ctx, const BoostedTrees& model, int32_t as_of_day,
                                 const ChurnFeatureOptions& options) {
  ChurnFeatures f = BuildChurnFeatures(ctx, as_of_day, options);
  ChurnScores out;
  out.as_of_day = as_of_day;
  const size_t n = f.persons.size();
  NS_ASSIGN_OR_RETURN(std::vector<float> risk, model.Predict(f.values.data(), n, kChurnFeatureCount));
  NS_ASSIGN_OR_RETURN(std::vector<float> contrib, model.Contributions(f.values.data(), n, kChurnFeatureCount));
  out.persons = std::move(f.persons);
  out.risk = std::move(risk);
  out.top.resize(n);
  std::array<int, kChurnFeatureCount> idx;
  for (size_t i = 0; i < n; i++) {
    const float* c = contrib.data() + i * (kChurnFeatureCount + 1);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + kTopFeatures, idx.end(), [&](int a, int b) {
      const float x = std::fabs(c[a]), y = std::fabs(c[b]);
      return x != y ? x > y : a < b;
    });
    for (int k = 0; k < kTopFeatures; k++)
      out.top[i][static_cast<size_t>(k)] = {idx[static_cast<size_t>(k)], c[idx[static_cast<size_t>(k)]]};
  }
  // Deciles by rank: 1 + floor(10 * (persons scored strictly lower) / n).
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return out.risk[a] < out.risk[b]; });
  out.decile.assign(n, 1);
  for (size_t k = 0, lower = 0; k < n; k++) {
    if (k > 0 && out.risk[order[k]] != out.risk[order[k - 1]]) lower = k;
    out.decile[order[k]] = static_cast<uint8_t>(1 + (10 * lower) / n);
  }
  return out;
}

StatusOr<ChurnModelRun> TrainChurnModel(const QueryContext& ctx, int32_t last_day, const ChurnTrainOptions& o) {
  ChurnModelRun run;
  const int h = o.horizon_days;
  run.horizon_days = h;
  run.eval_as_of = last_day - h;
  run.train_as_of = last_day - 2 * h;

  ChurnFeatures train = BuildChurnFeatures(ctx, run.train_as_of, o.features);
  std::vector<uint8_t> train_labels = ChurnLabels(ctx, train.persons, run.train_as_of, h);
  ChurnFeatures eval = BuildChurnFeatures(ctx, run.eval_as_of, o.features);
  std::vector<uint8_t> eval_labels = ChurnLabels(ctx, eval.persons, run.eval_as_of, h);
  if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  run.train_rows = train.persons.size();
  run.eval_rows = eval.persons.size();
  for (uint8_t l : train_labels) run.train_churned += l;
  for (uint8_t l : eval_labels) run.eval_churned += l;
  const std::string need = " (the model trains on the persons active in the 90 days before " +
                           FormatDate(run.train_as_of) + " and evaluates on those before " +
                           FormatDate(run.eval_as_of) + "; it needs " + std::to_string(2 * h) +
                           " days of events after the training day, up to " + FormatDate(last_day) + ")";
  if (run.train_rows < 20 || run.train_churned == 0 || run.train_churned == run.train_rows)
    return FailedPrecondition("not enough history to train the churn model: " + std::to_string(run.train_rows) +
                              " persons, " + std::to_string(run.train_churned) + " of them churned" + need);
  if (run.eval_rows < 20 || run.eval_churned == 0 || run.eval_churned == run.eval_rows)
    return FailedPrecondition("not enough history to evaluate the churn model: " + std::to_string(run.eval_rows) +
                              " persons, " + std::to_string(run.eval_churned) + " of them churned" + need);

  std::vector<float> y(train_labels.begin(), train_labels.end());
  NS_ASSIGN_OR_RETURN(BoostedTrees model,
                      BoostedTrees::Train(train.values, run.train_rows, kChurnFeatureCount, y, o.trees));
  NS_ASSIGN_OR_RETURN(std::vector<float> train_pred,
                      model.Predict(train.values.data(), run.train_rows, kChurnFeatureCount));
  run.train_auc = stats::RocAuc(std::vector<double>(train_pred.begin(), train_pred.end()), train_labels);
  NS_ASSIGN_OR_RETURN(std::vector<float> pred, model.Predict(eval.values.data(), run.eval_rows, kChurnFeatureCount));
  const std::vector<double> scores(pred.begin(), pred.end());
  run.auc = stats::RocAuc(scores, eval_labels);
  run.precision_at_10 = stats::PrecisionAtTopFraction(scores, eval_labels, 0.1);
  NS_ASSIGN_OR_RETURN(std::vector<float> contrib,
                      model.Contributions(eval.values.data(), run.eval_rows, kChurnFeatureCount));
  for (size_t i = 0; i < run.eval_rows; i++)
    for (int k = 0; k < kChurnFeatureCount; k++)
      run.importance[static_cast<size_t>(k)] +=
          std::fabs(contrib[i * (kChurnFeatureCount + 1) + static_cast<size_t>(k)]);
  for (double& v : run.importance) v /= static_cast<double>(run.eval_rows);

  NS_ASSIGN_OR_RETURN(run.scores, ScoreChurn(ctx, model, last_day, o.features));
  run.model = std::move(model);
  return run;
}

}  // namespace ns
