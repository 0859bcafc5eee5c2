// The simdjson On-Demand fast paths of ParseNativeBatch (JSON and NDJSON) and ParseSegmentIo
// against their nlohmann DOM references (ParseNativeBatchDom, ParseSegmentIoDom) on many
// random and adversarial bodies: nested properties, unicode escapes, big and odd numbers,
// repeated keys, wrong types, bad ids and timestamps, truncated and corrupted input. The two
// must give identical events (every field, doubles bit for bit) and identical errors and
// statuses (ingest/ondemand_json.h). The counters check that valid input does take the fast
// path, so the comparison is not vacuous.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/time_zone.h"
#include "ingest/native_parser.h"
#include "ingest/ondemand_json.h"
#include "ingest/segmentio_protocol.h"

namespace ns {
namespace {

constexpr int64_t kNow = 1'795'320'000'000;  // 2026-11-22T04:00:00Z

// NS_FAST_PATH_SCALE=N runs N times as many random bodies (for a longer local search).
uint64_t Scale() {
  const char* s = std::getenv("NS_FAST_PATH_SCALE");
  return s != nullptr && std::atoi(s) > 0 ? static_cast<uint64_t>(std::atoi(s)) : 1;
}

const TimeZone& Zone(size_t i) {
  static const TimeZone zones[3] = {*TimeZone::Load("UTC"), *TimeZone::Load("Asia/Shanghai"),
                                    *TimeZone::Load("America/New_York")};
  return zones[i % 3];
}

std::string Hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string Describe(const PropValue& v) {
  if (v.kind == PropValue::kNum) {
    uint64_t bits;
    std::memcpy(&bits, &v.num, sizeof bits);
    return "num:" + std::to_string(bits);
  }
  return (v.kind == PropValue::kStr ? "str:" : "json:") + Hex(v.str);
}

std::string Describe(const std::vector<Property>& props) {
  std::string out = "{";
  for (const Property& p : props) out += Hex(p.key) + "=" + Describe(p.value) + ";";
  return out + "}";
}

std::string Describe(const ParsedBatch& b) {
  std::string out;
  for (const Event& e : b.events) {
    out += "event " + Hex(e.event) + " did=" + Hex(e.distinct_id) + " ts=" + std::to_string(e.ts_ms) +
           " uuid=" + (e.has_uuid ? e.uuid.ToString() : std::string("-")) + " props=" + Describe(e.props) +
           " set=" + Describe(e.person_set) + " set_once=" + Describe(e.person_set_once) + " merge=";
    for (const auto& m : e.merge_with) out += Hex(m) + ",";
    out += "\n";
  }
  for (const EventError& e : b.errors)
    out += "error " + std::to_string(e.index) + " " + e.code + " " + Hex(e.field) + " " + Hex(e.message) + "\n";
  return out;
}

std::string Describe(const StatusOr<ParsedBatch>& r) {
  if (!r.ok()) return "status " + r.status().ToString() + " field=" + r.status().field();
  return Describe(*r);
}

std::string Describe(const StatusOr<CollectResult>& r) {
  if (!r.ok()) return "status " + r.status().ToString() + " field=" + r.status().field();
  return "key=" + Hex(r->key) + " source=" + std::to_string(static_cast<int>(r->key_source)) +
         " received=" + std::to_string(r->received) + "\n" + Describe(r->batch);
}

// --- Random JSON pieces ---

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  template <typename T>
  const T& OneOf(const std::vector<T>& v) {
    return v[Pick(v.size())];
  }

  // The inside of a JSON string literal (already escaped).
  std::string StringBody() {
    static const std::vector<std::string> pieces = {"a",
                                                    "user",
                                                    "u_1",
                                                    "Beijing",
                                                    "\xC3\xA9",
                                                    "\xE4\xB8\xAD\xE6\x96\x87",
                                                    "\xF0\x9F\x98\x80",
                                                    "\\u00e9",
                                                    "\\ud83d\\ude00",
                                                    "\\n",
                                                    "\\\"",
                                                    "\\/",
                                                    "\\\\",
                                                    "\\u0000",
                                                    "\\u001f",
                                                    "\\t",
                                                    " ",
                                                    "\\u0041",
                                                    "$",
                                                    "\\u007f",
                                                    "x",
                                                    "0"};
    static const std::vector<std::string> rare = {"\\ud800", "\\udc00", "\\x", "\x01", "\xFF", "\xC3", "\\u12"};
    if (Chance(0.02)) return OneOf(rare);
    if (Chance(0.03)) return std::string(Pick(2) ? 201 : 1100, 'k');
    if (Chance(0.05)) return "";
    std::string s;
    for (size_t n = 1 + Pick(4); n > 0; n--) s += OneOf(pieces);
    return s;
  }
  std::string String() { return "\"" + StringBody() + "\""; }

  std::string Number() {
    static const std::vector<std::string> odd = {"0",
                                                 "-0",
                                                 "1.5",
                                                 "1e2",
                                                 "1E+2",
                                                 "-1.25e-3",
                                                 "123456789012345678",
                                                 "9223372036854775807",
                                                 "9223372036854775808",
                                                 "-9223372036854775808",
                                                 "-9223372036854775809",
                                                 "18446744073709551615",
                                                 "18446744073709551616",
                                                 "1e400",
                                                 "1e-400",
                                                 "0.1",
                                                 "3.141592653589793238462643383279",
                                                 "2.2250738585072011e-308",
                                                 "4.9e-324",
                                                 "1.7976931348623157e308",
                                                 "100000000000000000000000",
                                                 "-0.0",
                                                 "1e15",
                                                 "1e16",
                                                 "01",
                                                 "1.",
                                                 "-",
                                                 ".5"};
    if (Chance(0.3)) return OneOf(odd);
    if (Chance(0.5)) return std::to_string(static_cast<int64_t>(rng_() % 2000000) - 1000000);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", std::uniform_real_distribution<double>(-1e6, 1e6)(rng_));
    return buf;
  }

  std::string Key() {
    static const std::vector<std::string> keys = {"plan",     "amount",    "channel",           "a",       "b",
                                                  "$set",     "$set_once", "$anon_distinct_id", "alias",   "name",
                                                  "category", "",          "\\u0061",           "z\\u00e9"};
    return "\"" + (Chance(0.8) ? OneOf(keys) : StringBody()) + "\"";
  }

  std::string Value(int depth) {
    const size_t k = Pick(depth > 0 ? 8 : 6);
    switch (k) {
      case 0:
      case 1: return String();
      case 2: return Number();
      case 3: return Chance(0.5) ? "true" : "false";
      case 4: return Chance(0.9) ? "null" : OneOf(std::vector<std::string>{"nul", "tru", "nulll"});
      case 5: return Number();
      case 6: return Object(depth - 1);
      default: {
        std::string s = "[";
        for (size_t n = Pick(4); n > 0; n--) s += Value(depth - 1) + (n > 1 ? "," : "");
        return s + "]";
      }
    }
  }

  std::string Object(int depth, size_t max_members = 5) {
    std::string s = "{";
    for (size_t n = Pick(max_members + 1); n > 0; n--) s += Key() + ":" + Value(depth) + (n > 1 ? "," : "");
    return s + "}";
  }

  std::string Timestamp() {
    static const std::vector<std::string> ts = {"\"2026-11-21T10:00:00Z\"",
                                                "\"2026-11-21T10:00:00.123Z\"",
                                                "\"2026-11-21 10:00:00\"",
                                                "\"2026-11-21T10:00:00+08:00\"",
                                                "\"2026-11-21\"",
                                                "\"2026-13-01T00:00:00Z\"",
                                                "\"yesterday\"",
                                                "\"1999-12-31T23:59:59Z\"",
                                                "\"2026-11-24T00:00:00Z\"",
                                                "1795310000000",
                                                "1795310000000.75",
                                                "946684799999",
                                                "1e300",
                                                "18446744073709551615",
                                                "null",
                                                "true",
                                                "{}",
                                                "-5"};
    return OneOf(ts);
  }

  std::string Id() {
    if (Chance(0.85)) return "\"u" + std::to_string(Pick(50)) + "\"";
    static const std::vector<std::string> odd = {
        "42", "-0", "1.5", "null", "true", "\"\"", "{}", "18446744073709551615", "\"a\\u0001b\"", "[1]"};
    return Chance(0.5) ? OneOf(odd) : String();
  }

  std::string_view Whitespace() {
    return Chance(0.8) ? "" : OneOf(std::vector<std::string_view>{" ", "\n", "\t ", "\r\n"});
  }

  // Joins members in a random order, sometimes repeating one (a repeated key).
  std::string Members(std::vector<std::string> members) {
    std::shuffle(members.begin(), members.end(), rng_);
    if (!members.empty() && Chance(0.1)) members.push_back(members[Pick(members.size())]);
    std::string s = "{";
    for (size_t i = 0; i < members.size(); i++) s += (i ? "," : "") + std::string(Whitespace()) + members[i];
    return s + std::string(Whitespace()) + "}";
  }

  std::string NativeEvent() {
    std::vector<std::string> m;
    if (Chance(0.97))
      m.push_back("\"event\":" + (Chance(0.9) ? "\"" +
                                                    OneOf(std::vector<std::string>{"signup", "pay", "$create_alias",
                                                                                   "$identify", "page_view"}) +
                                                    "\""
                                              : Value(1)));
    if (Chance(0.97)) m.push_back(std::string(Chance(0.05) ? "\"distinct\\u005fid\"" : "\"distinct_id\"") + ":" + Id());
    if (Chance(0.5))
      m.push_back("\"uuid\":" + (Chance(0.8) ? "\"id-" + std::to_string(rng_()) + "\"" : Chance(0.5) ? Id() : "null"));
    if (Chance(0.8)) m.push_back("\"timestamp\":" + Timestamp());
    if (Chance(0.85)) m.push_back("\"properties\":" + (Chance(0.93) ? Object(2, 7) : Value(1)));
    if (Chance(0.15)) m.push_back("\"$set\":" + (Chance(0.8) ? Object(1) : Value(1)));
    if (Chance(0.1)) m.push_back("\"$set_once\":" + Object(1));
    if (Chance(0.2)) m.push_back(Key() + ":" + Value(2));
    return Members(std::move(m));
  }

  std::string SegmentContext() {
    static const std::vector<std::string> groups = {"library", "os", "device", "app", "page", "screen", "campaign"};
    static const std::vector<std::string> fields = {"name", "version", "id",     "model",  "url",
                                                    "path", "width",   "source", "medium", "other"};
    std::vector<std::string> m;
    for (size_t n = Pick(5); n > 0; n--) {
      std::vector<std::string> sub;
      for (size_t k = Pick(4); k > 0; k--)
        sub.push_back("\"" + OneOf(fields) + "\":" + (Chance(0.8) ? String() : Value(1)));
      m.push_back("\"" + OneOf(groups) + "\":" + (Chance(0.9) ? Members(std::move(sub)) : Value(1)));
    }
    for (const char* direct : {"ip", "locale", "timezone", "userAgent"})
      if (Chance(0.2)) m.push_back(std::string("\"") + direct + "\":" + (Chance(0.8) ? String() : Value(1)));
    if (Chance(0.3)) m.push_back("\"traits\":" + (Chance(0.85) ? Object(1) : Value(1)));
    if (Chance(0.1)) m.push_back(Key() + ":" + Value(1));
    return Members(std::move(m));
  }

  // `shared`: a context the messages of a batch often carry byte for byte (the fast path
  // reads it once, ContextCache); empty for none.
  std::string SegmentMessage(bool in_batch, const std::string& shared = "") {
    static const std::vector<std::string> types = {"track",  "track", "track", "identify", "page",
                                                   "screen", "group", "alias", "batch",    "launch"};
    std::vector<std::string> m;
    if (in_batch ? Chance(0.97) : Chance(0.3))
      m.push_back("\"type\":" + (Chance(0.95) ? "\"" + OneOf(types) + "\"" : Value(0)));
    if (Chance(0.8)) m.push_back("\"userId\":" + Id());
    if (Chance(0.5)) m.push_back("\"anonymousId\":" + Id());
    if (Chance(0.9)) m.push_back("\"event\":" + (Chance(0.9) ? String() : Value(1)));
    if (Chance(0.7)) m.push_back("\"messageId\":" + (Chance(0.85) ? "\"m-" + std::to_string(rng_()) + "\"" : Id()));
    for (const char* key : {"timestamp", "originalTimestamp", "sentAt"})
      if (Chance(key[0] == 't' ? 0.7 : 0.2)) m.push_back(std::string("\"") + key + "\":" + Timestamp());
    if (Chance(0.8)) m.push_back("\"properties\":" + (Chance(0.93) ? Object(2, 6) : Value(1)));
    if (Chance(0.6))
      m.push_back("\"context\":" + (!shared.empty() && Chance(0.7) ? shared
                                    : Chance(0.9)                  ? SegmentContext()
                                                                   : Value(1)));
    if (Chance(0.3)) m.push_back("\"traits\":" + (Chance(0.85) ? Object(2) : Value(1)));
    for (const char* key : {"name", "category", "groupId", "previousId"})
      if (Chance(0.15)) m.push_back(std::string("\"") + key + "\":" + (Chance(0.7) ? Id() : Value(1)));
    if (Chance(0.1)) m.push_back("\"writeKey\":" + (Chance(0.8) ? std::string("\"wk\"") : Value(0)));
    if (Chance(0.1)) m.push_back(Key() + ":" + Value(2));
    return Members(std::move(m));
  }

  // Damages a body now and then: truncation, a byte removed, a byte inserted.
  std::string Mutate(std::string s) {
    if (s.empty() || !Chance(0.25)) return s;
    static const std::string inserts = "{}[],:\"\\ 0e-.\x01\xFFtn";
    switch (Pick(3)) {
      case 0: s.resize(Pick(s.size())); break;
      case 1: s.erase(Pick(s.size()), 1); break;
      default: s.insert(Pick(s.size() + 1), 1, inserts[Pick(inserts.size())]); break;
    }
    return s;
  }

  IngestLimits Limits() {
    IngestLimits l;
    if (Chance(0.1)) l.max_event_bytes = 300;
    if (Chance(0.1)) l.max_name_chars = 5;
    if (Chance(0.1)) l.max_distinct_id_chars = 2;
    if (Chance(0.1)) l.min_ts_ms = 1'795'000'000'000;
    if (Chance(0.05)) l.max_body_bytes = 400;
    return l;
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

TEST(IngestFastPath, NativeJsonBodiesMatchTheDomPath) {
  ondemand_json::FastPathCounts& counts = ondemand_json::ThreadFastPathCounts();
  const uint64_t taken0 = counts.taken;
  for (uint64_t seed = 0; seed < 3000 * Scale(); seed++) {
    Gen g(seed);
    std::vector<std::string> events;
    for (size_t n = g.Pick(6); n > 0; n--) events.push_back(g.NativeEvent());
    std::string body;
    switch (g.Pick(5)) {
      case 0: body = events.empty() ? g.NativeEvent() : events[0]; break;  // one event object
      case 1: {
        body = "{\"events\":[";
        for (size_t i = 0; i < events.size(); i++) body += (i ? "," : "") + events[i];
        body += "]";
        if (g.Chance(0.2)) body += ",\"other\":" + g.Value(1);
        body += "}";
        break;
      }
      default: {
        body = std::string(g.Whitespace()) + "[";
        for (size_t i = 0; i < events.size(); i++) body += (i ? "," : "") + std::string(g.Whitespace()) + events[i];
        body += "]" + std::string(g.Whitespace());
        if (g.Chance(0.03)) body = g.Value(1);
        break;
      }
    }
    body = g.Mutate(std::move(body));
    const IngestLimits limits = g.Limits();
    const TimeZone& tz = Zone(seed);
    const auto fast = ParseNativeBatch(body, false, tz, kNow, limits);
    const auto dom = ParseNativeBatchDom(body, false, tz, kNow, limits);
    ASSERT_EQ(Describe(fast), Describe(dom)) << "seed " << seed << " body " << Hex(body);
  }
  EXPECT_GT(counts.taken - taken0, 300u);  // valid bodies do take the fast path
}

TEST(IngestFastPath, NdjsonLinesMatchTheDomPath) {
  ondemand_json::FastPathCounts& counts = ondemand_json::ThreadFastPathCounts();
  const uint64_t taken0 = counts.taken;
  for (uint64_t seed = 0; seed < 2000 * Scale(); seed++) {
    Gen g(seed * 7919 + 1);
    std::string body;
    for (size_t n = 1 + g.Pick(8); n > 0; n--) {
      std::string line = g.Chance(0.05) ? std::string(g.Chance(0.5) ? "" : " \t") : g.NativeEvent();
      if (g.Chance(0.05)) line += " x";
      if (g.Chance(0.05)) line = "[" + line + "]";
      body += line + (g.Chance(0.2) ? "\r\n" : "\n");
    }
    if (g.Chance(0.3)) body.pop_back();
    body = g.Mutate(std::move(body));
    const IngestLimits limits = g.Limits();
    const TimeZone& tz = Zone(seed);
    const auto fast = ParseNativeBatch(body, true, tz, kNow, limits);
    const auto dom = ParseNativeBatchDom(body, true, tz, kNow, limits);
    ASSERT_EQ(Describe(fast), Describe(dom)) << "seed " << seed << " body " << Hex(body);
  }
  EXPECT_GT(counts.taken - taken0, 400u);  // lines; most random ones are invalid somewhere
}

TEST(IngestFastPath, SegmentRequestsMatchTheDomPath) {
  ondemand_json::FastPathCounts& counts = ondemand_json::ThreadFastPathCounts();
  const uint64_t taken0 = counts.taken;
  static const std::vector<std::string> paths = {"/v1/batch", "/v1/batch", "/v1/import", "/v1/track", "/v1/identify",
                                                 "/v1/page",  "/v1/group", "/v1/alias",  "/v1/screen"};
  for (uint64_t seed = 0; seed < 4000 * Scale(); seed++) {
    Gen g(seed * 104729 + 3);
    const std::string path = g.OneOf(paths);
    std::string body;
    if (path == "/v1/batch" || path == "/v1/import") {
      std::vector<std::string> m;
      std::string batch = "[";
      const std::string shared = g.Chance(0.5) ? g.SegmentContext() : "";
      for (size_t n = g.Pick(5); n > 0; n--) batch += g.SegmentMessage(true, shared) + (n > 1 ? "," : "");
      batch += "]";
      m.push_back("\"batch\":" + (g.Chance(0.97) ? batch : g.Value(1)));
      if (g.Chance(0.5)) m.push_back("\"sentAt\":" + g.Timestamp());
      if (g.Chance(0.4)) m.push_back("\"context\":" + g.SegmentContext());
      if (g.Chance(0.3))
        m.push_back("\"writeKey\":" + (g.Chance(0.8) ? std::string(g.Chance(0.2) ? "\"bad\"" : "\"wk\"") : g.Value(0)));
      if (g.Chance(0.1)) m.push_back(g.Key() + ":" + g.Value(1));
      body = g.Members(std::move(m));
    } else {
      body = g.SegmentMessage(false);
    }
    body = g.Mutate(std::move(body));
    CollectRequest req;
    req.path = path;
    req.method = "POST";
    req.body = body;
    req.content_type = "application/json";
    if (g.Chance(0.5)) req.basic_user = g.Chance(0.1) ? "bad" : "wk";
    const IngestLimits limits = g.Limits();
    const TimeZone& tz = Zone(seed);
    // A resolver as the server's: unknown keys fail; the project's zone otherwise. The fast
    // path must not authenticate a request twice.
    int calls = 0;
    KeyResolver resolve = [&](const CollectResult& found) -> StatusOr<const TimeZone*> {
      calls++;
      if (found.key.empty() || found.key == "bad") return Unauthenticated("no such key '" + found.key + "'");
      return &Zone(seed + 1);
    };
    const bool with_resolver = g.Chance(0.7);
    const auto fast = ParseSegmentIo(req, tz, kNow, limits, with_resolver ? resolve : KeyResolver{});
    const int fast_calls = calls;
    calls = 0;
    const auto dom = ParseSegmentIoDom(req, tz, kNow, limits, with_resolver ? resolve : KeyResolver{});
    ASSERT_EQ(Describe(fast), Describe(dom)) << "seed " << seed << " path " << path << " body " << Hex(body);
    ASSERT_LE(fast_calls, 1) << "seed " << seed;
    ASSERT_LE(calls, 1) << "seed " << seed;
  }
  EXPECT_GT(counts.taken - taken0, 120u);
}

// CheckJsonDepth (rewritten as two skipping loops) against the one-loop original.
Status CheckJsonDepthOriginal(std::string_view text, const std::string& prefix) {
  size_t depth = 0;
  bool in_string = false;
  const char* p = text.data();
  const char* end = p + text.size();
  for (; p < end; p++) {
    const char c = *p;
    if (in_string) {
      if (c == '\\')
        p++;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return InvalidArgument(prefix + "JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                               " levels at byte " + std::to_string(p - text.data()));
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return Status::OK();
}

TEST(IngestFastPath, JsonDepthCheckMatchesTheOriginal) {
  static const std::string alphabet = "[[[[{{{{]]}}\"\\\\ax";
  for (uint64_t seed = 0; seed < 3000 * Scale(); seed++) {
    Gen g(seed);
    std::string s;
    for (size_t n = g.Pick(600); n > 0; n--) s += alphabet[g.Pick(alphabet.size())];
    const Status a = CheckJsonDepth(s, "p: "), b = CheckJsonDepthOriginal(s, "p: ");
    ASSERT_EQ(a.ToString(), b.ToString()) << Hex(s);
  }
}

// The fast paths bound nesting themselves (ondemand_json::kMaxValueDepth) instead of a pass of
// CheckJsonDepth over the body: at every depth around both bounds, in every place a nested
// value can sit (read as a property, validated, re-read by nlohmann), fast = DOM, and a body
// nested deeper than kMaxJsonDepth is refused with the DOM path's message.
TEST(IngestFastPath, NestingBoundsMatchTheDomPath) {
  auto nested = [](size_t depth, bool arrays) {
    return arrays ? std::string(depth, '[') + std::string(depth, ']') : [&] {
      std::string s;
      for (size_t i = 0; i < depth; i++) s += "{\"k\":";
      s += "1";
      for (size_t i = 0; i < depth; i++) s += "}";
      return s;
    }();
  };
  std::vector<size_t> depths;
  for (size_t d = 1; d <= 4; d++) depths.push_back(d);
  for (size_t d = ondemand_json::kMaxValueDepth - 3; d <= kMaxJsonDepth + 3; d++) depths.push_back(d);
  const std::string msg = R"("type":"track","event":"e","userId":"u","timestamp":"2026-11-22T03:59:00.000Z")";
  for (size_t depth : depths) {
    for (bool arrays : {false, true}) {
      const std::string v = nested(depth, arrays);
      const std::vector<std::pair<std::string, std::string>> segment = {
          {"/v1/batch", R"({"batch":[{)" + msg + R"(,"properties":{"x":)" + v + "}}]}"},
          {"/v1/batch", R"({"batch":[{)" + msg + R"(,"other":)" + v + "}]}"},
          {"/v1/batch", R"({"batch":[{)" + msg + R"(,"context":{"library":{"other":)" + v + "}}}]}"},
          {"/v1/batch", R"({"batch":[{)" + msg + R"(,"context":{"traits":{"t":)" + v + "}}}]}"},
          {"/v1/batch", R"({"batch":[{)" + msg + "}]," + R"("extra":)" + v + "}"},
          {"/v1/identify", R"({"userId":"u","traits":{"t":)" + v + "}}"},
      };
      for (const auto& [path, body] : segment) {
        CollectRequest req;
        req.path = path;
        req.body = body;
        req.basic_user = "wk";
        const auto fast = ParseSegmentIo(req, Zone(0), kNow, IngestLimits{});
        ASSERT_EQ(Describe(fast), Describe(ParseSegmentIoDom(req, Zone(0), kNow, IngestLimits{})))
            << "depth " << depth << " body " << body;
        if (!CheckJsonDepth(body, "").ok()) {
          ASSERT_FALSE(fast.ok()) << body;
          EXPECT_NE(fast.status().message().find("nested deeper than"), std::string::npos) << fast.status().message();
        }
      }
      const std::string event = R"({"event":"e","distinct_id":"u","properties":{"x":)" + v + R"(},"other":)" + v + "}";
      for (const std::string& body : {"[" + event + "]", event}) {
        ASSERT_EQ(Describe(ParseNativeBatch(body, false, Zone(0), kNow, IngestLimits{})),
                  Describe(ParseNativeBatchDom(body, false, Zone(0), kNow, IngestLimits{})))
            << "depth " << depth;
        ASSERT_EQ(Describe(ParseNativeBatch(event + "\n" + event, true, Zone(0), kNow, IngestLimits{})),
                  Describe(ParseNativeBatchDom(event + "\n" + event, true, Zone(0), kNow, IngestLimits{})))
            << "depth " << depth;
      }
    }
  }
}

// An empty body given as a view without data (found by segmentio_fuzz: memcpy from null).
TEST(IngestFastPath, EmptyViewBodies) {
  for (bool ndjson : {false, true})
    EXPECT_EQ(Describe(ParseNativeBatch(std::string_view(), ndjson, Zone(0), kNow, IngestLimits{})),
              Describe(ParseNativeBatchDom(std::string_view(), ndjson, Zone(0), kNow, IngestLimits{})));
  CollectRequest req;
  req.path = "/v1/track";
  req.basic_user = "wk";
  EXPECT_EQ(Describe(ParseSegmentIo(req, Zone(0), kNow, IngestLimits{})),
            Describe(ParseSegmentIoDom(req, Zone(0), kNow, IngestLimits{})));
}

// A typical analytics-node batch (what bench/ingest_load sends) takes the fast path whole.
TEST(IngestFastPath, TypicalSegmentBatchIsFast) {
  std::string body = R"({"batch":[)";
  for (int i = 0; i < 100; i++) {
    body += (i ? "," : "") + std::string(R"({"type":"track","event":"add_to_cart","userId":"u)") + std::to_string(i) +
            R"(","messageId":"m-)" + std::to_string(i) +
            R"(","timestamp":"2026-11-22T03:59:00.000Z","properties":{"channel":"organic","platform":"web","amount":)" +
            std::to_string(i) + R"(},"context":{"library":{"name":"analytics-node","version":"2.1.0"}}})";
  }
  body += R"(],"sentAt":"2026-11-22T03:59:01.000Z"})";
  CollectRequest req;
  req.path = "/v1/batch";
  req.body = body;
  req.basic_user = "wk";
  const uint64_t taken0 = ondemand_json::ThreadFastPathCounts().taken;
  auto fast = ParseSegmentIo(req, Zone(0), kNow, IngestLimits{});
  ASSERT_TRUE(fast.ok());
  EXPECT_EQ(ondemand_json::ThreadFastPathCounts().taken, taken0 + 1);
  ASSERT_EQ(fast->batch.events.size(), 100u);
  EXPECT_EQ(Describe(fast), Describe(ParseSegmentIoDom(req, Zone(0), kNow, IngestLimits{})));
  const Event& e = fast->batch.events[7];
  EXPECT_EQ(e.event, "add_to_cart");
  EXPECT_EQ(e.distinct_id, "u7");
  EXPECT_EQ(e.ts_ms, kNow - 1000);  // receivedAt - (sentAt - timestamp)
  ASSERT_NE(e.Find("$lib"), nullptr);
  EXPECT_EQ(e.Find("$lib")->str, "analytics-node");
}

}  // namespace
}  // namespace ns
