#include "stats/classification.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ns::stats {

namespace {

// Indexes of `scores`, highest first (ties in input order: callers treat ties as groups).
std::vector<size_t> Descending(const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

}  // namespace

double RocAuc(const std::vector<double>& scores, const std::vector<uint8_t>& labels) {
  const size_t n = scores.size();
  std::vector<size_t> order = Descending(scores);
  // Walk from the lowest score up, a group of equal scores at a time: every positive of the
  // group beats the negatives below it and ties half of the group's negatives.
  double pos = 0, neg = 0, wins = 0;
  for (size_t hi = n; hi > 0;) {
    size_t lo = hi - 1;
    while (lo > 0 && scores[order[lo - 1]] == scores[order[hi - 1]]) lo--;
    double gp = 0, gn = 0;
    for (size_t i = lo; i < hi; i++) (labels[order[i]] ? gp : gn) += 1;
    wins += gp * neg + 0.5 * gp * gn;
    pos += gp;
    neg += gn;
    hi = lo;
  }
  if (pos == 0 || neg == 0) return std::nan("");
  return wins / (pos * neg);
}

double PrecisionAtTopFraction(const std::vector<double>& scores, const std::vector<uint8_t>& labels, double fraction) {
  const size_t n = scores.size();
  if (n == 0) return std::nan("");
  const size_t k = std::min(n, static_cast<size_t>(std::ceil(fraction * static_cast<double>(n) - 1e-9)));
  std::vector<size_t> order = Descending(scores);
  double hits = 0;
  size_t taken = 0;
  for (size_t lo = 0; lo < n && taken < k;) {
    size_t hi = lo + 1;
    while (hi < n && scores[order[hi]] == scores[order[lo]]) hi++;
    double gp = 0;
    for (size_t i = lo; i < hi; i++) gp += labels[order[i]] ? 1 : 0;
    const size_t g = hi - lo, room = k - taken;
    if (g <= room) {
      hits += gp;
      taken += g;
    } else {  // the cut falls inside the group: its places go to its members alike
      hits += gp * static_cast<double>(room) / static_cast<double>(g);
      taken = k;
    }
    lo = hi;
  }
  return hits / static_cast<double>(k);
}

}  // namespace ns::stats
