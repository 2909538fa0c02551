// Connection threads and socket I/O with deadlines for hearth serve (see
// server_connection.h for the invariants).
#include "app/server_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "platform/clock.h"

namespace hearth::app {
namespace {

using Clock = platform::SteadyClock;

// Set on the accept thread while it runs the task of a connection that found every
// thread busy: process_and_close_socket then refuses that connection instead of serving it.
thread_local bool t_refusing = false;

// The threads that serve connections: one per open connection, created when needed up to
// max_connections and kept for later connections. enqueue() never queues a connection
// behind busy threads: with all of them busy it runs the task at once with t_refusing set.
// Invariant: jobs_.size() <= idle_ (a queued job always has an idle thread to take it).
class ConnectionThreads : public httplib::TaskQueue {
 public:
  ConnectionThreads(size_t max_threads, HttpServer::Counters& counters)
      : max_threads_(max_threads), counters_(counters) {}

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      if (!shutdown_ && jobs_.size() < idle_) {
        jobs_.push_back(std::move(fn));
        counters_.open++;
        cond_.notify_one();
        return;
      }
      if (!shutdown_ && threads_.size() < max_threads_) {
        counters_.open++;
        threads_.emplace_back([this, first = std::move(fn)]() mutable { work(std::move(first)); });
        return;
      }
    }
    t_refusing = true;
    fn();
    t_refusing = false;
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
    }
    cond_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void work(std::function<void()> fn) {
    for (;;) {
      fn();
      counters_.open--;
      std::unique_lock lock(mutex_);
      idle_++;
      cond_.wait(lock, [this] { return !jobs_.empty() || shutdown_; });
      idle_--;
      if (jobs_.empty()) return;  // shutting down
      fn = std::move(jobs_.front());
      jobs_.pop_front();
    }
  }

  const size_t max_threads_;
  HttpServer::Counters& counters_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable cond_;
  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  size_t idle_ = 0;
  bool shutdown_ = false;
};

std::string address_text(const sockaddr_storage& addr, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  port = 0;
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    port = ntohs(a.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    port = ntohs(a.sin6_port);
  }
  return text;
}

// One connection's socket as httplib sees it. Reads are buffered and bounded by the
// current request's deadline and head size; every wait also ends when the server stops
// (httplib sets its listening socket to INVALID_SOCKET first).
// Thread safety: used by the one thread that serves the connection.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t sock, const ConnectionLimits& limits,
                   const std::atomic<socket_t>& listener)
      : sock_(sock), limits_(limits), listener_(listener) {}

  // A new request may start now: its bytes must all arrive by `deadline`.
  void begin_request(Clock::time_point deadline) {
    deadline_ = deadline;
    request_bytes_ = 0;
    head_bytes_ = 0;
    head_match_ = 0;
    in_head_ = true;
    timed_out_ = false;
    answered_ = false;
  }
  bool timed_out() const { return timed_out_; }
  // True once anything of this request's response was sent.
  bool answered() const { return answered_; }
  // True when the connection must close after this response (a limit was hit, or a handler
  // asked for it).
  bool must_close() const { return failed_ || close_requested_; }
  void request_close() { close_requested_ = true; }
  // False once the client has closed or reset its end.
  bool client_open() const { return peer_open(); }

  bool is_readable() const override { return buffered() > 0 || wait(POLLIN, deadline_); }

  bool is_writable() const override {
    return wait(POLLOUT, Clock::now() + limits_.write_timeout) && peer_open();
  }

  ssize_t read(char* ptr, size_t size) override {
    if (failed_) return -1;
    if (buffered() == 0) {
      if (!wait(POLLIN, deadline_)) {
        if (Clock::now() >= deadline_ && request_bytes_ > 0) timed_out_ = true;
        failed_ = true;
        return -1;
      }
      const ssize_t n = recv_some(buffer_.data(), buffer_.size());
      if (n <= 0) {
        failed_ = true;
        return n;
      }
      buffer_begin_ = 0;
      buffer_end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, buffered());
    const char* src = buffer_.data() + buffer_begin_;
    if (in_head_ && !count_head(src, n)) {
      failed_ = true;
      return -1;
    }
    std::copy(src, src + n, ptr);
    buffer_begin_ += n;
    request_bytes_ += n;
    return static_cast<ssize_t>(n);
  }

  // Sends what the socket takes now (httplib calls again for the rest).
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      if (!is_writable()) return -1;
      const ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) answered_ = true;
      if (n >= 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) return n;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      ip = address_text(addr, port);
  }

  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      ip = address_text(addr, port);
  }

  socket_t socket() const override { return sock_; }

 private:
  size_t buffered() const { return buffer_end_ - buffer_begin_; }

  // Waits until the socket is ready for `events`, `until` passes or the server stops.
  bool wait(short events, Clock::time_point until) const {
    for (;;) {
      if (listener_.load() == INVALID_SOCKET) return false;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{sock_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min(left, kStopPollInterval).count()));
      if (r > 0) return true;  // ready, or an error/hang-up that the next call reports
      if (r < 0 && errno != EINTR) return false;
    }
  }

  ssize_t recv_some(char* dst, size_t size) {
    for (;;) {
      const ssize_t n = ::recv(sock_, dst, size, 0);
      if (n >= 0 || errno != EINTR) return n;
    }
  }

  // False when the peer has closed its end (nothing more to read and end of stream): a
  // streaming response then stops at its next write instead of generating for no one.
  bool peer_open() const {
    pollfd p{sock_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    char c;
    const ssize_t n = ::recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
  }

  // Counts head bytes (request line and headers) about to be handed to httplib, up to the
  // blank line that ends the head: "\n\r\n" (httplib ends a line at '\n' and the head at a
  // line that is exactly "\r\n"). False when the head is longer than kMaxHeadBytes.
  bool count_head(const char* p, size_t n) {
    static constexpr char kEnd[] = "\n\r\n";
    for (size_t i = 0; i < n; i++) {
      if (++head_bytes_ > kMaxHeadBytes) return false;
      if (p[i] == kEnd[head_match_])
        head_match_++;
      else
        head_match_ = p[i] == '\n' ? 1 : 0;
      if (head_match_ == 3) {
        in_head_ = false;
        return true;
      }
    }
    return true;
  }

  const socket_t sock_;
  const ConnectionLimits& limits_;
  const std::atomic<socket_t>& listener_;
  std::array<char, 16 * 1024> buffer_;
  size_t buffer_begin_ = 0, buffer_end_ = 0;
  Clock::time_point deadline_{};
  size_t request_bytes_ = 0;  // of the current request
  size_t head_bytes_ = 0;
  int head_match_ = 0;  // characters of "\n\r\n" matched so far
  bool in_head_ = true;
  bool timed_out_ = false;
  bool answered_ = false;
  bool failed_ = false;  // a read failed or hit a limit: no further request on this socket
  bool close_requested_ = false;
};

// The connection the calling thread serves (null outside a connection thread).
thread_local ConnectionStream* t_connection = nullptr;

}  // namespace

HttpServer::HttpServer(ConnectionLimits limits) : limits_(std::move(limits)) {
  new_task_queue = [this] {
    return new ConnectionThreads(static_cast<size_t>(limits_.max_connections), counters_);
  };
}

void HttpServer::raise_backlog() { ::listen(svr_sock_.load(), SOMAXCONN); }

ConnectionStats HttpServer::stats() const {
  return {counters_.open.load(), counters_.refused.load(), counters_.timed_out.load()};
}

bool HttpServer::current_request_timed_out() {
  return t_connection != nullptr && t_connection->timed_out();
}

bool HttpServer::current_client_connected() {
  return t_connection == nullptr || t_connection->client_open();
}

void HttpServer::close_current_connection_after_response() {
  if (t_connection != nullptr) t_connection->request_close();
}

bool HttpServer::process_and_close_socket(socket_t sock) {
  if (t_refusing) {
    refuse(sock);
    return false;
  }
  ConnectionStream stream(sock, limits_, svr_sock_);
  t_connection = &stream;
  bool ok = false;
  for (size_t n = 1; n <= kMaxRequestsPerConnection; n++) {
    stream.begin_request(Clock::now() + limits_.read_timeout);
    bool client_asked_close = false;
    ok = process_request(stream, n == kMaxRequestsPerConnection, client_asked_close, nullptr);
    if (stream.timed_out()) {
      counters_.timed_out++;
      if (!stream.answered())
        stream.write(limits_.timeout_response.data(), limits_.timeout_response.size());
    }
    if (!ok || client_asked_close || stream.must_close()) break;
  }
  t_connection = nullptr;
  lingering_close(sock);
  return ok;
}

// Closing a socket whose receive queue holds unread bytes (a refused body the client is
// still sending) makes the kernel send a reset, which can destroy the answer before the
// client reads it. So: end our side, then read and drop what the client still sends, for
// at most kLingerTime and kLingerBytes, and only then close.
void HttpServer::lingering_close(socket_t sock) {
  constexpr auto kLingerTime = std::chrono::milliseconds(1000);
  constexpr size_t kLingerBytes = 16u << 20;
  ::shutdown(sock, SHUT_WR);
  const auto end = Clock::now() + kLingerTime;
  std::array<char, 16384> scratch;
  size_t drained = 0;
  while (drained < kLingerBytes) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{sock, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(sock, scratch.data(), scratch.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  ::close(sock);
}

// Runs on the accept thread, so it never blocks: whatever the client has sent so far is
// read and dropped (closing a socket with unread data would reset the connection and could
// lose the answer), the 503 goes into the empty send buffer, and the socket is closed.
void HttpServer::refuse(socket_t sock) {
  counters_.refused++;
  std::array<char, 4096> scratch;
  for (int i = 0; i < 16; i++)
    if (::recv(sock, scratch.data(), scratch.size(), MSG_DONTWAIT) <= 0) break;
  [[maybe_unused]] const ssize_t sent =
      ::send(sock, limits_.refusal_response.data(), limits_.refusal_response.size(),
             MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(sock, SHUT_WR);
  ::close(sock);
}

}  // namespace hearth::app
