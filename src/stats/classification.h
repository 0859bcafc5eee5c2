// How well scores rank a binary outcome (the churn model's evaluation, docs/models.md):
// ROC AUC and precision among the top-scored fraction, both exact under ties.
#pragma once

#include <cstdint>
#include <vector>

namespace ns::stats {

// The area under the ROC curve: the probability that a random positive scores above a random
// negative, a tie counting one half (the Mann-Whitney U over n_pos * n_neg, from mid-ranks).
// NaN when the labels hold no positive or no negative. REQUIRES: equal sizes.
// O(n log n).
double RocAuc(const std::vector<double>& scores, const std::vector<uint8_t>& labels);

// Precision among the k = ceil(fraction * n) highest scores. Scores tied at the cut share
// the places left among them, so it is the expected precision when ties are broken at
// random (never favourable to the model by the order of the input). NaN when n == 0.
// REQUIRES: equal sizes, 0 < fraction <= 1.
double PrecisionAtTopFraction(const std::vector<double>& scores, const std::vector<uint8_t>& labels, double fraction);

}  // namespace ns::stats
