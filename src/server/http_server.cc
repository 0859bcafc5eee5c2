#include "server/http_server.h"

#include "core/httplib_checked.h"
#include "core/log_safe.h"
#include "server/auth.h"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace ns {

using nlohmann::json;

namespace {

void SendError(httplib::Response& res, const Status& st) {
  res.status = HttpStatusFor(st);
  res.set_content(ErrorJson(st).dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json; charset=utf-8");
}

// Connections need descriptors: raise the soft limit to the hard one (often 1024 -> 1M).
void RaiseOpenFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

HttpRequest Convert(const httplib::Request& req) {
  HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  r.body = req.body;
  r.remote_addr = req.remote_addr;
  for (size_t i = 0; i < req.matches.size(); ++i) r.matches.push_back(req.matches[i].str());
  for (const auto& [k, v] : req.params) r.params.emplace_back(k, v);
  for (const auto& [k, v] : req.headers) {
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    r.headers.emplace_back(std::move(lower), v);
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// Connections. cpp-httplib gives each connection a pool thread for as long as it stays open,
// so 32 idle keep-alive connections, or 32 clients sending their headers slowly, took every
// worker (docs/reliability.md, findings 4 and 5). Here httplib only parses and routes: the
// accept thread hands each socket to a Poller (epoll) that reads the request head without a
// thread, enforces the head deadline and the per-address limit, and passes a connection to a
// worker only once its head is complete. After the response the connection goes back to the
// poller. Workers are a fixed pool of ServerOptions::threads.
// ---------------------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

struct Conn {
  int fd = -1;
  std::string ip;
  int port = 0;
  std::string buf;               // bytes read from the socket and not yet consumed by a request
  size_t pos = 0;                // consumed prefix of buf
  Clock::time_point idle_since;  // waiting for the next request since
  Clock::time_point head_start;  // first byte of the current head (valid when buf has unread bytes)
  bool must_close = false;       // the body was not read to its end: close after the response
  bool lingering = false;        // closing: discard what the client still sends, briefly
  Clock::time_point linger_until;
};

// The connection a worker is serving (handlers flag it when they stop reading a body).
thread_local Conn* tls_conn = nullptr;

bool HeadComplete(const Conn& c) {
  return c.buf.find("\r\n\r\n", c.pos) != std::string::npos || c.buf.find("\n\n", c.pos) != std::string::npos;
}

// A Stream over a non-blocking socket: serves the bytes the poller already read, then reads the
// socket with the per-read timeout and the body deadline of the request.
//
// The first write of a request's stream (cpp-httplib writes a response's head, then its body)
// is held and sent with the next write in one sendmsg: two sends per answer were two TCP
// segments and two wakeups of the client, ~2 % of the server's CPU under ingest (issue 15).
// What is held is sent before any read (a "100 Continue" must reach the client before it
// sends the body; the first write after a read is held again, the answer's head) and by
// Flush once the request is answered (a HEAD, a 204). The head of a chunked answer (a
// streamed export, whose first chunk may be long in coming) is not held. After a failed
// write nothing more is sent.
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(Conn& c, Clock::time_point deadline, int io_timeout_ms)
      : c_(c), deadline_(deadline), io_ms_(io_timeout_ms) {}
  bool is_readable() const override { return c_.pos < c_.buf.size() || (Flush() && Wait(POLLIN)); }
  bool is_writable() const override { return Wait(POLLOUT); }
  // Sends what is held; false if the connection failed.
  bool Flush() const {
    if (broken_) return false;
    for (size_t sent = 0; sent < held_.size();) {
      ssize_t n = ::send(c_.fd, held_.data() + sent, held_.size() - sent, MSG_NOSIGNAL);
      if (n >= 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (!SendAgain()) return false;
    }
    held_.clear();
    return true;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (!held_.empty() && !Flush()) return -1;
    wrote_ = false;  // what was written was interim (100 Continue): hold the answer's head
    if (c_.pos < c_.buf.size()) {
      size_t n = std::min(size, c_.buf.size() - c_.pos);
      std::memcpy(ptr, c_.buf.data() + c_.pos, n);
      c_.pos += n;
      return static_cast<ssize_t>(n);
    }
    // Refill the buffer in 16 KiB reads (httplib reads heads one byte at a time).
    c_.buf.clear();
    c_.pos = 0;
    for (;;) {
      char tmp[16384];
      ssize_t n = ::recv(c_.fd, tmp, sizeof tmp, 0);
      if (n > 0) {
        size_t m = std::min(size, static_cast<size_t>(n));
        std::memcpy(ptr, tmp, m);
        c_.buf.assign(tmp + m, static_cast<size_t>(n) - m);
        return static_cast<ssize_t>(m);
      }
      if (n == 0) return 0;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      if (!Wait(POLLIN)) return -1;
    }
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (broken_) return -1;
    if (!wrote_) {
      wrote_ = true;
      if (size <= kHoldMax &&
          std::string_view(ptr, size).find("Transfer-Encoding: chunked\r\n") == std::string_view::npos) {
        held_.assign(ptr, size);
        return static_cast<ssize_t>(size);
      }
    }
    if (!held_.empty()) {
      // The held head and this piece in one call; once the head is out, what of the piece
      // went with it is reported, or the piece is sent below.
      iovec iov[2] = {{held_.data(), held_.size()}, {const_cast<char*>(ptr), size}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      for (;;) {
        ssize_t n = ::sendmsg(c_.fd, &msg, MSG_NOSIGNAL);
        if (n >= 0) {
          if (static_cast<size_t>(n) >= held_.size()) {
            const size_t of_piece = static_cast<size_t>(n) - held_.size();
            held_.clear();
            if (of_piece > 0) return static_cast<ssize_t>(of_piece);
            break;
          }
          held_.erase(0, static_cast<size_t>(n));
          iov[0] = {held_.data(), held_.size()};
          continue;
        }
        if (!SendAgain()) return -1;
      }
    }
    for (;;) {
      ssize_t n = ::send(c_.fd, ptr, size, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (!SendAgain()) return -1;
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.ip;
    port = c_.port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ip.clear();
    port = 0;
    if (getsockname(c_.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
    char host[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
      inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
      port = ntohs(v4->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
      inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
      port = ntohs(v6->sin6_port);
    }
    ip = host;
  }
  socket_t socket() const override { return c_.fd; }

 private:
  // Waits for the socket; false at the per-read timeout or the request's deadline.
  bool Wait(short events) const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    int ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left, io_ms_)));
    pollfd p{c_.fd, events, 0};
    for (;;) {
      int r = ::poll(&p, 1, ms);
      if (r < 0 && errno == EINTR) continue;
      return r > 0;
    }
  }
  // Writes wait for the per-write timeout only: a response is not cut by the body deadline.
  bool WaitOut() const {
    pollfd p{c_.fd, POLLOUT, 0};
    for (;;) {
      int r = ::poll(&p, 1, io_ms_);
      if (r < 0 && errno == EINTR) continue;
      return r > 0;
    }
  }
  static constexpr size_t kHoldMax = 16 << 10;  // a response head; anything larger is sent at once
  Conn& c_;
  Clock::time_point deadline_;
  int io_ms_;
  // After a send that failed with errno: true to send again (interrupted, or the socket has
  // room again within the write timeout). Else the stream is broken: what is held is dropped
  // (never a head without its body after a timeout), and nothing more is sent.
  bool SendAgain() const {
    if (errno == EINTR || ((errno == EAGAIN || errno == EWOULDBLOCK) && WaitOut())) return true;
    broken_ = true;
    held_.clear();
    return false;
  }
  bool wrote_ = false;
  mutable bool broken_ = false;
  mutable std::string held_;
};

// The accept loop of httplib hands sockets over through its task queue: run them inline (the
// handover is a few system calls; the poller does the rest).
struct InlineQueue final : httplib::TaskQueue {
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

// httplib::Server with its per-connection loop replaced (process_and_close_socket is the one
// virtual hook; process_request, which parses, routes and answers one request, is protected).
class NsHttplibServer final : public httplib::Server {
 public:
  explicit NsHttplibServer(const ServerOptions& o) : opt_(o) {}
  ~NsHttplibServer() override { Shutdown(); }

  void Start() {
    if (running_) return;
    running_ = true;
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    poller_ = std::thread([this] { PollLoop(); });
    for (int i = 0; i < std::max(1, opt_.threads); ++i) workers_.emplace_back([this] { WorkLoop(); });
  }

  void Shutdown() {
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
      running_ = false;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    if (poller_.joinable()) poller_.join();
    std::lock_guard lock(mu_);
    for (auto& [fd, c] : parked_) ::close(fd);
    parked_.clear();
    for (Conn* c : queue_) {
      ::close(c->fd);
      delete c;
    }
    queue_.clear();
    if (epfd_ >= 0) ::close(epfd_);
    epfd_ = -1;
  }

  size_t open_connections() {
    std::lock_guard lock(mu_);
    return open_;
  }

 private:
  bool process_and_close_socket(socket_t sock) override {
    auto c = std::make_unique<Conn>();
    c->fd = sock;
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (getpeername(sock, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      char host[INET6_ADDRSTRLEN] = {};
      if (a.ss_family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        c->port = ntohs(v4->sin_port);
      } else if (a.ss_family == AF_INET6) {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        c->port = ntohs(v6->sin6_port);
      }
      c->ip = host;
    }
    int flags = fcntl(sock, F_GETFL, 0);
    fcntl(sock, F_SETFL, flags | O_NONBLOCK);
    int yes = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    std::unique_lock lock(mu_);
    const char* refusal = nullptr;
    if (!running_)
      refusal = "server is stopping";
    else if (open_ >= static_cast<size_t>(opt_.max_connections))
      refusal = "too many open connections";
    else if (per_ip_[c->ip] >= opt_.max_connections_per_address)
      refusal = "too many open connections from this address";
    if (refusal) {
      lock.unlock();
      spdlog::warn("connection from {} refused: {}", c->ip, refusal);
      std::string body =
          std::string("{\"error\":{\"code\":\"unavailable\",\"message\":\"") + refusal + "; retry later\"}}";
      std::string resp =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
          "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      (void)!::send(sock, resp.data(), resp.size(), MSG_NOSIGNAL);
      ::close(sock);
      return false;
    }
    ++open_;
    ++per_ip_[c->ip];
    ParkLocked(c.release());
    return true;
  }

  // Puts a connection into the poller (mu_ held).
  void ParkLocked(Conn* c) {
    c->idle_since = Clock::now();
    if (c->pos < c->buf.size()) c->head_start = c->idle_since;
    parked_[c->fd] = c;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = c->fd;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev);
  }

  // Closes a connection (mu_ held).
  void CloseLocked(Conn* c) {
    if (parked_.erase(c->fd)) epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
    --open_;
    if (--per_ip_[c->ip] <= 0) per_ip_.erase(c->ip);
    delete c;
  }

  // Answers a connection whose head did not arrive in time or is too large, and closes it.
  void RefuseLocked(Conn* c, int status, const char* reason, const char* message) {
    std::string body = std::string("{\"error\":{\"code\":\"") +
                       (status == 408 ? "deadline_exceeded" : "invalid_argument") + "\",\"message\":\"" + message +
                       "\"}}";
    std::string resp = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                       "\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)!::send(c->fd, resp.data(), resp.size(), MSG_NOSIGNAL);
    CloseLocked(c);
  }

  // Reads what the socket holds into c.buf (a lingering connection's bytes are discarded),
  // stopping once more than kMaxHead unconsumed bytes are buffered. True at end of stream
  // or on an error.
  static bool ReadAvailable(Conn& c) {
    size_t discarded = 0;
    for (;;) {
      char tmp[16384];
      ssize_t r = ::recv(c.fd, tmp, sizeof tmp, 0);
      if (r > 0) {
        if (c.lingering) {  // discarded, a bounded amount per call (the poller holds mu_)
          discarded += static_cast<size_t>(r);
          if (discarded > kMaxDiscardPerRead) return false;
          continue;
        }
        if (c.pos == c.buf.size()) {
          c.buf.clear();
          c.pos = 0;
          c.head_start = Clock::now();
        }
        c.buf.append(tmp, static_cast<size_t>(r));
        if (c.buf.size() - c.pos > kMaxHead) return false;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
  }

  void PollLoop() {
    epoll_event evs[256];
    auto last_sweep = Clock::now();
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (!running_) return;
      }
      int n = epoll_wait(epfd_, evs, 256, 200);
      std::lock_guard lock(mu_);
      for (int i = 0; i < n; ++i) {
        auto it = parked_.find(evs[i].data.fd);
        if (it == parked_.end()) continue;
        Conn* c = it->second;
        const bool eof = ReadAvailable(*c);
        if (c->lingering) {
          if (eof) CloseLocked(c);
          continue;
        }
        if (HeadComplete(*c)) {
          parked_.erase(it);
          epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd, nullptr);
          queue_.push_back(c);
          work_cv_.notify_one();
        } else if (eof) {
          CloseLocked(c);
        } else if (c->buf.size() - c->pos > kMaxHead) {
          RefuseLocked(c, 431, "Request Header Fields Too Large", "request head over 64 KiB");
        }
      }
      auto now = Clock::now();
      if (now - last_sweep < std::chrono::milliseconds(250)) continue;
      last_sweep = now;
      std::vector<Conn*> expired, slow;
      for (auto& [fd, c] : parked_) {
        if (c->lingering) {
          if (now >= c->linger_until) expired.push_back(c);
        } else if (c->pos < c->buf.size()) {
          if (now - c->head_start > std::chrono::seconds(opt_.header_timeout_s)) slow.push_back(c);
        } else if (now - c->idle_since > std::chrono::seconds(opt_.idle_timeout_s)) {
          expired.push_back(c);
        }
      }
      for (Conn* c : expired) CloseLocked(c);
      for (Conn* c : slow)
        RefuseLocked(
            c, 408, "Request Timeout",
            ("the request head did not arrive within " + std::to_string(opt_.header_timeout_s) + " s").c_str());
    }
  }

  void WorkLoop() {
    for (;;) {
      Conn* c = nullptr;
      {
        std::unique_lock lock(mu_);
        work_cv_.wait(lock, [&] { return !queue_.empty() || !running_; });
        if (!running_) return;
        c = queue_.front();
        queue_.pop_front();
      }
      Serve(c);
    }
  }

  // A keep-alive client that sends its next request as soon as it has the answer (an SDK
  // draining its queue, a load test) is served again by the same worker, without a trip
  // through the poller: a park costs two epoll_ctl calls and two thread wakeups (the
  // poller's, then a worker's), ~5 % of the server's CPU under ingest (issue 15). Only while
  // no other connection waits for a worker, and for at most kAwaitNextMs; a connection that
  // came to wait meanwhile goes first (this one then queues behind it).
  enum class Next { kArrived, kQueued, kPark, kClosed };
  Next AwaitNextHead(Conn* c) {
    {
      std::lock_guard lock(mu_);
      if (!running_ || !queue_.empty()) return Next::kPark;
    }
    pollfd p{c->fd, POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, kAwaitNextMs);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return Next::kPark;
    const bool eof = ReadAvailable(*c);
    if (!HeadComplete(*c)) return eof ? Next::kClosed : Next::kPark;
    // Served first; an end of stream is seen by the next read.
    std::lock_guard lock(mu_);
    if (queue_.empty() || !running_) return Next::kArrived;
    queue_.push_back(c);  // the poller would not queue it (its head is read: no more input)
    work_cv_.notify_one();
    return Next::kQueued;
  }

  // Serves the requests whose heads are complete (and those that follow at once:
  // AwaitNextHead), then parks or closes the connection.
  void Serve(Conn* c) {
    bool keep = true;
    while (keep) {
      if (!HeadComplete(*c)) {
        const Next next = AwaitNextHead(c);
        if (next == Next::kQueued) return;  // a worker takes it in its turn
        if (next == Next::kClosed) keep = false;
        if (next != Next::kArrived) break;
      }
      c->must_close = false;
      ConnStream strm(*c, Clock::now() + std::chrono::seconds(opt_.body_timeout_s), 5000);
      bool closed = false;
      tls_conn = c;
      bool ok = false;
      try {
        ok = process_request(strm, false, closed, nullptr);
      } catch (...) {
        ok = false;  // the exception handler answers handler errors; this is the last boundary
      }
      if (!strm.Flush()) ok = false;  // the held head of an answer without a body
      tls_conn = nullptr;
      keep = ok && !closed && !c->must_close;
      if (c->must_close) {
        // The client may still be sending the body: stop sending, then discard what arrives
        // for a moment so it reads the answer instead of a reset.
        ::shutdown(c->fd, SHUT_WR);
        std::lock_guard lock(mu_);
        c->lingering = true;
        c->linger_until = Clock::now() + std::chrono::seconds(2);
        c->buf.clear();
        c->pos = 0;
        ParkLocked(c);
        return;
      }
    }
    std::lock_guard lock(mu_);
    if (!keep || !running_) return CloseLocked(c);
    if (c->pos == c->buf.size()) {
      c->buf.clear();
      c->pos = 0;
    }
    if (c->buf.size() - c->pos > kMaxHead)  // read by AwaitNextHead: as the poller would answer
      return RefuseLocked(c, 431, "Request Header Fields Too Large", "request head over 64 KiB");
    ParkLocked(c);
  }

  static constexpr size_t kMaxHead = 64 << 10;
  static constexpr size_t kMaxDiscardPerRead = 256 << 10;  // a lingering connection's, per poller pass
  static constexpr int kAwaitNextMs = 2;
  const ServerOptions& opt_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  bool running_ = false;
  int epfd_ = -1;
  std::thread poller_;
  std::vector<std::thread> workers_;
  std::unordered_map<int, Conn*> parked_;
  std::deque<Conn*> queue_;
  size_t open_ = 0;
  std::unordered_map<std::string, int> per_ip_;
};

// What cpp-httplib may compress the response with, which it decides from the request's
// Accept-Encoding when it writes the response. A handler that compressed its body itself
// (Content-Encoding set: the console's precompressed files) gets nothing more. Otherwise
// gzip only: cpp-httplib's brotli runs at quality 11, about 1.4 s of CPU per MB of JSON or
// CSV (measured: 4.2 s for a 3 MB body against 0.05 s for gzip), and every browser
// offers br.
void OfferEncodings(httplib::Request& req, const HttpResponse& out) {
  bool encoded = false;
  for (const auto& [k, v] : out.headers) encoded |= (strcasecmp(k.c_str(), "Content-Encoding") == 0);
  std::string offered = req.get_header_value("Accept-Encoding");
  if (offered.empty()) return;
  req.headers.erase("Accept-Encoding");
  if (!encoded && offered.find("gzip") != std::string::npos) req.headers.emplace("Accept-Encoding", "gzip");
}

// True if the peer of `fd` has closed its side (or the socket failed): a query it asked for
// can stop. Bytes waiting to be read (a pipelined request) do not count as gone.
bool ClientGone(int fd) {
  pollfd p{fd, static_cast<short>(POLLRDHUP), 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// Head-only view of a request for preflight checks.
HttpRequest ConvertHead(const httplib::Request& req) {
  httplib::Request head = req;
  head.body.clear();
  return Convert(head);
}

}  // namespace

struct HttpServer::Impl {
  ServerContext ctx;
  NsHttplibServer svr;

  Impl(ProjectRegistry& r, ServerOptions o, Accounts* accounts) : ctx(r, std::move(o), accounts), svr(ctx.opt) {}

  // The auth middleware of a route: the caller of a request's head, or the error to answer
  // (before any body is read). Public routes have no principal.
  StatusOr<std::optional<Principal>> Guard(const httplib::Request& req, Access access) {
    if (access == Access::kPublic) return std::optional<Principal>();
    auto who = Authorize(ctx.auth, ConvertHead(req), access);
    if (!who.ok()) {
      ctx.metrics.Add("northstar_auth_refused_total", {{"access", std::string(AccessName(access))}});
      // The native event API's rejections are counted with the other protocols' too.
      if (access == Access::kIngest)
        ctx.metrics.Add("northstar_requests_rejected_total", {{"protocol", "native"}, {"reason", "auth"}});
      return who.status();
    }
    return std::optional<Principal>(std::move(who).value());
  }

  void Add(Route route) {
    auto h = [handler = std::move(route.handler)](const httplib::Request& req, httplib::Response& res,
                                                  const std::optional<Principal>& who) {
      HttpRequest in = Convert(req);
      in.principal = who ? &*who : nullptr;
      if (tls_conn) in.client_gone = [fd = tls_conn->fd] { return ClientGone(fd); };
      HttpResponse out;
      handler(in, out);
      OfferEncodings(const_cast<httplib::Request&>(req), out);
      res.status = out.status;
      for (auto& [k, v] : out.headers) res.set_header(k.c_str(), v);
      if (out.producer) {
        // Written after this returns, in chunks (gzip'd when offered); false cuts the body.
        res.set_chunked_content_provider(out.content_type,
                                         [producer = std::move(out.producer)](size_t, httplib::DataSink& sink) {
                                           bool open = true;
                                           try {
                                             producer([&](std::string_view piece) {
                                               if (open && !piece.empty())
                                                 open = sink.write(piece.data(), piece.size());
                                               return open;
                                             });
                                           } catch (const std::exception& e) {
                                             spdlog::error("streamed response cut short: {}", e.what());
                                             open = false;
                                           }
                                           if (open) sink.done();
                                           return open;
                                         });
        return;
      }
      if (!out.body.empty() || out.status != 204) res.set_content(std::move(out.body), out.content_type.c_str());
    };
    const std::string& m = route.method;
    const Access access = route.access;
    const CpuClass cpu = route.cpu;
    if (m == "GET" || m == "OPTIONS") {
      auto g = [this, h, access, cpu](const httplib::Request& req, httplib::Response& res) {
        SetThreadCpuClass(cpu);
        auto who = Guard(req, access);
        if (!who.ok()) return SendError(res, who.status());
        h(req, res, *who);
      };
      if (m == "GET")
        svr.Get(route.pattern, g);
      else
        svr.Options(route.pattern, g);
      return;
    }
    // Bodies are read through a content reader, after the auth middleware and bounded as they
    // arrive: what cpp-httplib inflates (Content-Encoding: gzip, deflate, br) reaches the
    // reader chunk by chunk, and reading stops at max_body_bytes. (The reader also keeps
    // cpp-httplib from parsing x-www-form-urlencoded bodies itself and refusing those over
    // 8 KiB: Sensors Data and PostHog SDKs send forms.)
    const size_t limit = ctx.opt.limits.max_body_bytes;
    auto r = [this, h, access, limit, cpu](const httplib::Request& req, httplib::Response& res,
                                           const httplib::ContentReader& read) {
      SetThreadCpuClass(cpu);  // before the body is read: reading and inflating it is the route's work too
      auto who = Guard(req, access);
      if (!who.ok()) {
        if (tls_conn && (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")))
          tls_conn->must_close = true;  // the body is left unread
        return SendError(res, who.status());
      }
      httplib::Request full = req;
      bool over = false;
      bool ok = read([&](const char* data, size_t n) {
        if (full.body.size() + n > limit) {
          over = true;
          return false;
        }
        full.body.append(data, n);
        return true;
      });
      if (over || !ok) {
        if (tls_conn) tls_conn->must_close = true;
        if (over || res.status == 413)
          return SendError(res, ResourceExhausted("request body is over the limit of " + std::to_string(limit) +
                                                  " bytes (after decompression)"));
        if (res.status < 400) res.status = 400;  // read_content set 415/400; the error handler writes the body
        return;
      }
      h(full, res, *who);
    };
    if (m == "POST")
      svr.Post(route.pattern, r);
    else if (m == "PATCH")
      svr.Patch(route.pattern, r);
    else if (m == "PUT")
      svr.Put(route.pattern, r);
    else if (m == "DELETE")
      svr.Delete(route.pattern, r);
    else
      spdlog::error("route {} {}: unsupported method", m, route.pattern);
  }

  void Setup() {
    svr.set_payload_max_length(ctx.opt.limits.max_body_bytes + 1024);
    // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server silently share
    // a port that is in use; keep SO_REUSEADDR only, so binding a busy port fails loudly.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
    });
    // The connection loop is ours (NsHttplibServer): these only shape the Keep-Alive header.
    svr.set_keep_alive_max_count(1000000);
    svr.set_keep_alive_timeout(ctx.opt.idle_timeout_s);
    svr.new_task_queue = [] { return new InlineQueue(); };
    // A request whose head arrived but that names no route: refuse a body before reading it
    // (routes with bodies all read through the bounded content reader above).
    svr.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if ((req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") &&
          (req.has_header("Transfer-Encoding") ||
           std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > 0)) {
        if (tls_conn) tls_conn->must_close = true;
        SendError(res, InvalidArgument(req.method + " requests take no body"));
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unexpected error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {}
      spdlog::error("request failed: {}", LogSafe(what));
      SendError(res, Internal(what));
    });
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        SendError(res, ResourceExhausted("request body is over the limit"));
      else if (res.status == 404)
        SendError(res, NotFound("no route " + req.method + " " + req.path));
      else
        res.set_content(json{{"error",
                              {{"code", "http_" + std::to_string(res.status)},
                               {"message", res.status == 400 ? "malformed HTTP request (a POST without a body needs "
                                                               "'Content-Length: 0')"
                                                             : "request failed"}}}}
                            .dump(),
                        "application/json; charset=utf-8");
    });
    ctx.metrics.Describe("northstar_auth_refused_total", "counter",
                         "Requests refused by the auth middleware, by the access the route needs.");
    for (auto& r : NativeRoutes(ctx)) Add(std::move(r));
  }
};

HttpServer::HttpServer(ProjectRegistry& registry, ServerOptions options, Accounts* accounts)
    : impl_(std::make_unique<Impl>(registry, std::move(options), accounts)) {
  impl_->Setup();
}

HttpServer::~HttpServer() { Stop(); }

ServerContext& HttpServer::context() { return impl_->ctx; }

void HttpServer::AddRoutes(std::vector<Route> routes) {
  for (auto& r : routes) impl_->Add(std::move(r));
}

StatusOr<int> HttpServer::Bind() {
  int port = impl_->ctx.opt.port;
  const std::string& host = impl_->ctx.opt.host;
  if (port == 0) {
    port = impl_->svr.bind_to_any_port(host);
    if (port < 0) return Unavailable("cannot bind " + host + " to a free port");
  } else if (!impl_->svr.bind_to_port(host, port)) {
    return Unavailable("cannot listen on " + host + ":" + std::to_string(port) +
                       " (in use? try --port 0 for a free port)");
  }
  return port;
}

void HttpServer::Serve() {
  RaiseOpenFileLimit();
  impl_->svr.Start();
  impl_->svr.listen_after_bind();
  impl_->svr.Shutdown();
}
void HttpServer::Stop() {
  if (impl_) impl_->svr.stop();
}
bool HttpServer::Listening() const { return impl_ && impl_->svr.is_running(); }

size_t HttpServer::open_connections() { return impl_->svr.open_connections(); }

}  // namespace ns
