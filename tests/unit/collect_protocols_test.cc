// Collection protocols (Segment, PostHog, Sensors Data): field-by-field mapping to native
// events, clock-skew correction, identity merges, encodings, limits and exact errors.
// docs/collection.md is the specification these tests check.
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include "ingest/collect_protocol.h"
#include "ingest/posthog_protocol.h"
#include "ingest/segmentio_protocol.h"
#include "ingest/sensors_protocol.h"

namespace ns {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1'763'769'600'000;  // 2025-11-22T00:00:00Z

const TimeZone& Utc() {
  static TimeZone tz = *TimeZone::Load("UTC");
  return tz;
}

std::string Gzip(std::string_view in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Base64(std::string_view in) { return Base64Encode(in); }

const PropValue* Prop(const Event& e, std::string_view key) { return e.Find(key); }
std::string Str(const Event& e, std::string_view key) {
  const PropValue* v = e.Find(key);
  return v ? v->AsString() : "<missing>";
}
std::string PersonSet(const Event& e, std::string_view key, bool once = false) {
  for (const auto& p : once ? e.person_set_once : e.person_set)
    if (p.key == key) return p.value.AsString();
  return "<missing>";
}

CollectRequest Req(std::string_view path, std::string_view body, std::string_view ctype = "application/json") {
  CollectRequest r;
  r.path = path;
  r.method = "POST";
  r.body = body;
  r.content_type = ctype;
  return r;
}

// ------------------------------------------------------------------------- Segment

CollectResult Segment(const CollectRequest& r) {
  auto res = ParseSegmentIo(r, Utc(), kNow, IngestLimits{});
  EXPECT_TRUE(res.ok()) << res.status().ToString();
  return res.ok() ? std::move(res).value() : CollectResult{};
}

TEST(Segment, TrackMapsEveryField) {
  const std::string body = R"({
    "type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "anon-1",
    "messageId": "ajs-123", "timestamp": "2025-11-21T10:00:00Z",
    "properties": {"revenue": 9.5, "currency": "CNY", "$lib": "mine"},
    "context": {"library": {"name": "analytics.js", "version": "5.0"}, "os": {"name": "iOS", "version": "17.2"},
                "device": {"id": "dev-9", "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
                "ip": "203.0.113.7", "locale": "zh-CN", "timezone": "Asia/Shanghai", "userAgent": "UA/1",
                "app": {"name": "Shop", "version": "2.1"},
                "page": {"url": "https://shop.example/cart", "path": "/cart", "referrer": "https://ref.example/", "title": "Cart"},
                "campaign": {"name": "spring", "source": "kol", "medium": "social", "term": "shoes", "content": "v1"},
                "traits": {"plan": "pro"}}})";
  CollectRequest r = Req("/v1/track", body);
  r.basic_user = "nsw_key";
  CollectResult res = Segment(r);
  EXPECT_EQ(res.key, "nsw_key");
  EXPECT_EQ(res.key_source, KeySource::kBasicAuth);
  EXPECT_EQ(res.received, 1u);
  ASSERT_EQ(res.batch.events.size(), 1u);
  const Event& e = res.batch.events[0];
  EXPECT_EQ(e.event, "Order Completed");
  EXPECT_EQ(e.distinct_id, "u1");
  EXPECT_TRUE(e.has_uuid);
  EXPECT_EQ(e.uuid, Uuid::FromClientId("ajs-123"));
  EXPECT_EQ(e.ts_ms, *ParseIsoTimestamp("2025-11-21T10:00:00Z", Utc()));  // no sentAt: taken as is
  EXPECT_EQ(e.merge_with, std::vector<std::string>{"anon-1"});
  EXPECT_EQ(Str(e, "$anon_distinct_id"), "anon-1");
  EXPECT_EQ(Prop(e, "revenue")->num, 9.5);
  EXPECT_EQ(Str(e, "currency"), "CNY");
  EXPECT_EQ(Str(e, "$lib"), "mine") << "event properties win over context";
  EXPECT_EQ(Str(e, "$lib_version"), "5.0");
  EXPECT_EQ(Str(e, "$os"), "iOS");
  EXPECT_EQ(Str(e, "$os_version"), "17.2");
  EXPECT_EQ(Str(e, "$device_id"), "dev-9");
  EXPECT_EQ(Str(e, "$device_manufacturer"), "Apple");
  EXPECT_EQ(Str(e, "$device_model"), "iPhone15,2");
  EXPECT_EQ(Str(e, "$device_type"), "ios");
  EXPECT_EQ(Str(e, "$ip"), "203.0.113.7");
  EXPECT_EQ(Str(e, "$locale"), "zh-CN");
  EXPECT_EQ(Str(e, "$timezone"), "Asia/Shanghai");
  EXPECT_EQ(Str(e, "$user_agent"), "UA/1");
  EXPECT_EQ(Str(e, "$app_name"), "Shop");
  EXPECT_EQ(Str(e, "$app_version"), "2.1");
  EXPECT_EQ(Str(e, "$current_url"), "https://shop.example/cart");
  EXPECT_EQ(Str(e, "$pathname"), "/cart");
  EXPECT_EQ(Str(e, "$referrer"), "https://ref.example/");
  EXPECT_EQ(Str(e, "$title"), "Cart");
  EXPECT_EQ(Str(e, "utm_campaign"), "spring");
  EXPECT_EQ(Str(e, "utm_source"), "kol");
  EXPECT_EQ(Str(e, "utm_medium"), "social");
  EXPECT_EQ(Str(e, "utm_term"), "shoes");
  EXPECT_EQ(Str(e, "utm_content"), "v1");
  EXPECT_EQ(PersonSet(e, "plan"), "pro") << "context.traits are person properties";
}

TEST(Segment, IdentifyPageScreenAliasGroup) {
  const std::string body = R"({"writeKey": "nsw_body", "batch": [
    {"type": "identify", "userId": "u1", "anonymousId": "a1", "traits": {"email": "x@y.z", "age": 30}},
    {"type": "page", "anonymousId": "a1", "name": "Home", "category": "Docs", "properties": {"url": "https://x/"}},
    {"type": "screen", "userId": "u1", "name": "Main"},
    {"type": "alias", "userId": "u1", "previousId": "old-7"},
    {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "ACME"}},
    {"type": "identify", "userId": "u2"}]})";
  CollectResult res = Segment(Req("/v1/batch", body));
  EXPECT_EQ(res.key, "nsw_body");
  EXPECT_EQ(res.key_source, KeySource::kBody);
  ASSERT_EQ(res.batch.events.size(), 6u) << (res.batch.errors.empty() ? "" : res.batch.errors[0].message);
  const auto& ev = res.batch.events;
  EXPECT_EQ(ev[0].event, "$identify");
  EXPECT_EQ(ev[0].distinct_id, "u1");
  EXPECT_EQ(ev[0].merge_with, std::vector<std::string>{"a1"});
  EXPECT_EQ(PersonSet(ev[0], "email"), "x@y.z");
  EXPECT_EQ(PersonSet(ev[0], "age"), "30");
  EXPECT_EQ(ev[1].event, "$pageview");
  EXPECT_EQ(ev[1].distinct_id, "a1");
  EXPECT_TRUE(ev[1].merge_with.empty());
  EXPECT_EQ(Str(ev[1], "name"), "Home");
  EXPECT_EQ(Str(ev[1], "category"), "Docs");
  EXPECT_EQ(Str(ev[1], "url"), "https://x/");
  EXPECT_EQ(ev[2].event, "$screen");
  EXPECT_EQ(Str(ev[2], "name"), "Main");
  EXPECT_EQ(ev[3].event, "$create_alias");
  EXPECT_EQ(ev[3].distinct_id, "u1");
  EXPECT_EQ(ev[3].merge_with, std::vector<std::string>{"old-7"});
  EXPECT_EQ(ev[4].event, "$groupidentify");
  EXPECT_EQ(Str(ev[4], "$group_id"), "g1");
  EXPECT_EQ(Str(ev[4], "$group_set"), R"({"name":"ACME"})");
  EXPECT_TRUE(ev[4].person_set.empty()) << "group traits are not person properties";
  EXPECT_TRUE(ev[5].merge_with.empty()) << "identify without anonymousId merges nothing";
  for (const Event& e : ev) EXPECT_EQ(e.ts_ms, kNow) << "no client time: receive time";
}

TEST(Segment, ClockSkewCorrection) {
  // The client clock is 1 hour fast: sentAt says 01:00 while the server receives at 00:00.
  const std::string body = R"({"sentAt": "2025-11-22T01:00:00Z", "batch": [
    {"type": "track", "event": "a", "userId": "u", "originalTimestamp": "2025-11-22T00:30:00Z"},
    {"type": "track", "event": "b", "userId": "u", "timestamp": "2025-11-22T00:50:00Z"},
    {"type": "track", "event": "c", "userId": "u", "timestamp": "2025-11-21T00:00:00Z",
     "originalTimestamp": "2025-11-22T00:40:00Z", "sentAt": "2025-11-22T00:45:00Z"},
    {"type": "track", "event": "d", "userId": "u"}]})";
  CollectResult res = Segment(Req("/v1/batch", body));
  ASSERT_EQ(res.batch.events.size(), 4u);
  const int64_t min = 60'000;
  EXPECT_EQ(res.batch.events[0].ts_ms, kNow - 30 * min);  // receivedAt - (sentAt - originalTimestamp)
  EXPECT_EQ(res.batch.events[1].ts_ms, kNow - 10 * min);  // timestamp stands in for originalTimestamp
  EXPECT_EQ(res.batch.events[2].ts_ms, kNow - 5 * min);   // the message's own sentAt wins over the batch's
  EXPECT_EQ(res.batch.events[3].ts_ms, kNow);
}

TEST(Segment, PerMessageErrors) {
  const std::string body = R"({"batch": [
    {"type": "track", "event": "ok", "userId": "u"},
    {"type": "track", "event": "x"},
    {"type": "track", "userId": "u"},
    {"type": "launch", "userId": "u"},
    {"type": "alias", "userId": "u"},
    {"type": "group", "userId": "u"},
    {"type": "track", "event": "x", "userId": "u", "timestamp": "yesterday"},
    {"type": "track", "event": "x", "userId": ["u"]},
    {"type": "track", "event": "x", "userId": "u", "properties": [1]},
    {"type": "track", "event": "x", "userId": "u", "timestamp": "1999-01-01T00:00:00Z"},
    7]})";
  CollectResult res = Segment(Req("/v1/batch", body));
  ASSERT_EQ(res.batch.events.size(), 1u);
  ASSERT_EQ(res.batch.errors.size(), 10u);
  struct Want {
    size_t index;
    const char* code;
    const char* field;
    const char* message;
  };
  const Want want[] = {
      {1, "invalid_event", "batch[1].userId", "batch[1]: userId or anonymousId is required"},
      {2, "invalid_event", "batch[2].event", "batch[2].event: a track call needs an event name (string), got nothing"},
      {3, "invalid_event", "batch[3].type",
       "batch[3].type: expected one of track, identify, page, screen, group, alias, got \"launch\""},
      {4, "invalid_event", "batch[4].previousId", "batch[4].previousId: an alias call needs a previousId"},
      {5, "invalid_event", "batch[5].groupId", "batch[5].groupId: a group call needs a groupId"},
      {6, "invalid_timestamp", "batch[6].timestamp", nullptr},
      {7, "invalid_event", "batch[7].userId", "batch[7].userId: expected a string, got array"},
      {8, "invalid_event", "batch[8].properties", "batch[8].properties: expected an object, got array"},
      {9, "invalid_timestamp", "batch[9].timestamp",
       "batch[9].timestamp: timestamp 1999-01-01T00:00:00.000Z is before 2000-01-01 (rejected as implausible)"},
      {10, "invalid_event", "batch[10]", "batch[10]: expected a message object, got number"},
  };
  for (size_t i = 0; i < std::size(want); i++) {
    SCOPED_TRACE(i);
    const EventError& e = res.batch.errors[i];
    EXPECT_EQ(e.index, want[i].index);
    EXPECT_EQ(e.code, want[i].code);
    EXPECT_EQ(e.field, want[i].field);
    if (want[i].message) {
      EXPECT_EQ(e.message, want[i].message);
    }
  }
}

TEST(Segment, WholeRequestErrors) {
  auto r = ParseSegmentIo(Req("/v1/batch", R"({"batch": [)"), Utc(), kNow, IngestLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("body: malformed JSON at byte 11 (line 1, column 12)", 0), 0u)
      << r.status().message();
  r = ParseSegmentIo(Req("/v1/batch", R"({"batch": {}})"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(), "batch: expected an array of messages");
  r = ParseSegmentIo(Req("/v1/track", R"([1])"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(), "body: expected a JSON object (a Segment message, or {\"batch\":[...]}), got array");
  r = ParseSegmentIo(Req("/v1/launch", "{}"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  r = ParseSegmentIo(Req("/v1/track", "{}", "text/csv"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().reason(), ErrorReason::kUnsupportedMediaType);
  EXPECT_EQ(r.status().message(), "unsupported Content-Type 'text/csv' (expected application/json)");
  IngestLimits small;
  small.max_body_bytes = 10;
  r = ParseSegmentIo(Req("/v1/track", R"({"type":"track","event":"x","userId":"u"})"), Utc(), kNow, small);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(r.status().message(), "request body is 41 bytes, over the limit of 10");
}

TEST(Segment, GzipBodyTrailingSlashAndResolver) {
  const std::string gz = Gzip(R"({"writeKey":"nsw_k","type":"track","event":"a","userId":"u",
                                   "timestamp":"2025-11-21 08:00:00"})");
  TimeZone shanghai = *TimeZone::Load("Asia/Shanghai");
  std::string seen;
  KeyResolver resolve = [&](const CollectResult& found) -> StatusOr<const TimeZone*> {
    seen = found.key;
    return &shanghai;
  };
  auto r = ParseSegmentIo(Req("/v1/track/", gz), Utc(), kNow, IngestLimits{}, resolve);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(seen, "nsw_k");
  ASSERT_EQ(r->batch.events.size(), 1u);
  // No offset: local time of the resolved project's zone (UTC+8).
  EXPECT_EQ(r->batch.events[0].ts_ms, *ParseIsoTimestamp("2025-11-21T00:00:00Z", Utc()));
  KeyResolver deny = [](const CollectResult&) -> StatusOr<const TimeZone*> { return Unauthenticated("no"); };
  r = ParseSegmentIo(Req("/v1/track", R"({"type":"track","event":"a","userId":"u"})"), Utc(), kNow, IngestLimits{},
                     deny);
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST(Segment, AcceptsSegmentSizedEventsAndBatches) {
  // Segment documents 32 KB per event and 500 KB per batch: both must pass.
  const std::string blob(32 * 1024, 'x');
  json batch = json::array();
  for (int i = 0; i < 16; i++)  // 16 x 32 KB = 512 KB
    batch.push_back({{"type", "track"},
                     {"event", "big"},
                     {"userId", "u" + std::to_string(i)},
                     {"messageId", "m" + std::to_string(i)},
                     {"properties", {{"blob", blob}}}});
  const std::string body = json{{"batch", batch}}.dump();
  ASSERT_GT(body.size(), 500u * 1024);
  CollectResult res = Segment(Req("/v1/import", body));
  EXPECT_EQ(res.batch.events.size(), 16u);
  EXPECT_TRUE(res.batch.errors.empty());
  IngestLimits tight;
  tight.max_event_bytes = 16 * 1024;
  auto r = ParseSegmentIo(Req("/v1/batch", body), Utc(), kNow, tight);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->batch.errors.size(), 16u);
  EXPECT_EQ(r->batch.errors[0].code, "event_too_large");
}

// ------------------------------------------------------------------------- PostHog

CollectResult PostHog(const CollectRequest& r, int64_t now = kNow) {
  auto res = ParsePostHog(r, Utc(), now, IngestLimits{});
  EXPECT_TRUE(res.ok()) << res.status().ToString();
  return res.ok() ? std::move(res).value() : CollectResult{};
}

TEST(PostHog, BatchWithIdentityAndPersonProperties) {
  const std::string body = R"({"api_key": "nsw_ph", "sent_at": "2025-11-22T00:00:00Z", "batch": [
    {"event": "$pageview", "distinct_id": "anon-1", "uuid": "01a2354d-5322-76d9-88b7-d92770d47019",
     "timestamp": "2025-11-21T23:00:00Z", "properties": {"$current_url": "https://x/", "n": 3}},
    {"event": "$identify", "distinct_id": "u1", "properties": {"$anon_distinct_id": "anon-1",
     "$set": {"email": "a@b.c"}, "$set_once": {"first_seen": "today"}}},
    {"event": "$create_alias", "distinct_id": "u1", "properties": {"alias": "old-id"}},
    {"event": "$merge_dangerously", "distinct_id": "u1", "properties": {"alias": "other-id"}},
    {"event": "signed_up", "properties": {"distinct_id": "u1"}, "$set": {"plan": "free"}}]})";
  CollectResult res = PostHog(Req("/batch/", body));
  EXPECT_EQ(res.key, "nsw_ph");
  EXPECT_EQ(res.key_source, KeySource::kBody);
  ASSERT_EQ(res.batch.events.size(), 5u) << (res.batch.errors.empty() ? "" : res.batch.errors[0].message);
  const auto& ev = res.batch.events;
  EXPECT_EQ(ev[0].uuid.ToString(), "01a2354d-5322-76d9-88b7-d92770d47019");
  EXPECT_EQ(ev[0].ts_ms, kNow - 3'600'000);
  EXPECT_EQ(Prop(ev[0], "n")->num, 3);
  EXPECT_EQ(ev[1].merge_with, std::vector<std::string>{"anon-1"});
  EXPECT_EQ(PersonSet(ev[1], "email"), "a@b.c");
  EXPECT_EQ(PersonSet(ev[1], "first_seen", true), "today");
  EXPECT_EQ(ev[2].merge_with, std::vector<std::string>{"old-id"});
  EXPECT_EQ(ev[3].merge_with, std::vector<std::string>{"other-id"});
  EXPECT_EQ(ev[4].distinct_id, "u1") << "distinct_id inside properties";
  EXPECT_EQ(PersonSet(ev[4], "plan"), "free");
}

TEST(PostHog, TimestampSentAtOffsetAndFutureClamp) {
  const int64_t h = 3'600'000;
  const std::string body = R"([
    {"event": "a", "distinct_id": "u", "timestamp": "2025-11-22T01:30:00Z", "sent_at": "2025-11-22T02:00:00Z"},
    {"event": "b", "distinct_id": "u", "offset": 5000},
    {"event": "c", "distinct_id": "u", "timestamp": "2025-11-23T00:00:00Z"},
    {"event": "d", "distinct_id": "u", "timestamp": "2025-11-22T22:00:00Z"},
    {"event": "e", "distinct_id": "u", "timestamp": 1763769000000},
    {"event": "f", "distinct_id": "u", "timestamp": "2025-11-21T00:00:00Z", "sent_at": "2025-11-22T02:00:00Z",
     "properties": {"$ignore_sent_at": true}},
    {"event": "g", "distinct_id": "u", "timestamp": "not a time"}])";
  CollectResult res = PostHog(Req("/e", body, "text/plain"));
  ASSERT_EQ(res.batch.events.size(), 6u);
  const auto& ev = res.batch.events;
  EXPECT_EQ(ev[0].ts_ms, kNow - h / 2);  // now + (timestamp - sent_at)
  EXPECT_EQ(ev[1].ts_ms, kNow - 5000);   // now - offset
  EXPECT_EQ(ev[2].ts_ms, kNow) << "24 h ahead: clamped";
  EXPECT_EQ(ev[3].ts_ms, kNow + 22 * h) << "22 h ahead: kept";
  EXPECT_EQ(ev[4].ts_ms, 1'763'769'000'000);
  EXPECT_EQ(ev[5].ts_ms, kNow - 24 * h);
  ASSERT_EQ(res.batch.errors.size(), 1u);
  EXPECT_EQ(res.batch.errors[0].code, "invalid_timestamp");
  EXPECT_EQ(res.batch.errors[0].field, "batch[6].timestamp");
}

TEST(PostHog, SingleEventKeysAndEngage) {
  CollectResult one =
      PostHog(Req("/capture", R"({"event": "x", "distinct_id": 42, "properties": {"token": "nsw_t"}})"));
  EXPECT_EQ(one.key, "nsw_t");
  ASSERT_EQ(one.batch.events.size(), 1u);
  EXPECT_EQ(one.batch.events[0].distinct_id, "42");
  CollectResult tok = PostHog(Req("/i/v0/e/", R"({"event": "x", "distinct_id": "d", "$token": "nsw_s"})"));
  EXPECT_EQ(tok.key, "nsw_s");
  CollectRequest q = Req("/track", R"({"event": "x", "distinct_id": "d"})");
  q.query = {{"api_key", "nsw_q"}};
  EXPECT_EQ(PostHog(q).key_source, KeySource::kQuery);
  CollectResult engage =
      PostHog(Req("/engage/", R"({"$set": {"city": "Hangzhou"}, "$token": "nsw_e", "$distinct_id": "u9"})"));
  ASSERT_EQ(engage.batch.events.size(), 1u);
  EXPECT_EQ(engage.batch.events[0].event, "$identify");
  EXPECT_EQ(engage.batch.events[0].distinct_id, "u9");
  EXPECT_EQ(PersonSet(engage.batch.events[0], "city"), "Hangzhou");
  auto two = ParsePostHog(Req("/batch", R"([{"event":"a","distinct_id":"d","api_key":"nsw_1"},
                                              {"event":"a","distinct_id":"d","api_key":"nsw_2"}])"),
                          Utc(), kNow, IngestLimits{});
  EXPECT_EQ(two.status().code(), StatusCode::kUnauthenticated);
  CollectResult missing = PostHog(Req("/batch", R"({"batch": [{"event": "a"}, {"distinct_id": "d"}]})"));
  ASSERT_EQ(missing.batch.errors.size(), 2u);
  EXPECT_EQ(missing.batch.errors[0].message,
            "batch[0].distinct_id: required, at the top level of the event or in its properties");
  EXPECT_EQ(missing.batch.errors[1].message, "batch[1].event: required field is missing");
}

TEST(PostHog, Encodings) {
  const std::string payload = R"({"api_key":"nsw_g","batch":[{"event":"a","distinct_id":"d"}]})";
  // gzip by magic bytes, and as announced by ?compression=gzip-js
  EXPECT_EQ(PostHog(Req("/batch", Gzip(payload), "text/plain")).batch.events.size(), 1u);
  const std::string gz = Gzip(payload);
  CollectRequest announced = Req("/batch", gz, "text/plain");
  announced.query = {{"compression", "gzip-js"}, {"_", "1763769600000"}};
  EXPECT_EQ(PostHog(announced).batch.events.size(), 1u);
  CollectRequest liar = Req("/batch", payload, "text/plain");
  liar.query = {{"compression", "gzip"}};
  auto r = ParsePostHog(liar, Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(), "body: compression=gzip but the data is not gzip");
  // base64 in a form field data= (the browser SDK's base64 mode), also with '+' turned into ' '
  CollectRequest form = Req("/e/", "", "application/x-www-form-urlencoded");
  form.query = {{"data", Base64(payload)}, {"compression", "base64"}};
  EXPECT_EQ(PostHog(form).batch.events.size(), 1u);
  const std::string plus = Base64(R"({"event":"a>>>","distinct_id":"d","api_key":"nsw_p"})");
  ASSERT_NE(plus.find('+'), std::string::npos);
  std::string spaced = plus;
  for (char& c : spaced)
    if (c == '+') c = ' ';
  CollectRequest get = Req("/e", "", "");
  get.method = "GET";
  get.query = {{"data", spaced}};
  CollectResult g = PostHog(get);
  ASSERT_EQ(g.batch.events.size(), 1u);
  EXPECT_EQ(g.batch.events[0].event, "a>>>");
  // base64 of gzip in the body
  EXPECT_EQ(PostHog(Req("/batch", Base64(Gzip(payload)), "text/plain")).batch.events.size(), 1u);
  CollectRequest lz = Req("/e", "N4IgLg", "application/x-www-form-urlencoded");
  lz.query = {{"compression", "lz64"}, {"data", "N4IgLg"}};
  r = ParsePostHog(lz, Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "compression=lz64 (lz-string) is not supported; configure the SDK with compression gzip-js or base64, or "
            "none");
  r = ParsePostHog(Req("/batch", "%%%", "text/plain"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(), "body is neither JSON, gzip nor base64: invalid base64 at byte 0: '%'");
  r = ParsePostHog(Req("/batch", "{}", "image/png"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().reason(), ErrorReason::kUnsupportedMediaType);
  r = ParsePostHog(Req("/decide", "{}"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

// ------------------------------------------------------------------------- Sensors Data

CollectRequest SensorsForm(const std::string& records, bool gzip, const char* field = "data_list") {
  CollectRequest r = Req("/sa", "", "application/x-www-form-urlencoded");
  r.query = {{"project", "default"}, {field, Base64(gzip ? Gzip(records) : records)}, {"gzip", gzip ? "1" : "0"}};
  return r;
}

CollectResult Sensors(const CollectRequest& r) {
  auto res = ParseSensors(r, Utc(), kNow, IngestLimits{});
  EXPECT_TRUE(res.ok()) << res.status().ToString();
  return res.ok() ? std::move(res).value() : CollectResult{};
}

TEST(Sensors, RecordTypes) {
  const std::string records = R"([
    {"_track_id": 123456789, "type": "track", "event": "Buy", "time": 1763769000000, "distinct_id": "dev-1",
     "properties": {"price": 3, "$lib": "Node"}, "lib": {"$lib": "Node", "$lib_version": "1.2.6", "$lib_method": "code"}},
    {"type": "track_signup", "event": "$SignUp", "time": 1763769000001, "distinct_id": "u1", "original_id": "dev-1",
     "properties": {"from": "ad"}},
    {"type": "profile_set", "distinct_id": "u1", "time": 1763769000002, "properties": {"age": 30, "city": "Hangzhou"}},
    {"type": "profile_set_once", "distinct_id": "u1", "properties": {"first": "2025-11-21"}},
    {"type": "profile_increment", "distinct_id": "u1", "properties": {"orders": 2}},
    {"type": "profile_append", "distinct_id": "u1", "properties": {"tags": ["a", "b"]}},
    {"type": "profile_unset", "distinct_id": "u1", "properties": {"age": true}},
    {"type": "track", "event": "Login", "distinct_id": "u2", "anonymous_id": "dev-2", "properties": {"$is_login_id": true}},
    {"type": "track", "event": "View", "distinct_id": "u3",
     "identities": {"$identity_login_id": "u3", "$identity_anonymous_id": "dev-3", "$identity_idfv": "idfv-3"}},
    {"type": "track", "event": "Anon", "distinct_id": "dev-4", "anonymous_id": "dev-4b"}])";
  CollectRequest r = SensorsForm(records, true);
  r.query.push_back({"token", "nsw_sa"});
  CollectResult res = Sensors(r);
  EXPECT_EQ(res.key, "nsw_sa");
  EXPECT_EQ(res.key_source, KeySource::kQuery);
  EXPECT_EQ(res.project_name, "default");
  EXPECT_EQ(res.received, 10u);
  ASSERT_EQ(res.batch.events.size(), 10u) << (res.batch.errors.empty() ? "" : res.batch.errors[0].message);
  const auto& ev = res.batch.events;
  EXPECT_EQ(ev[0].event, "Buy");
  EXPECT_EQ(ev[0].ts_ms, 1'763'769'000'000);
  EXPECT_TRUE(ev[0].has_uuid);
  EXPECT_EQ(Prop(ev[0], "price")->num, 3);
  EXPECT_EQ(Str(ev[0], "$lib_version"), "1.2.6") << "lib fields become properties";
  EXPECT_EQ(Str(ev[0], "$lib_method"), "code");
  EXPECT_EQ(ev[1].event, "$SignUp");
  EXPECT_EQ(ev[1].merge_with, std::vector<std::string>{"dev-1"});
  EXPECT_FALSE(ev[1].has_uuid) << "no _track_id: no dedup id";
  EXPECT_EQ(ev[2].event, "$profile_set");
  EXPECT_EQ(PersonSet(ev[2], "age"), "30");
  EXPECT_EQ(PersonSet(ev[2], "city"), "Hangzhou");
  EXPECT_EQ(ev[3].event, "$profile_set_once");
  EXPECT_EQ(PersonSet(ev[3], "first", true), "2025-11-21");
  EXPECT_EQ(ev[3].ts_ms, kNow) << "no time: receive time";
  EXPECT_EQ(ev[4].event, "$profile_increment");
  EXPECT_EQ(Prop(ev[4], "orders")->num, 2);
  EXPECT_TRUE(ev[4].person_set.empty()) << "increments are not person properties (docs/decisions.md)";
  EXPECT_EQ(ev[5].event, "$profile_append");
  EXPECT_EQ(Str(ev[5], "tags"), R"(["a","b"])");
  EXPECT_EQ(ev[6].event, "$profile_unset");
  EXPECT_EQ(ev[7].merge_with, std::vector<std::string>{"dev-2"}) << "$is_login_id: anonymous_id merges";
  EXPECT_EQ(ev[8].merge_with, (std::vector<std::string>{"dev-3", "idfv-3"})) << "identities merge";
  EXPECT_TRUE(ev[9].merge_with.empty()) << "anonymous_id without login merges nothing";
}

TEST(Sensors, TrackIdMakesRetriesDuplicates) {
  const std::string rec =
      R"([{"_track_id": 42, "type": "track", "event": "a", "time": 1763769000000, "distinct_id": "d"},
                              {"_track_id": 42, "type": "track", "event": "a", "time": 1763769000001, "distinct_id": "d"}])";
  CollectResult a = Sensors(SensorsForm(rec, true));
  CollectResult b = Sensors(SensorsForm(rec, false));
  ASSERT_EQ(a.batch.events.size(), 2u);
  ASSERT_EQ(b.batch.events.size(), 2u);
  EXPECT_EQ(a.batch.events[0].uuid, b.batch.events[0].uuid) << "the same record, gzip or not";
  EXPECT_NE(a.batch.events[0].uuid, a.batch.events[1].uuid) << "same _track_id, other time: another record";
}

TEST(Sensors, SingleRecordAndErrors) {
  CollectResult one = Sensors(SensorsForm(R"({"type":"track","event":"a","distinct_id":"d"})", false, "data"));
  ASSERT_EQ(one.batch.events.size(), 1u);
  CollectRequest none = Req("/sa", "", "");
  auto r = ParseSensors(none, Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(),
            "no data: send the records as the form field or query parameter data_list=<base64> (an array) or "
            "data=<base64> (one record)");
  CollectRequest notgz = SensorsForm("[]", false);
  notgz.query[2].second = "1";
  r = ParseSensors(notgz, Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(), "data_list: gzip=1 but the decoded data is not gzip");
  CollectRequest bad = Req("/sa", "", "");
  bad.query = {{"data_list", "@@@"}};
  r = ParseSensors(bad, Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().message(), "data_list: invalid base64 at byte 0: '@'");
  CollectResult errs = Sensors(SensorsForm(R"([{"type":"item_set","distinct_id":"d"},{"type":"track","distinct_id":"d"},
                                               {"type":"track","event":"a"},{"type":"track","event":"a","distinct_id":"d","time":"x"}])",
                                           true));
  ASSERT_EQ(errs.batch.errors.size(), 4u);
  EXPECT_EQ(errs.batch.errors[0].message,
            "data_list[0].type: expected track, track_signup, track_id_bind, profile_set, profile_set_once, "
            "profile_increment, profile_append or profile_unset, got \"item_set\"");
  EXPECT_EQ(errs.batch.errors[1].message, "data_list[1].event: a track record needs an event name (string)");
  EXPECT_EQ(errs.batch.errors[2].message, "data_list[2].distinct_id: required field is missing");
  EXPECT_EQ(errs.batch.errors[3].code, "invalid_timestamp");
  r = ParseSensors(Req("/sa", "{}", "application/json"), Utc(), kNow, IngestLimits{});
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().reason(), ErrorReason::kUnsupportedMediaType);
}

// ------------------------------------------------------------------------- shared

TEST(Base64, StandardUrlSafeAndErrors) {
  EXPECT_EQ(*Base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(*Base64Decode("aGVsbG8"), "hello") << "padding optional";
  EXPECT_EQ(*Base64Decode("aGVs\nbG8="), "hello") << "line breaks skipped";
  EXPECT_EQ(*Base64Decode("-_8="), *Base64Decode("+/8="));
  EXPECT_EQ(*Base64Decode(" /8="), *Base64Decode("+/8=")) << "space is a form-decoded '+'";
  EXPECT_EQ(Base64Decode("aGVsbG8=x").status().message(), "invalid base64 at byte 8: 'x' after '=' padding");
  EXPECT_EQ(Base64Decode("a").status().message(), "invalid base64: truncated input (1 digits)");
  EXPECT_EQ(Base64Decode(std::string("\x01", 1)).status().message(), "invalid base64 at byte 0: byte 1");
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)})
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_EQ(Base64Encode("hell"), "aGVsbA==");
}

}  // namespace
}  // namespace ns
