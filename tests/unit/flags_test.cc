// Feature flags: PostHog's bucketing against PostHog's own test vectors, the rollout and
// variant distributions over 100k ids, condition matching, validation, and the stickiness of
// an assignment across identity merges (the first identified distinct id is hashed).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "flags/bucketing.h"
#include "flags/flag_definition.h"
#include "flags/flag_eval.h"
#include "flags/flags_service.h"
#include "meta/project_registry.h"
#include "ops/schema.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ns::testing::StatusIs;
using ns::testing::TempDir;
using ::testing::_;
using ::testing::HasSubstr;

FlagDefinition Parse(const json& j) {
  auto f = ParseFlagDefinition(j);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? *f : FlagDefinition{};
}

FlagOutcome Eval(const FlagDefinition& f, const std::string& id, const json& props = json::object()) {
  auto o = EvaluateFlag(
      f, id,
      [&](const std::string& k) -> std::optional<json> {
        if (props.contains(k)) return props[k];
        return std::nullopt;
      },
      [](int64_t id) -> StatusOr<bool> { return id == 7; });
  EXPECT_TRUE(o.ok());
  return o.ok() ? *o : FlagOutcome{};
}

// PostHog/posthog, posthog/models/feature_flag/test/test_flag_matching.py (test_get_hash), the
// same numbers as posthog-js's hash tests.
TEST(FlagHash, PostHogVectors) {
  EXPECT_NEAR(FlagHash("test-flag", "distinct_id_1"), 0.35140843114131903, 1e-12);
  EXPECT_NEAR(FlagHash("test-flag", "distinct_id_2"), 0.34900843133051557, 1e-12);
  EXPECT_NEAR(FlagHash("test-flag", "distinct_id_1", "salt"), 0.05659409091269017, 1e-12);
  EXPECT_NEAR(FlagHash("different-flag", "distinct_id_1"), 0.5078604702829128, 1e-12);
  // sha1("test-flag.distinct_id_1")[:15] = 59f5e7274a66f06 (posthog-js): 0x59f5e7274a66f06 / (2^60 - 1).
  EXPECT_DOUBLE_EQ(FlagHash("test-flag", "distinct_id_1"),
                   static_cast<double>(0x59f5e7274a66f06ULL) / static_cast<double>(0xFFFFFFFFFFFFFFFULL));
}

// PostHog/posthog, posthog/test/test_feature_flag.py, TestFeatureFlagMatcherConsistency: "common
// between all libraries doing local evaluation". The first 50 of its 1000 ids (distinct_id_0..49).
TEST(FlagHash, PostHogSimpleFlagConsistency) {
  const FlagDefinition f =
      Parse({{"key", "simple-flag"}, {"groups", {{{"properties", json::array()}, {"rollout_percentage", 45}}}}});
  const std::string expected =
      "FTTFTFFTFT"
      "FTTFTFFFTT"
      "FTFFTFTTFF"
      "FTTTTFFFFF"
      "FTTFTTFFFT";
  for (size_t i = 0; i < expected.size(); i++) {
    FlagOutcome o = Eval(f, "distinct_id_" + std::to_string(i));
    EXPECT_EQ(o.enabled, expected[i] == 'T') << i;
    EXPECT_EQ(o.reason, expected[i] == 'T' ? "condition_match" : "out_of_rollout_bound") << i;
    EXPECT_EQ(o.condition_index, 0);
  }
}

// Same file, test_multivariate_flag_consistency: rollout 55%, variants 50/20/20/5/5; the first
// 50 ids ('-' = not in the rollout, 1..5 = first..fifth variant).
TEST(FlagHash, PostHogMultivariateFlagConsistency) {
  const FlagDefinition f = Parse({{"key", "multivariate-flag"},
                                  {"groups", {{{"properties", json::array()}, {"rollout_percentage", 55}}}},
                                  {"variants",
                                   {{{"key", "first-variant"}, {"rollout_percentage", 50}},
                                    {{"key", "second-variant"}, {"rollout_percentage", 20}},
                                    {{"key", "third-variant"}, {"rollout_percentage", 20}},
                                    {{"key", "fourth-variant"}, {"rollout_percentage", 5}},
                                    {{"key", "fifth-variant"}, {"rollout_percentage", 5}}}}});
  const char* names[] = {"", "first-variant", "second-variant", "third-variant", "fourth-variant", "fifth-variant"};
  const std::string expected =
      "221--21---"
      "13-121--41"
      "-3---11111"
      "13-321-3--"
      "12-112-1--";
  for (size_t i = 0; i < expected.size(); i++) {
    FlagOutcome o = Eval(f, "distinct_id_" + std::to_string(i));
    if (expected[i] == '-') {
      EXPECT_FALSE(o.enabled) << i;
    } else {
      EXPECT_TRUE(o.enabled) << i;
      EXPECT_EQ(o.variant, names[expected[i] - '0']) << i;
    }
  }
}

TEST(FlagHash, RolloutDistributionOver100kIds) {
  // 100k ids: the binomial standard deviation of 10% is 0.095 percentage points; 0.5 is > 5 sigma.
  int in = 0;
  std::map<std::string, int> variants;
  const std::vector<VariantWeight> w = {{"control", 50}, {"a", 30}, {"b", 20}};
  for (int i = 0; i < 100000; i++) {
    const std::string id = "user-" + std::to_string(i);
    in += InRollout("new-checkout", id, 10);
    variants[PickVariant("new-checkout", id, w)]++;
  }
  EXPECT_NEAR(in / 1000.0, 10.0, 0.5);
  EXPECT_NEAR(variants["control"] / 1000.0, 50.0, 0.8);
  EXPECT_NEAR(variants["a"] / 1000.0, 30.0, 0.8);
  EXPECT_NEAR(variants["b"] / 1000.0, 20.0, 0.8);
  EXPECT_EQ(variants.count(""), 0u);
  // 0% lets nobody in, 100% everybody.
  EXPECT_FALSE(InRollout("new-checkout", "user-1", 0));
  EXPECT_TRUE(InRollout("new-checkout", "user-1", 100));
}

TEST(FlagConditions, PersonPropertyOperators) {
  auto cond = [](const char* op, json value) {
    FlagCondition c;
    c.key = "k";
    c.op = op;
    c.value = std::move(value);
    return c;
  };
  auto m = [](const FlagCondition& c, std::optional<json> v) { return MatchPropertyCondition(c, v); };
  EXPECT_TRUE(m(cond("exact", "CN"), json("cn")));  // case-insensitive, as PostHog
  EXPECT_TRUE(m(cond("exact", json::array({"US", "CN"})), json("CN")));
  EXPECT_FALSE(m(cond("exact", "CN"), json("US")));
  EXPECT_FALSE(m(cond("exact", "CN"), std::nullopt));
  EXPECT_TRUE(m(cond("exact", 5), json(5.0)));
  EXPECT_TRUE(m(cond("exact", true), json(true)));
  EXPECT_TRUE(m(cond("exact", "true"), json(true)));
  EXPECT_TRUE(m(cond("is_not", "CN"), json("US")));
  EXPECT_FALSE(m(cond("is_not", "CN"), std::nullopt));
  EXPECT_TRUE(m(cond("icontains", "Gmail"), json("ann@gmail.com")));
  EXPECT_TRUE(m(cond("not_icontains", "qq"), json("ann@gmail.com")));
  EXPECT_TRUE(m(cond("regex", "^13[0-9]{9}$"), json("13800138000")));
  EXPECT_TRUE(m(cond("not_regex", "^13"), json("15800138000")));
  EXPECT_TRUE(m(cond("gt", 10), json(11)));
  EXPECT_TRUE(m(cond("gt", 10), json("11")));  // numbers compare as numbers, not texts
  EXPECT_FALSE(m(cond("gt", 10), json(9)));
  EXPECT_TRUE(m(cond("gte", 10), json(10)));
  EXPECT_TRUE(m(cond("lt", "2024-01-01"), json("2023-12-31")));
  EXPECT_TRUE(m(cond("lte", 3), json(3)));
  EXPECT_TRUE(m(cond("is_set", "is_set"), json("x")));
  EXPECT_FALSE(m(cond("is_set", "is_set"), std::nullopt));
  EXPECT_TRUE(m(cond("is_not_set", "is_not_set"), std::nullopt));
}

TEST(FlagConditions, GroupsVariantsOverridesAndPayloads) {
  const FlagDefinition f =
      Parse({{"key", "new-checkout"},
             {"groups",
              {{{"properties", {{{"key", "plan"}, {"value", "vip"}}}}, {"variant", "b"}},
               {{"properties", {{{"key", "id"}, {"type", "cohort"}, {"value", 7}}}}, {"rollout_percentage", 100}},
               {{"properties", {{{"key", "city"}, {"value", "Beijing"}}}}, {"rollout_percentage", 0}}}},
             {"variants", {{{"key", "a"}, {"rollout_percentage", 50}}, {{"key", "b"}, {"rollout_percentage", 50}}}},
             {"payloads", {{"a", {{"color", "red"}}}, {"b", {{"color", "blue"}}}}}});
  // The override group wins: every vip gets b and its payload.
  FlagOutcome vip = Eval(f, "u1", {{"plan", "VIP"}});
  EXPECT_TRUE(vip.enabled);
  EXPECT_EQ(vip.variant, "b");
  EXPECT_EQ(vip.payload, json({{"color", "blue"}}));
  EXPECT_EQ(vip.condition_index, 0);
  // The cohort group (the lookup says cohort 7 holds everyone here).
  FlagOutcome member = Eval(f, "u1");
  EXPECT_TRUE(member.enabled);
  EXPECT_EQ(member.condition_index, 1);
  EXPECT_EQ(member.variant, PickVariant("new-checkout", "u1", {{"a", 50}, {"b", 50}}));
  // A group with 0% rollout: matched conditions, out of the rollout.
  FlagDefinition g = f;
  g.groups.erase(g.groups.begin(), g.groups.begin() + 2);
  FlagOutcome out = Eval(g, "u1", {{"city", "beijing"}});
  EXPECT_FALSE(out.enabled);
  EXPECT_EQ(out.reason, "out_of_rollout_bound");
  EXPECT_EQ(Eval(g, "u1", {{"city", "Shanghai"}}).reason, "no_condition_match");
  // An inactive flag is disabled for everyone.
  g.active = false;
  EXPECT_EQ(Eval(g, "u1", {{"city", "beijing"}}).reason, "disabled");
  // Without groups the flag's rollout applies to everyone.
  FlagDefinition all = Parse({{"key", "simple-flag"}, {"rollout_percentage", 45}});
  EXPECT_FALSE(Eval(all, "distinct_id_0").enabled);
  EXPECT_TRUE(Eval(all, "distinct_id_1").enabled);
  FlagDefinition boolean = Parse({{"key", "b"}, {"payloads", {{"true", {1, 2}}}}});
  EXPECT_EQ(Eval(boolean, "x").payload, json({1, 2}));
}

TEST(FlagDefinitionTest, ValidationNamesTheField) {
  auto err = [](const json& j) { return ParseFlagDefinition(j).status(); };
  EXPECT_THAT(err({{"name", "x"}}), StatusIs(StatusCode::kInvalidArgument, HasSubstr("required"), "key"));
  EXPECT_THAT(err({{"key", "new checkout"}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a flag key"), "key"));
  EXPECT_THAT(err({{"key", "k"}, {"rollout_percentage", 101}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("between 0 and 100"), "rollout_percentage"));
  EXPECT_THAT(
      err({{"key", "k"},
           {"variants", {{{"key", "a"}, {"rollout_percentage", 50}}, {{"key", "b"}, {"rollout_percentage", 40}}}}}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("sum to 90, not 100"), "variants"));
  EXPECT_THAT(
      err({{"key", "k"},
           {"variants", {{{"key", "a"}, {"rollout_percentage", 50}}, {{"key", "a"}, {"rollout_percentage", 50}}}}}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("twice"), "variants[1].key"));
  EXPECT_THAT(
      err({{"key", "k"}, {"groups", {{{"properties", {{{"key", "p"}, {"operator", "like"}, {"value", 1}}}}}}}}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown operator 'like'"), "groups[0].properties[0].operator"));
  EXPECT_THAT(
      err({{"key", "k"}, {"groups", {{{"properties", {{{"key", "p"}, {"operator", "regex"}, {"value", "(("}}}}}}}}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("regular expression"), "groups[0].properties[0].value"));
  EXPECT_THAT(err({{"key", "k"}, {"groups", {{{"variant", "z"}}}}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("no variant 'z'"), "groups[0].variant"));
  EXPECT_THAT(err({{"key", "k"}, {"payloads", {{"a", 1}}}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("under \"true\""), "payloads.a"));
  EXPECT_THAT(err({{"key", "k"}, {"rollout", 5}}), StatusIs(StatusCode::kInvalidArgument, _, "rollout"));
  // PostHog's shape reads the same as ours.
  FlagDefinition ph = Parse({{"key", "k"},
                             {"filters",
                              {{"groups", {{{"properties", json::array()}, {"rollout_percentage", 30}}}},
                               {"multivariate", {{"variants", {{{"key", "x"}, {"rollout_percentage", 100}}}}}},
                               {"payloads", {{"x", "{\"a\":1}"}}}}}});
  ASSERT_EQ(ph.groups.size(), 1u);
  EXPECT_EQ(*ph.groups[0].rollout_percentage, 30);
  ASSERT_EQ(ph.variants.size(), 1u);
  // What is written reads back unchanged.
  auto again = ParseFlagDefinition(FlagDefinitionJson(ph));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(FlagDefinitionJson(*again), FlagDefinitionJson(ph));
}

// The person's first identified distinct id is hashed: the variant an anonymous visitor saw
// before logging in is not what counts; after login every id of the person, and any device
// merged later, gets the variant of the login id.
TEST(FlagsServiceTest, AssignmentIsStickyAcrossMerges) {
  TempDir dir;
  StoreOptions so;
  so.background = false;
  auto registry = ProjectRegistry::Open(dir.path(), so);
  ASSERT_TRUE(registry.ok());
  ASSERT_TRUE((*registry)->Create("p", "Asia/Shanghai").ok());
  // The audit log's table belongs to the operations layer's migrations.
  ASSERT_TRUE((*registry)->meta_db().Migrate("ops", OpsMigrations()).ok());
  auto flags = FlagsService::Open(**registry, nullptr);
  ASSERT_TRUE(flags.ok()) << flags.status().ToString();
  Principal who{"test", 0, "p", Role::kAdmin, Credential::kSystem};
  json body = {
      {"key", "new-checkout"},
      {"variants", {{{"key", "control"}, {"rollout_percentage", 50}}, {{"key", "test"}, {"rollout_percentage", 50}}}}};
  auto created = (*flags)->Create(who, body);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_THAT((*flags)->Create(who, body).status(), StatusIs(StatusCode::kAlreadyExists));

  auto project = (*registry)->OpenProject("p");
  ASSERT_TRUE(project.ok());
  auto event = [](std::string id, std::string name, std::vector<std::string> merge = {}) {
    Event e;
    e.distinct_id = std::move(id);
    e.event = std::move(name);
    e.ts_ms = NowMs();
    e.merge_with = std::move(merge);
    return e;
  };
  auto request = [](const std::string& id) {
    FlagEvalRequest r;
    r.distinct_id = id;
    return r;
  };
  auto variant_of = [&](const std::string& id) {
    auto ev = (*flags)->Evaluate("p", request(id));
    EXPECT_TRUE(ev.ok());
    return ev.ok() && !ev->flags.empty() ? ev->flags[0].outcome.variant : std::string("?");
  };
  const std::vector<VariantWeight> w = {{"control", 50}, {"test", 50}};
  // Find ids whose own variants differ, so the rule is visible.
  std::string anon, login, device2;
  for (int i = 0; anon.empty() || device2.empty(); i++) {
    std::string id = "anon-" + std::to_string(i);
    if (login.empty() && PickVariant("new-checkout", id, w) == "test") login = "user-" + id;
    if (PickVariant("new-checkout", id, w) != PickVariant("new-checkout", login.empty() ? "x" : login, w)) {
      if (anon.empty() && !login.empty())
        anon = id;
      else if (!anon.empty() && id != anon)
        device2 = id;
    }
  }
  ASSERT_TRUE((*project)->store->Append({event(anon, "view")}).ok());
  EXPECT_EQ(variant_of(anon), PickVariant("new-checkout", anon, w));  // unknown or anonymous: its own id
  Event identify = event(login, "$identify", {anon});
  ASSERT_TRUE(IdentifiesPerson(identify));
  ASSERT_TRUE((*project)->store->Append({identify}).ok());
  const std::string v = PickVariant("new-checkout", login, w);
  EXPECT_EQ(variant_of(login), v);
  EXPECT_EQ(variant_of(anon), v);  // the person is identified now: its login id decides
  ASSERT_TRUE((*project)->store->Append({event(login, "$identify", {device2})}).ok());
  EXPECT_EQ(variant_of(device2), v);  // a device merged later gets the person's variant
  EXPECT_EQ(variant_of("never-seen"), PickVariant("new-checkout", "never-seen", w));

  // Exposures: one per (person, flag, answer, day), however often evaluated.
  auto ev = (*flags)->Evaluate("p", request(anon));
  ASSERT_TRUE(ev.ok());
  auto first = (*flags)->RecordExposures("p", anon, *ev);
  auto second = (*flags)->RecordExposures("p", device2, *ev);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, 1u);
  EXPECT_EQ(*second, 0u);
}

}  // namespace
}  // namespace ns
