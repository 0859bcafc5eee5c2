// Gradient-boosted trees for binary outcomes through XGBoost's C API (Debian's
// libxgboost-dev; docs/decisions.md says why). The only file that includes XGBoost: the
// rest of Northstar sees this small, Status-returning interface.
//
// Deterministic: the same rows, labels and parameters give the same trees (fixed seed,
// fixed thread count, no row or column sampling by default).
// Thread-safety: a const BoostedTrees may be used from one thread at a time (callers lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ns {

struct BoostedTreesParams {
  int rounds = 150;             // boosting rounds (trees)
  int max_depth = 4;            // depth of each tree
  double eta = 0.1;             // learning rate
  double min_child_weight = 5;  // hessian sum a leaf needs: no leaf for a handful of persons
  double lambda = 1;            // L2 regularisation of leaf weights
  int threads = 1;              // XGBoost's nthread: a background job shares the server's cores
  uint64_t seed = 0;
};

class BoostedTrees {
 public:
  BoostedTrees(BoostedTrees&&) noexcept;
  BoostedTrees& operator=(BoostedTrees&&) noexcept;
  ~BoostedTrees();

  // Fits binary:logistic trees to `rows` x `cols` row-major values (NaN = missing) and
  // labels 0/1. InvalidArgument without both labels; Internal naming XGBoost's error.
  static StatusOr<BoostedTrees> Train(const std::vector<float>& values, size_t rows, size_t cols,
                                      const std::vector<float>& labels, const BoostedTreesParams& params);
  // A model written by Save (XGBoost's JSON model format).
  static StatusOr<BoostedTrees> Load(std::string_view bytes);
  StatusOr<std::string> Save() const;

  // P(label = 1) per row.
  StatusOr<std::vector<float>> Predict(const float* values, size_t rows, size_t cols) const;
  // SHAP contributions (XGBoost's pred_contribs) on the log-odds scale: per row `cols`
  // feature contributions then the bias; they sum to the row's log-odds.
  StatusOr<std::vector<float>> Contributions(const float* values, size_t rows, size_t cols) const;

 private:
  explicit BoostedTrees(void* handle) : handle_(handle) {}
  StatusOr<std::vector<float>> PredictType(const float* values, size_t rows, size_t cols, int type) const;
  void* handle_ = nullptr;  // BoosterHandle
};

}  // namespace ns
