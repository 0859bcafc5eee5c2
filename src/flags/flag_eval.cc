#include "flags/flag_eval.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <regex>

#include "flags/bucketing.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr size_t kMaxRegexInput = 4096;

// A value as PostHog's matchers read it: str(value) (booleans "true"/"false" after lower()).
std::string Text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
  }
  return v.dump();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<double> Number(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return d;
}

bool ExactMatch(const json& want, const json& have) {
  const std::string h = Lower(Text(have));
  if (want.is_array()) {
    for (const json& w : want)
      if (Lower(Text(w)) == h) return true;
    return false;
  }
  return Lower(Text(want)) == h;
}

}  // namespace

std::string FlagOutcome::Description() const {
  if (reason == "condition_match") return "Matched condition set " + std::to_string(condition_index + 1);
  if (reason == "out_of_rollout_bound") return "Out of rollout bound";
  if (reason == "disabled") return "Flag is disabled";
  return "No matching condition set";
}

bool MatchPropertyCondition(const FlagCondition& c, const std::optional<json>& value) {
  if (c.op == "is_set") return value.has_value() && !value->is_null();
  if (c.op == "is_not_set") return !value.has_value() || value->is_null();
  if (!value.has_value() || value->is_null()) return false;
  const json& v = *value;
  if (c.op == "exact") return ExactMatch(c.value, v);
  if (c.op == "is_not") return !ExactMatch(c.value, v);
  if (c.op == "icontains" || c.op == "not_icontains") {
    const bool has = Lower(Text(v)).find(Lower(Text(c.value))) != std::string::npos;
    return c.op == "icontains" ? has : !has;
  }
  if (c.op == "regex" || c.op == "not_regex") {
    bool found = false;
    try {
      std::regex re(c.value.get<std::string>(), std::regex::ECMAScript);
      // std::regex recurses per input character: a bounded prefix keeps a huge property
      // value from exhausting a worker's stack.
      std::string text = Text(v);
      if (text.size() > kMaxRegexInput) text.resize(kMaxRegexInput);
      found = std::regex_search(text, re);
    } catch (const std::exception&) {
      return false;  // validated when saved; a pattern too complex for the input matches nothing
    }
    return c.op == "regex" ? found : !found;
  }
  // gt, gte, lt, lte: numbers when both are numbers, else texts.
  int cmp = 0;
  auto a = Number(v), b = Number(c.value);
  if (a && b) {
    cmp = *a < *b ? -1 : *a > *b ? 1 : 0;
  } else {
    const std::string x = Text(v), y = Text(c.value);
    cmp = x < y ? -1 : x > y ? 1 : 0;
  }
  if (c.op == "gt") return cmp > 0;
  if (c.op == "gte") return cmp >= 0;
  if (c.op == "lt") return cmp < 0;
  if (c.op == "lte") return cmp <= 0;
  return false;
}

StatusOr<FlagOutcome> EvaluateFlag(const FlagDefinition& flag, std::string_view id, const FlagPropertyLookup& props,
                                   const FlagCohortLookup& cohorts) {
  FlagOutcome out;
  if (!flag.active) {
    out.reason = "disabled";
    return out;
  }
  std::vector<FlagGroup> implicit;
  const std::vector<FlagGroup>* groups = &flag.groups;
  if (groups->empty()) {
    implicit.emplace_back();
    groups = &implicit;
  }
  // Groups with a variant override first (PostHog sorts them so), each keeping its index.
  std::vector<size_t> order(groups->size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return !(*groups)[a].variant.empty() && (*groups)[b].variant.empty(); });
  out.reason = "no_condition_match";
  for (size_t gi : order) {
    const FlagGroup& g = (*groups)[gi];
    bool match = true;
    for (const FlagCondition& c : g.properties) {
      if (c.type == "cohort") {
        NS_ASSIGN_OR_RETURN(bool in, cohorts(c.value.get<int64_t>()));
        match = c.op == "in" ? in : !in;
      } else {
        match = MatchPropertyCondition(c, props(c.key));
      }
      if (!match) break;
    }
    if (!match) continue;
    const double pct = g.rollout_percentage.value_or(flag.rollout_percentage);
    if (!InRollout(flag.key, id, pct)) {
      if (out.reason == "no_condition_match") {
        out.reason = "out_of_rollout_bound";
        out.condition_index = static_cast<int>(gi);
      }
      continue;
    }
    out.enabled = true;
    out.reason = "condition_match";
    out.condition_index = static_cast<int>(gi);
    if (!flag.variants.empty()) {
      out.variant = g.variant;
      if (out.variant.empty()) {
        std::vector<VariantWeight> w;
        for (const FlagVariant& v : flag.variants) w.push_back({v.key, static_cast<double>(v.rollout_percentage)});
        out.variant = PickVariant(flag.key, id, w);
      }
    }
    const std::string payload_key = out.variant.empty() ? "true" : out.variant;
    if (auto p = flag.payloads.find(payload_key); p != flag.payloads.end()) out.payload = *p;
    return out;
  }
  return out;
}

}  // namespace ns
