#include "models/boosted_trees.h"

#include <xgboost/c_api.h>

#include <cmath>
#include <string>

namespace ns {

namespace {

Status XgbError(const char* what) { return Internal(std::string("xgboost ") + what + ": " + XGBGetLastError()); }

// A DMatrix freed at scope end.
class Matrix {
 public:
  Matrix() = default;
  ~Matrix() {
    if (h_) XGDMatrixFree(h_);
  }
  Matrix(const Matrix&) = delete;
  Matrix& operator=(const Matrix&) = delete;
  Status Create(const float* values, size_t rows, size_t cols) {
    if (XGDMatrixCreateFromMat(values, static_cast<bst_ulong>(rows), static_cast<bst_ulong>(cols), std::nanf(""),
                               &h_) != 0)
      return XgbError("DMatrix");
    return Status::OK();
  }
  DMatrixHandle get() const { return h_; }

 private:
  DMatrixHandle h_ = nullptr;
};

}  // namespace

BoostedTrees::BoostedTrees(BoostedTrees&& o) noexcept : handle_(o.handle_) { o.handle_ = nullptr; }
BoostedTrees& BoostedTrees::operator=(BoostedTrees&& o) noexcept {
  if (this != &o) {
    if (handle_) XGBoosterFree(handle_);
    handle_ = o.handle_;
    o.handle_ = nullptr;
  }
  return *this;
}
BoostedTrees::~BoostedTrees() {
  if (handle_) XGBoosterFree(handle_);
}

StatusOr<BoostedTrees> BoostedTrees::Train(const std::vector<float>& values, size_t rows, size_t cols,
                                           const std::vector<float>& labels, const BoostedTreesParams& p) {
  if (rows == 0 || labels.size() != rows || values.size() != rows * cols)
    return InvalidArgument("training data: expected rows x columns values and one label per row");
  size_t pos = 0;
  for (float l : labels) pos += l > 0.5f;
  if (pos == 0 || pos == rows) return InvalidArgument("training data: the labels must hold both outcomes");
  Matrix m;
  NS_RETURN_IF_ERROR(m.Create(values.data(), rows, cols));
  if (XGDMatrixSetFloatInfo(m.get(), "label", labels.data(), static_cast<bst_ulong>(rows)) != 0)
    return XgbError("labels");
  DMatrixHandle dm = m.get();
  BoosterHandle h = nullptr;
  if (XGBoosterCreate(&dm, 1, &h) != 0) return XgbError("create");
  BoostedTrees model(h);
  const std::pair<const char*, std::string> params[] = {
      {"objective", "binary:logistic"},
      {"tree_method", "exact"},  // no sketching: the same trees on any machine
      {"max_depth", std::to_string(p.max_depth)},
      {"eta", std::to_string(p.eta)},
      {"min_child_weight", std::to_string(p.min_child_weight)},
      {"lambda", std::to_string(p.lambda)},
      {"nthread", std::to_string(p.threads)},
      {"seed", std::to_string(p.seed)},
      {"verbosity", "0"},
  };
  for (const auto& [k, v] : params)
    if (XGBoosterSetParam(h, k, v.c_str()) != 0) return XgbError(k);
  for (int i = 0; i < p.rounds; i++)
    if (XGBoosterUpdateOneIter(h, i, dm) != 0) return XgbError("training");
  return model;
}

StatusOr<BoostedTrees> BoostedTrees::Load(std::string_view bytes) {
  BoosterHandle h = nullptr;
  if (XGBoosterCreate(nullptr, 0, &h) != 0) return XgbError("create");
  BoostedTrees model(h);
  if (XGBoosterLoadModelFromBuffer(h, bytes.data(), static_cast<bst_ulong>(bytes.size())) != 0) return XgbError("load");
  return model;
}

StatusOr<std::string> BoostedTrees::Save() const {
  bst_ulong len = 0;
  const char* out = nullptr;
  if (XGBoosterSaveModelToBuffer(handle_, R"({"format":"json"})", &len, &out) != 0) return XgbError("save");
  return std::string(out, len);
}

StatusOr<std::vector<float>> BoostedTrees::PredictType(const float* values, size_t rows, size_t cols, int type) const {
  if (rows == 0) return std::vector<float>();
  Matrix m;
  NS_RETURN_IF_ERROR(m.Create(values, rows, cols));
  const std::string config = R"({"type":)" + std::to_string(type) +
                             R"(,"training":false,"iteration_begin":0,"iteration_end":0,"strict_shape":false})";
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  if (XGBoosterPredictFromDMatrix(handle_, m.get(), config.c_str(), &shape, &dim, &result) != 0)
    return XgbError("predict");
  size_t total = 1;
  for (bst_ulong d = 0; d < dim; d++) total *= static_cast<size_t>(shape[d]);
  const size_t expected = type == 0 ? rows : rows * (cols + 1);
  if (total != expected) return Internal("xgboost predict: unexpected output shape");
  return std::vector<float>(result, result + total);
}

StatusOr<std::vector<float>> BoostedTrees::Predict(const float* values, size_t rows, size_t cols) const {
  return PredictType(values, rows, cols, 0);
}

StatusOr<std::vector<float>> BoostedTrees::Contributions(const float* values, size_t rows, size_t cols) const {
  return PredictType(values, rows, cols, 2);
}

}  // namespace ns
