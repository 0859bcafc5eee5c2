// HTTP ingest load generator for `northstar serve` (driven by bench/ingest_load.py).
// N threads, each with one keep-alive connection (RawConnection below, or cpp-httplib's
// client with --client httplib), POST batches of B events to
// /api/v1/events as fast as the server answers, for a warm-up then D measured seconds.
// Every event carries a unique uuid (so none is dropped as a duplicate), a distinct_id drawn
// from a pool of --users ids, a current timestamp and three properties. Bodies are built once
// per thread; per request only fixed-width digit fields are overwritten in place, so the
// client spends its CPU on HTTP, not on JSON.
// usage: ingest_load --port P --key KEY [--host 127.0.0.1] [--connections 8] [--seconds 10]
//                    [--warmup 1] [--batch 100] [--users 100000] [--server-pid PID]
//                    [--max-requests 0 (= unbounded; else stop after this many measured requests)]
//                    [--protocol native|segment] [--client raw|httplib]
//                    [--query-threads 0 --query-key SECRET --query-file FILE [--idle-seconds 0]]
//                    [--query-trace FILE] [--rate 0]
// --protocol segment posts Segment batches ({"batch":[{"type":"track",...}],"sentAt":...}) to
// /v1/batch with the key as HTTP Basic user, as @segment/analytics-node does.
// --query-threads N adds N threads that post the query in FILE to /api/v1/query in a loop
// during the whole run (reads concurrent with ingest); their latencies are reported too.
// --idle-seconds S (with --query-threads) first runs the same query loop alone on the same
// server for a warm-up and S seconds, no ingest, and reports those latencies as the idle
// ones: the loaded/idle ratio comes from one run, not from two runs of different moments.
// After the loaded window the ingest stops and the query loop runs alone again (a warm-up,
// then S seconds): "idle after" latencies are those of the same query over the same rows
// the last loaded queries scanned (the ingested ones included), so loaded / idle-after
// measures what the ingest's contention costs a query, not what the rows it added cost.
// --rate R paces the ingest at R events/s in all (each connection sends a batch every
// batch * connections / R seconds on a fixed schedule; 0, the default: as fast as the server
// answers). An SDK's traffic is an open loop: it arrives at the rate users act, and the
// server must keep up with it, not saturate. A request's latency is then counted from when
// the schedule wanted it sent, so a server that falls behind shows it in the latencies
// (no coordinated omission), and "events/s" says whether the server kept the rate.
// --query-trace FILE writes one line per query: seconds since the first query, the window
// (idle, loaded, idle-after, discarded) and its latency in ms, to see where a tail falls.
// Prints one JSON object on stdout (events/s, latency percentiles, server and client CPU).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/httplib_checked.h"  // <httplib.h> with the library's own feature macros

namespace {

using Clock = std::chrono::steady_clock;

std::string Arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; i++)
    if (std::string(argv[i]) == name) return argv[i + 1];
  return def;
}

// utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15); -1 if unreadable.
double ProcCpuSeconds(long pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');  // comm may contain spaces
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  std::string tok;
  unsigned long long utime = 0, stime = 0;
  for (int field = 3; in >> tok; field++) {
    if (field == 14) utime = std::strtoull(tok.c_str(), nullptr, 10);
    if (field == 15) {
      stime = std::strtoull(tok.c_str(), nullptr, 10);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void PutDigits(char* p, int width, uint64_t v) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A batch body with the offsets of its variable fields.
struct Body {
  std::string text;
  std::vector<size_t> uuid_at, did_at, ts_at;
  size_t sent_at = 0;  // segment: offset of "sentAt"
  static constexpr int kUuidSeq = 12, kDid = 8, kTs = 13, kIso = 24;
};

// "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 characters) at p. The text up to the seconds is formatted
// once per second (gmtime_r and snprintf per event were a quarter of the generator's CPU).
struct IsoClock {
  int64_t second = INT64_MIN;
  char prefix[96] = {};  // "YYYY-MM-DDTHH:MM:SS." (room for any int the compiler imagines)
  void Put(char* p, int64_t ms) {
    const int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    if (sec != second) {
      time_t secs = static_cast<time_t>(sec);
      tm t{};
      gmtime_r(&secs, &t);
      std::snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                    t.tm_hour, t.tm_min, t.tm_sec);
      second = sec;
    }
    std::memcpy(p, prefix, 20);
    PutDigits(p + 20, 3, static_cast<uint64_t>(ms - sec * 1000));
    p[23] = 'Z';
  }
};

// A Segment batch as analytics-node sends it: track calls with messageId, userId,
// timestamp, properties and a context.library, plus sentAt.
Body MakeSegmentBody(int thread, int batch) {
  static const char* kEvents[] = {"product_exposure", "product_click", "add_to_cart", "order", "pay", "page_view"};
  static const char* kChannels[] = {"organic", "ads", "referral", "email"};
  static const char* kPlatforms[] = {"ios", "android", "web"};
  Body b;
  b.text = "{\"batch\":[";
  char tid[8];
  std::snprintf(tid, sizeof tid, "%03d", thread % 1000);
  for (int i = 0; i < batch; i++) {
    if (i) b.text += ",";
    b.text += "{\"type\":\"track\",\"event\":\"";
    b.text += kEvents[i % 6];
    b.text += "\",\"userId\":\"u";
    b.did_at.push_back(b.text.size());
    b.text += std::string(Body::kDid, '0');
    b.text += "\",\"messageId\":\"lg-";
    b.text += tid;
    b.text += "-";
    b.uuid_at.push_back(b.text.size());
    b.text += std::string(Body::kUuidSeq, '0');
    b.text += "\",\"timestamp\":\"";
    b.ts_at.push_back(b.text.size());
    b.text += std::string(Body::kIso, '0');
    b.text += "\",\"properties\":{\"channel\":\"";
    b.text += kChannels[i % 4];
    b.text += "\",\"platform\":\"";
    b.text += kPlatforms[i % 3];
    b.text += "\",\"amount\":";
    b.text += std::to_string((i * 37) % 500 + 1);
    b.text += "},\"context\":{\"library\":{\"name\":\"@segment/analytics-node\",\"version\":\"2.1.0\"}}}";
  }
  b.text += "],\"sentAt\":\"";
  b.sent_at = b.text.size();
  b.text += std::string(Body::kIso, '0');
  b.text += "\"}";
  return b;
}

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Body MakeBody(int thread, int batch) {
  static const char* kEvents[] = {"product_exposure", "product_click", "add_to_cart", "order", "pay", "page_view"};
  static const char* kChannels[] = {"organic", "ads", "referral", "email"};
  static const char* kPlatforms[] = {"ios", "android", "web"};
  Body b;
  b.text = "[";
  char tid[8];
  std::snprintf(tid, sizeof tid, "%03d", thread % 1000);
  for (int i = 0; i < batch; i++) {
    if (i) b.text += ",";
    b.text += "{\"event\":\"";
    b.text += kEvents[i % 6];
    b.text += "\",\"distinct_id\":\"u";
    b.did_at.push_back(b.text.size());
    b.text += std::string(Body::kDid, '0');
    b.text += "\",\"uuid\":\"lg-";
    b.text += tid;
    b.text += "-";
    b.uuid_at.push_back(b.text.size());
    b.text += std::string(Body::kUuidSeq, '0');
    b.text += "\",\"timestamp\":";
    b.ts_at.push_back(b.text.size());
    b.text += std::string(Body::kTs, '0');
    b.text += ",\"properties\":{\"channel\":\"";
    b.text += kChannels[i % 4];
    b.text += "\",\"platform\":\"";
    b.text += kPlatforms[i % 3];
    b.text += "\",\"amount\":";
    b.text += std::to_string((i * 37) % 500 + 1);
    b.text += "}}";
  }
  b.text += "]";
  return b;
}

// One keep-alive HTTP/1.1 connection written by hand, for the ingest threads (--client raw,
// the default): a request is one sendmsg of its head and body, its answer read with recv.
// cpp-httplib's client (--client httplib) sent the head and the body in two sends and polled
// before each read: 6 polls, 2 sends and a recv per request, ~75 us of CPU per request (110
// with the Segment timestamps formatted per event) on the cores the measured server uses.
class RawConnection {
 public:
  RawConnection(std::string host, int port, const std::string& path, const std::string& authorization)
      : host_(std::move(host)), port_(port) {
    head_ = "POST " + path + " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(port_) +
            "\r\nAuthorization: " + authorization +
            "\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: ";
  }
  ~RawConnection() { Close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Posts `body`: the answer's status (and its body in *answer), or 0 on a transport error
  // (*error says which). A kept-alive connection the server had closed (the send fails with
  // EPIPE or ECONNRESET, or the answer's first read finds the end of the stream or a reset)
  // is reopened once; never after a timeout, when the server may still commit the request.
  int Post(const std::string& body, std::string* answer, std::string* error) {
    for (int attempt = 0; attempt < 2; attempt++) {
      const bool reused = fd_ >= 0;
      peer_gone_ = false;
      if (!reused && !Connect(error)) return 0;
      if (!Send(body, error)) {
        Close();
        if (reused && peer_gone_) continue;
        return 0;
      }
      const int status = Receive(answer, error);
      if (status == 0) {
        Close();
        if (reused && received_nothing_ && peer_gone_) continue;
      }
      return status;
    }
    return 0;
  }

 private:
  bool Connect(std::string* error) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (int rc = getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &found); rc != 0) {
      *error = std::string("resolving ") + host_ + ": " + gai_strerror(rc);
      return false;
    }
    // The timeouts are set before connect, which honours SO_SNDTIMEO.
    const timeval timeout{60, 0}, connect_timeout{5, 0};
    int err = 0;
    for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next) {
      fd_ = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd_ < 0) {
        err = errno;
        continue;
      }
      setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &connect_timeout, sizeof connect_timeout);
      if (connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
        err = errno;
        Close();
      }
    }
    freeaddrinfo(found);
    if (fd_ < 0) {
      *error = "connecting to " + host_ + ":" + std::to_string(port_) + ": " + std::strerror(err);
      return false;
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    buf_.clear();
    return true;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool Send(const std::string& body, std::string* error) {
    const std::string head = head_ + std::to_string(body.size()) + "\r\n\r\n";
    const size_t total = head.size() + body.size();
    size_t done = 0;
    while (done < total) {
      iovec part[2];
      int n = 0;
      if (done < head.size()) part[n++] = {const_cast<char*>(head.data()) + done, head.size() - done};
      const size_t body_done = done > head.size() ? done - head.size() : 0;
      part[n++] = {const_cast<char*>(body.data()) + body_done, body.size() - body_done};
      msghdr msg{};
      msg.msg_iov = part;
      msg.msg_iovlen = static_cast<size_t>(n);
      const ssize_t w = sendmsg(fd_, &msg, MSG_NOSIGNAL);
      const int err = w < 0 ? errno : 0;
      if (err == EINTR) continue;
      if (w <= 0) {
        peer_gone_ = err == EPIPE || err == ECONNRESET;
        *error = std::string("sending: ") + (w < 0 ? std::strerror(err) : "nothing sent");
        return false;
      }
      done += static_cast<size_t>(w);
    }
    return true;
  }
  // Reads one answer: its status, 0 on a transport error or an answer it cannot frame.
  int Receive(std::string* answer, std::string* error) {
    received_nothing_ = buf_.empty();
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!Fill(error)) return 0;
    const std::string_view head(buf_.data(), head_end);
    int status = 0;
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/" || (status = std::atoi(buf_.c_str() + 9)) <= 0) {
      *error = "malformed answer: " + std::string(head.substr(0, 80));
      return 0;
    }
    std::optional<size_t> length;
    bool close_after = false;
    for (size_t at = head.find("\r\n"); at != std::string_view::npos && at < head.size();) {
      const size_t next = std::min(head.find("\r\n", at + 2), head.size());
      std::string line(head.substr(at + 2, next - at - 2));
      std::transform(line.begin(), line.end(), line.begin(), [](unsigned char c) { return std::tolower(c); });
      if (line.rfind("content-length:", 0) == 0) length = std::strtoull(line.c_str() + 15, nullptr, 10);
      if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) close_after = true;
      if (line.rfind("transfer-encoding:", 0) == 0) {
        *error = "answer without Content-Length (" + line + "): the raw client frames only those";
        return 0;
      }
      at = next == head.size() ? std::string_view::npos : next;
    }
    if (!length) {
      *error = "answer without Content-Length";
      return 0;
    }
    const size_t body_at = head_end + 4;
    while (buf_.size() < body_at + *length)
      if (!Fill(error)) return 0;
    answer->assign(buf_, body_at, *length);
    buf_.erase(0, body_at + *length);
    if (close_after) Close();
    return status;
  }
  bool Fill(std::string* error) {
    char chunk[16384];
    while (true) {
      const ssize_t r = recv(fd_, chunk, sizeof chunk, 0);
      const int err = r < 0 ? errno : 0;
      if (r > 0) {
        buf_.append(chunk, static_cast<size_t>(r));
        received_nothing_ = false;
        return true;
      }
      if (err == EINTR) continue;
      peer_gone_ = r == 0 || err == ECONNRESET;
      *error =
          r == 0 ? std::string("connection closed by the server") : std::string("receiving: ") + std::strerror(err);
      return false;
    }
  }

  std::string host_;
  int port_;
  std::string head_;  // the request head up to the Content-Length value
  int fd_ = -1;
  std::string buf_;                // bytes received and not yet taken
  bool received_nothing_ = false;  // the answer being read has no byte yet
  bool peer_gone_ = false;         // the last failure was the server closing or resetting
};

struct ThreadResult {
  std::vector<double> lat_ms;  // measured requests only
  uint64_t ok_requests = 0, failed_requests = 0, transport_errors = 0, accepted = 0, duplicates = 0;
  uint64_t warm_requests = 0;
  std::string first_error;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string host = Arg(argc, argv, "--host", "127.0.0.1");
  const int port = std::atoi(Arg(argc, argv, "--port", "0").c_str());
  const std::string key = Arg(argc, argv, "--key", "");
  const int conns = std::max(1, std::atoi(Arg(argc, argv, "--connections", "8").c_str()));
  const double seconds = std::atof(Arg(argc, argv, "--seconds", "10").c_str());
  const double warmup = std::atof(Arg(argc, argv, "--warmup", "1").c_str());
  const int batch = std::max(1, std::atoi(Arg(argc, argv, "--batch", "100").c_str()));
  const uint64_t users =
      std::max<uint64_t>(1, std::strtoull(Arg(argc, argv, "--users", "100000").c_str(), nullptr, 10));
  const long server_pid = std::atol(Arg(argc, argv, "--server-pid", "0").c_str());
  const uint64_t max_requests = std::strtoull(Arg(argc, argv, "--max-requests", "0").c_str(), nullptr, 10);
  const std::string protocol = Arg(argc, argv, "--protocol", "native");
  const bool segment = protocol == "segment";
  const std::string client = Arg(argc, argv, "--client", "raw");
  const double rate = std::atof(Arg(argc, argv, "--rate", "0").c_str());
  const int query_threads = std::max(0, std::atoi(Arg(argc, argv, "--query-threads", "0").c_str()));
  const std::string query_key = Arg(argc, argv, "--query-key", "");
  const double idle_seconds = query_threads > 0 ? std::atof(Arg(argc, argv, "--idle-seconds", "0").c_str()) : 0;
  std::string query_body;
  if (query_threads > 0) {
    std::ifstream qf(Arg(argc, argv, "--query-file", ""));
    query_body.assign(std::istreambuf_iterator<char>(qf), std::istreambuf_iterator<char>());
    if (query_body.empty() || query_key.empty()) {
      std::fprintf(stderr, "--query-threads needs --query-key SECRET and --query-file FILE (a query JSON)\n");
      return 2;
    }
  }
  if (protocol != "native" && protocol != "segment") {
    std::fprintf(stderr, "--protocol: native or segment\n");
    return 2;
  }
  if (client != "raw" && client != "httplib") {
    std::fprintf(stderr, "--client: raw or httplib\n");
    return 2;
  }
  if (!(rate >= 0 && rate <= 1e8)) {
    std::fprintf(stderr, "--rate: events/s in [0, 1e8] (0: as fast as the server answers)\n");
    return 2;
  }
  if (port <= 0 || key.empty() || seconds <= 0 || seconds > 3600 || idle_seconds < 0 || idle_seconds > 3600) {
    std::fprintf(stderr, "usage: ingest_load --port P --key KEY [--connections N] [--seconds D (<= 3600)] ...\n");
    return 2;
  }

  // Readers: post the query in a loop. A query counts in the window it started and ended in
  // (idle: both ends inside it, so none overlaps the ingest's start; loaded: started in it).
  enum QueryWindow { kDiscard = 0, kIdle = 1, kLoaded = 2, kStopQueries = 3, kIdleAfter = 4 };
  std::atomic<int> qwin{kDiscard};
  std::vector<std::vector<double>> qlat(static_cast<size_t>(query_threads)), qidle(qlat.size()), qafter(qlat.size());
  std::vector<uint64_t> qfail(static_cast<size_t>(query_threads), 0), qidle_fail(qfail.size(), 0),
      qafter_fail(qfail.size(), 0);
  struct TracePoint {
    double at_s, ms;
    int window;
  };
  std::vector<std::vector<TracePoint>> qtrace(static_cast<size_t>(query_threads));
  const std::string trace_file = Arg(argc, argv, "--query-trace", "");
  const auto start = Clock::now();
  std::vector<std::thread> qthreads;
  for (int q = 0; q < query_threads; q++) {
    qthreads.emplace_back([&, q] {
      httplib::Client cli(host, port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_read_timeout(120, 0);
      const httplib::Headers h{{"Authorization", "Bearer " + query_key}};
      while (qwin.load() != kStopQueries) {
        const int w = qwin.load();
        auto t0 = Clock::now();
        auto res = cli.Post("/api/v1/query", h, query_body, "application/json");
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        const bool ok = res && res->status == 200;
        // The window the query counts in (the rule above), read once for the figures and the trace.
        const int counted = w == kLoaded || qwin.load() == w ? w : kDiscard;
        if (!trace_file.empty())
          qtrace[static_cast<size_t>(q)].push_back({std::chrono::duration<double>(t0 - start).count(), ms, counted});
        if (counted == kLoaded) {
          if (!ok)
            qfail[static_cast<size_t>(q)]++;
          else
            qlat[static_cast<size_t>(q)].push_back(ms);
        } else if (counted == kIdle || counted == kIdleAfter) {
          auto& fails = w == kIdle ? qidle_fail : qafter_fail;
          auto& lats = w == kIdle ? qidle : qafter;
          if (!ok)
            fails[static_cast<size_t>(q)]++;
          else
            lats[static_cast<size_t>(q)].push_back(ms);
        }
      }
    });
  }
  // The query loop alone: a warm-up, then `window` for idle_seconds, then `after`; the
  // window's length (0 without --idle-seconds).
  auto idle_window = [&](int window, int after) {
    if (idle_seconds <= 0) return 0.0;
    std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
    const auto w0 = Clock::now();
    qwin = window;
    std::this_thread::sleep_for(std::chrono::duration<double>(idle_seconds));
    qwin = after;
    return std::chrono::duration<double>(Clock::now() - w0).count();
  };
  const double idle_elapsed = idle_window(kIdle, kDiscard);  // before the ingest

  std::atomic<int> phase{0};  // 0 warm-up, 1 measured, 2 stop
  std::atomic<uint64_t> issued{0};
  std::vector<ThreadResult> results(static_cast<size_t>(conns));
  std::vector<std::thread> threads;
  for (int t = 0; t < conns; t++) {
    threads.emplace_back([&, t] {
      ThreadResult& r = results[static_cast<size_t>(t)];
      r.lat_ms.reserve(1 << 16);
      const std::string auth = segment ? "Basic " + Base64(key + ":") : "Bearer " + key;
      const char* path = segment ? "/v1/batch" : "/api/v1/events";
      // The client: the hand-written connection, or cpp-httplib's (--client httplib).
      RawConnection raw(host, port, path, auth);
      httplib::Client cli(host, port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      cli.set_connection_timeout(5, 0);
      cli.set_read_timeout(60, 0);
      cli.set_write_timeout(60, 0);
      const httplib::Headers headers{{"Authorization", auth}};
      std::string answer, error;
      // The answer's status (its body in `answer`), or 0 on a transport error (`error`).
      auto post = [&](const std::string& text) {
        if (client == "raw") return raw.Post(text, &answer, &error);
        auto res = cli.Post(path, headers, text, "application/json");
        if (!res) {
          error = "transport error: " + httplib::to_string(res.error());
          return 0;
        }
        answer = res->body;
        return res->status;
      };
      IsoClock iso;
      Body body = segment ? MakeSegmentBody(t, batch) : MakeBody(t, batch);
      uint64_t seq = 0, rng = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(t + 1);
      // --rate: this connection's schedule, its first send staggered among the connections'.
      const auto interval = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(rate > 0 ? static_cast<double>(batch) * conns / rate : 0));
      auto due = Clock::now() + interval * t / conns;
      while (true) {
        // Paced: wait for this batch's due time (at once when behind the schedule), then
        // read the phase, so the request counts in the window it is sent in.
        if (rate > 0) std::this_thread::sleep_until(due);
        int ph = phase.load(std::memory_order_relaxed);
        if (ph == 2) break;
        if (ph == 1 && max_requests && issued.fetch_add(1) >= max_requests) break;
        const int64_t now = NowMs();
        for (int i = 0; i < batch; i++) {
          rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;  // xorshift64
          PutDigits(&body.text[body.did_at[static_cast<size_t>(i)]], Body::kDid, rng % users);
          PutDigits(&body.text[body.uuid_at[static_cast<size_t>(i)]], Body::kUuidSeq, seq++);
          if (segment)
            iso.Put(&body.text[body.ts_at[static_cast<size_t>(i)]], now - (batch - i));
          else
            PutDigits(&body.text[body.ts_at[static_cast<size_t>(i)]], Body::kTs,
                      static_cast<uint64_t>(now - (batch - i)));
        }
        if (segment) iso.Put(&body.text[body.sent_at], now);
        const auto t0 = rate > 0 ? due : Clock::now();  // paced: from when it was due
        if (rate > 0) due += interval;
        const int status = post(body.text);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (ph == 0) {
          r.warm_requests++;
          continue;
        }
        if (status == 0) {
          r.transport_errors++;
          if (r.first_error.empty()) r.first_error = error;
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        if (status != 200) {
          r.failed_requests++;
          if (r.first_error.empty()) r.first_error = "HTTP " + std::to_string(status) + ": " + answer.substr(0, 300);
          continue;
        }
        r.ok_requests++;
        r.lat_ms.push_back(ms);
        if (segment) {  // Segment answers {"success":true}: every event of the batch was taken
          r.accepted += static_cast<uint64_t>(batch);
          continue;
        }
        const std::string& b = answer;
        auto a = b.find("\"accepted\":");
        if (a != std::string::npos) r.accepted += std::strtoull(b.c_str() + a + 11, nullptr, 10);
        auto d = b.find("\"duplicates\":");
        if (d != std::string::npos) r.duplicates += std::strtoull(b.c_str() + d + 13, nullptr, 10);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  const double srv0 = ProcCpuSeconds(server_pid), cli0 = SelfCpuSeconds();
  const auto t0 = Clock::now();
  phase = 1;
  qwin = kLoaded;
  // Sleep in short steps so that --max-requests ending the run early is noticed.
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    if (max_requests && issued.load() >= max_requests) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  phase = 2;
  qwin = idle_seconds > 0 ? kDiscard : kStopQueries;
  const double elapsed_at_stop = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& th : threads) th.join();
  // Requests in flight at the stop are counted (their latency is measured), so the window
  // ends when the last of them returns.
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const double srv1 = ProcCpuSeconds(server_pid), cli1 = SelfCpuSeconds();
  const double srv_after0 = ProcCpuSeconds(server_pid);
  const double after_elapsed = idle_window(kIdleAfter, kStopQueries);  // over every row the ingest added
  // The server's CPU over the idle-after window and its warm-up: what the query loop uses
  // alone (the cores a loaded query competes for).
  const double srv_after1 = ProcCpuSeconds(server_pid), after_total = after_elapsed > 0 ? after_elapsed + warmup : 0;
  const double after_cores =
      srv_after0 >= 0 && srv_after1 >= 0 && after_total > 0 ? (srv_after1 - srv_after0) / after_total : -1;
  for (auto& th : qthreads) th.join();

  ThreadResult all;
  std::vector<double> lat;
  for (auto& r : results) {
    all.ok_requests += r.ok_requests;
    all.failed_requests += r.failed_requests;
    all.transport_errors += r.transport_errors;
    all.accepted += r.accepted;
    all.duplicates += r.duplicates;
    all.warm_requests += r.warm_requests;
    if (all.first_error.empty()) all.first_error = r.first_error;
    lat.insert(lat.end(), r.lat_ms.begin(), r.lat_ms.end());
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    if (lat.empty()) return 0.0;
    size_t i = static_cast<size_t>(p * static_cast<double>(lat.size() - 1) + 0.5);
    return lat[std::min(i, lat.size() - 1)];
  };
  double mean = 0;
  for (double x : lat) mean += x;
  if (!lat.empty()) mean /= static_cast<double>(lat.size());
  std::string err;
  for (char c : all.first_error) {
    if (c == '"' || c == '\\') err += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) err += c;
  }
  const double srv_cpu = srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1;
  std::vector<double> ql, qi, qa;
  uint64_t qfailed = 0, qidle_failed = 0, qafter_failed = 0;
  for (int q = 0; q < query_threads; q++) {
    ql.insert(ql.end(), qlat[static_cast<size_t>(q)].begin(), qlat[static_cast<size_t>(q)].end());
    qi.insert(qi.end(), qidle[static_cast<size_t>(q)].begin(), qidle[static_cast<size_t>(q)].end());
    qfailed += qfail[static_cast<size_t>(q)];
    qidle_failed += qidle_fail[static_cast<size_t>(q)];
    qa.insert(qa.end(), qafter[static_cast<size_t>(q)].begin(), qafter[static_cast<size_t>(q)].end());
    qafter_failed += qafter_fail[static_cast<size_t>(q)];
  }
  if (!trace_file.empty()) {
    std::ofstream tf(trace_file);
    static const char* const kWindowName[] = {"discarded", "idle", "loaded", "discarded", "idle-after"};
    for (const auto& tr : qtrace)
      for (const TracePoint& t : tr) tf << t.at_s << ' ' << kWindowName[t.window] << ' ' << t.ms << '\n';
  }
  std::sort(ql.begin(), ql.end());
  std::sort(qi.begin(), qi.end());
  std::sort(qa.begin(), qa.end());
  auto vpct = [](const std::vector<double>& v, double p) {
    if (v.empty()) return 0.0;
    size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  auto qpct = [&](double p) { return vpct(ql, p); };
  std::printf(
      "{\"connections\":%d,\"batch\":%d,\"users\":%" PRIu64
      ",\"warmup_s\":%.3f,\"seconds\":%.3f,\"elapsed_at_stop_s\":%.3f,"
      "\"warm_requests\":%" PRIu64 ",\"ok_requests\":%" PRIu64 ",\"failed_requests\":%" PRIu64
      ",\"transport_errors\":%" PRIu64 ",\"events_sent\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"duplicates\":%" PRIu64
      ",\"events_per_s\":%.1f,\"requests_per_s\":%.1f,"
      "\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
      "\"server_cpu_s\":%.3f,\"server_cpu_cores\":%.3f,\"server_cpu_us_per_event\":%.3f,"
      "\"client_cpu_s\":%.3f,\"client_cpu_cores\":%.3f,\"client\":\"%s\",\"protocol\":\"%s\",\"rate\":%.0f,"
      "\"query_threads\":%d,"
      "\"queries\":%zu,"
      "\"queries_failed\":%" PRIu64
      ",\"queries_per_s\":%.2f,\"query_latency_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
      "\"idle_seconds\":%.3f,\"idle_queries\":%zu,\"idle_queries_failed\":%" PRIu64
      ",\"idle_query_latency_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
      "\"idle_after_seconds\":%.3f,\"idle_after_queries\":%zu,\"idle_after_queries_failed\":%" PRIu64
      ",\"idle_after_query_latency_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},\"idle_after_server_cpu_cores\":%.3f,"
      "\"first_error\":\"%s\"}\n",
      conns, batch, users, warmup, elapsed, elapsed_at_stop, all.warm_requests, all.ok_requests, all.failed_requests,
      all.transport_errors, all.ok_requests * static_cast<uint64_t>(batch), all.accepted, all.duplicates,
      static_cast<double>(all.accepted) / elapsed, static_cast<double>(all.ok_requests) / elapsed, mean, pct(0.50),
      pct(0.90), pct(0.99), lat.empty() ? 0.0 : lat.back(), srv_cpu, srv_cpu >= 0 ? srv_cpu / elapsed : -1,
      srv_cpu >= 0 && all.accepted ? srv_cpu * 1e6 / static_cast<double>(all.accepted) : -1, cli1 - cli0,
      (cli1 - cli0) / elapsed, client.c_str(), protocol.c_str(), rate, query_threads, ql.size(), qfailed,
      static_cast<double>(ql.size()) / elapsed, qpct(0.5), qpct(0.99), ql.empty() ? 0.0 : ql.back(), idle_elapsed,
      qi.size(), qidle_failed, vpct(qi, 0.5), vpct(qi, 0.99), qi.empty() ? 0.0 : qi.back(), after_elapsed, qa.size(),
      qafter_failed, vpct(qa, 0.5), vpct(qa, 0.99), qa.empty() ? 0.0 : qa.back(), after_cores, err.c_str());
  return all.ok_requests > 0 ? 0 : 1;
}
