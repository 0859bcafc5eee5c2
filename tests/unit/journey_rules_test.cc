// The journey engine's pure rules (automation/journey_rules.h) and the journey document's
// validation (automation/journey_doc.h): the send state machine, quiet hours across time-zone
// and DST edges, caps, the holdout assignment and templates.
#include "automation/journey_rules.h"

#include <gtest/gtest.h>

#include <climits>

#include "automation/journey_doc.h"
#include "automation/journeys.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ns::testing::StatusIs;
using ::testing::HasSubstr;

// ---- the send state machine

TEST(SendStateMachine, EveryTransitionItHas) {
  struct Case {
    SendState from;
    SendEvent event;
    int attempts, max;
    SendState to;
  } cases[] = {
      {SendState::kPending, SendEvent::kClaim, 0, 5, SendState::kSending},
      {SendState::kFailed, SendEvent::kClaim, 1, 5, SendState::kSending},
      {SendState::kSending, SendEvent::kDelivered, 1, 5, SendState::kSent},
      {SendState::kSending, SendEvent::kAttemptFailed, 1, 5, SendState::kFailed},
      {SendState::kSending, SendEvent::kAttemptFailed, 4, 5, SendState::kFailed},
      {SendState::kSending, SendEvent::kAttemptFailed, 5, 5, SendState::kDead},
      {SendState::kSending, SendEvent::kAttemptFailed, 1, 1, SendState::kDead},
      {SendState::kSending, SendEvent::kRecover, 1, 5, SendState::kPending},
      {SendState::kDead, SendEvent::kRetry, 5, 5, SendState::kPending},
  };
  for (const Case& c : cases) {
    auto to = NextSendState(c.from, c.event, c.attempts, c.max);
    ASSERT_TRUE(to.ok()) << SendStateName(c.from);
    EXPECT_EQ(*to, c.to) << SendStateName(c.from) << " -> " << SendStateName(*to);
  }
}

TEST(SendStateMachine, RefusesEveryOtherTransition) {
  // A sent message is final: nothing sends it again (the exactly-once half that is ours).
  for (SendEvent e :
       {SendEvent::kClaim, SendEvent::kDelivered, SendEvent::kAttemptFailed, SendEvent::kRecover, SendEvent::kRetry})
    EXPECT_THAT(NextSendState(SendState::kSent, e, 1, 5).status(), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_FALSE(NextSendState(SendState::kSending, SendEvent::kClaim, 1, 5).ok());  // claimed twice
  EXPECT_FALSE(NextSendState(SendState::kPending, SendEvent::kDelivered, 0, 5).ok());
  EXPECT_FALSE(NextSendState(SendState::kPending, SendEvent::kRetry, 0, 5).ok());
  EXPECT_FALSE(NextSendState(SendState::kDead, SendEvent::kClaim, 5, 5).ok());
  EXPECT_FALSE(NextSendState(SendState::kFailed, SendEvent::kRecover, 1, 5).ok());
}

TEST(SendStateMachine, NamesRoundTrip) {
  for (SendState s : {SendState::kPending, SendState::kSending, SendState::kSent, SendState::kFailed, SendState::kDead})
    EXPECT_EQ(*ParseSendState(SendStateName(s)), s);
  EXPECT_THAT(ParseSendState("gone").status(), StatusIs(StatusCode::kCorruption));
}

TEST(RetryDelay, DoublesFromTheBackoffUpToAnHour) {
  EXPECT_EQ(RetryDelayMs(1, 30), 30'000);
  EXPECT_EQ(RetryDelayMs(2, 30), 60'000);
  EXPECT_EQ(RetryDelayMs(3, 30), 120'000);
  EXPECT_EQ(RetryDelayMs(20, 30), 3'600'000);
  EXPECT_EQ(RetryDelayMs(1, 3600), 3'600'000);
}

// ---- quiet hours

int64_t At(const TimeZone& tz, const char* local) { return *ParseIsoTimestamp(local, tz); }

TEST(QuietHours, WrappingMidnightInShanghai) {
  TimeZone tz = *TimeZone::Load("Asia/Shanghai");
  const std::string q = "22:00-08:00";
  // Outside: now.
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 12:00:00"), tz, q), At(tz, "2026-12-06 12:00:00"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 21:59:59"), tz, q), At(tz, "2026-12-06 21:59:59"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 08:00:00"), tz, q), At(tz, "2026-12-06 08:00:00"));
  // Inside, before midnight: tomorrow 08:00 local; after midnight: today 08:00.
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 22:00:00"), tz, q), At(tz, "2026-12-07 08:00:00"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 23:59:00"), tz, q), At(tz, "2026-12-07 08:00:00"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-07 00:00:00"), tz, q), At(tz, "2026-12-07 08:00:00"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-07 07:59:59"), tz, q), At(tz, "2026-12-07 08:00:00"));
  // The local day, not the UTC day: 23:30 in Shanghai is 15:30 UTC of the same date.
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-31 23:30:00"), tz, q), At(tz, "2027-01-01 08:00:00"));
  // Empty: never quiet.
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 23:00:00"), tz, ""), At(tz, "2026-12-06 23:00:00"));
}

TEST(QuietHours, NotWrapping) {
  TimeZone tz = *TimeZone::Load("Asia/Shanghai");
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 12:30:00"), tz, "12:00-14:00"), At(tz, "2026-12-06 14:00:00"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 14:00:00"), tz, "12:00-14:00"), At(tz, "2026-12-06 14:00:00"));
  EXPECT_EQ(QuietHoursRelease(At(tz, "2026-12-06 11:59:00"), tz, "12:00-14:00"), At(tz, "2026-12-06 11:59:00"));
}

TEST(QuietHours, AcrossDaylightSavingChanges) {
  TimeZone ny = *TimeZone::Load("America/New_York");
  // 2026-03-08: clocks go 02:00 -> 03:00. Quiet 01:00-02:30: 02:30 does not exist that night;
  // the release is the first valid instant after the gap (03:00 EDT = 07:00 UTC).
  int64_t r = QuietHoursRelease(At(ny, "2026-03-08T01:30:00-05:00"), ny, "01:00-02:30");
  EXPECT_EQ(r, At(ny, "2026-03-08T07:00:00Z"));
  // 2026-11-01: 01:00-02:00 happens twice. Quiet 22:00-07:00 across it ends at 07:00 EST,
  // which is 9 hours after 22:00 EDT, not 8.
  int64_t start = At(ny, "2026-10-31T22:00:00-04:00");
  EXPECT_EQ(QuietHoursRelease(start, ny, "22:00-07:00") - start, 10 * 3'600'000);
  // The same window in Shanghai (no DST) is 9 hours.
  TimeZone sh = *TimeZone::Load("Asia/Shanghai");
  int64_t s2 = At(sh, "2026-10-31 22:00:00");
  EXPECT_EQ(QuietHoursRelease(s2, sh, "22:00-07:00") - s2, 9 * 3'600'000);
}

// ---- caps and the holdout

TEST(Caps, FrequencyAndRate) {
  EXPECT_TRUE(FrequencyAllows(0, 1));
  EXPECT_FALSE(FrequencyAllows(1, 1));
  EXPECT_TRUE(FrequencyAllows(2, 3));
  EXPECT_FALSE(FrequencyAllows(3, 3));
  EXPECT_TRUE(FrequencyAllows(1000, 0));  // no cap
  EXPECT_EQ(RateBudget(0, 60, 500), 60);
  EXPECT_EQ(RateBudget(59, 60, 500), 1);
  EXPECT_EQ(RateBudget(60, 60, 500), 0);
  EXPECT_EQ(RateBudget(90, 60, 500), 0);
  EXPECT_EQ(RateBudget(10, 60, 5), 5);
  EXPECT_EQ(RateBudget(1000, 0, 7), 7);  // unlimited
}

TEST(Holdout, DeterministicAndTheRequestedShare) {
  int in = 0;
  const int n = 200'000;
  for (int i = 0; i < n; i++) {
    std::string id = "u" + std::to_string(i);
    bool h = InHoldout(14, id, 10);
    EXPECT_EQ(h, InHoldout(14, id, 10));
    in += h;
  }
  EXPECT_NEAR(in / double(n), 0.10, 0.005);
  EXPECT_FALSE(InHoldout(14, "u1", 0));
  // Independent between journeys: a person held out of one is not held out of all.
  int64_t both = 0;
  for (int i = 0; i < 1000; i++)
    both += InHoldout(1, "u" + std::to_string(i), 50) == InHoldout(2, "u" + std::to_string(i), 50);
  EXPECT_GT(both, 400);  // about half agree
  EXPECT_LT(both, 600);
}

TEST(Keys, IdempotencyKeyAndEndDate) {
  EXPECT_EQ(IdempotencyKey(3, 42, 2), "nsj-3-42-2");
  TimeZone tz = *TimeZone::Load("Asia/Shanghai");
  EXPECT_EQ(EndOfLocalDate("", tz), INT64_MAX);
  EXPECT_EQ(EndOfLocalDate("2026-12-06", tz), At(tz, "2026-12-07 00:00:00"));
}

TEST(Templates, PersonPropertiesAndUnknowns) {
  auto lookup = [](const std::string& k) -> std::string {
    if (k == "person.city") return "杭州";
    if (k == "distinct_id") return "u1";
    return "";
  };
  EXPECT_EQ(RenderTemplate("Hi {{distinct_id}} in {{ person.city }}!", lookup), "Hi u1 in 杭州!");
  EXPECT_EQ(RenderTemplate("{{person.none}}|{{x", lookup), "|{{x");
  EXPECT_EQ(RenderTemplate("no braces", lookup), "no braces");
}

// ---- the document

json Valid() {
  return json::parse(R"({"name":"Coupon","trigger":{"type":"event","event":"register"},
    "steps":[{"type":"wait","hours":24},{"type":"condition","event":"pay","performed":false},
             {"type":"action","action":"webhook","url":"https://hooks.example.com/x","secret":"k"}],
    "limits":{"quiet_hours":"22:00-08:00","frequency_cap":{"max":1,"hours":24},"rate_per_minute":100,
              "end_date":"2027-01-31"},
    "holdout_percent":10,"goal":{"event":"pay","within_days":7}})");
}

TEST(JourneyDoc, RoundTripAndSecretHidden) {
  auto d = JourneyDoc::Parse(Valid());
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->steps[0].wait_ms, 24 * 3'600'000);
  EXPECT_EQ(d->FirstAction(), 2u);
  json stored = d->ToJson(true);
  EXPECT_EQ(JourneyDoc::Parse(stored)->ToJson(true), stored);
  json shown = d->ToJson(false);
  EXPECT_FALSE(shown["steps"][2].contains("secret"));
  EXPECT_TRUE(shown["steps"][2]["secret_set"].get<bool>());
}

TEST(JourneyDoc, ErrorsNameTheField) {
  struct Case {
    const char* pointer;
    json value;
    const char* field;
  } cases[] = {
      {"/trigger/type", "webhook", "trigger.type"},
      {"/steps/0/hours", -1, "steps[0].hours"},
      {"/steps/1/performed", "no", "steps[1].performed"},
      {"/steps/2/url", "ftp://x", "steps[2].url"},
      {"/steps/2/action", "sms", "steps[2].action"},
      {"/limits/quiet_hours", "22:00", "limits.quiet_hours"},
      {"/limits/frequency_cap/max", 0, "limits.frequency_cap.max"},
      {"/limits/end_date", "2027-02-30", "limits.end_date"},
      {"/holdout_percent", 91, "holdout_percent"},
      {"/goal/within_days", 0, "goal.within_days"},
      {"/colour", "red", "colour"},
  };
  for (const Case& c : cases) {
    json j = Valid();
    j[json::json_pointer(c.pointer)] = c.value;
    EXPECT_THAT(JourneyDoc::Parse(j).status(), StatusIs(StatusCode::kInvalidArgument, ::testing::_, c.field))
        << c.pointer;
  }
  json no_action = Valid();
  no_action["steps"] = json::array({json{{"type", "wait"}, {"hours", 1}}});
  EXPECT_THAT(JourneyDoc::Parse(no_action).status(),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("at least one action"), "steps"));
}

}  // namespace
}  // namespace ns
