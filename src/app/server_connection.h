// Internal to the server: how hearth serve accepts, reads and closes TCP connections, so
// that slow, silent or abusive clients cannot starve everyone else. cpp-httplib parses
// HTTP; this file owns the socket side of each connection (its thread, its deadlines, its
// byte limits) through httplib's Stream and TaskQueue interfaces.
//
// Invariants (tests/python/test_server_hostile.py checks them from outside):
// - At most max_connections connections are served at once, each on its own thread (httplib
//   serves a connection on one thread). A connection beyond that is answered at once, on the
//   accept thread, with a 503 and closed; it never waits for a thread, so there is no queue
//   of accepted sockets.
// - A request's line, headers and body must all arrive within read_timeout, counted from the
//   moment its connection opened or its previous response was sent. A connection that is
//   silent or slower than that is closed (408 when part of a request had arrived). Idle
//   keep-alive connections therefore close after read_timeout too.
// - The request line and headers together are at most kMaxHeadBytes; the body is bounded by
//   httplib's payload limit (the server refuses chunked and compressed request bodies, which
//   that limit does not cover: see server.cpp).
// - A connection serves at most kMaxRequestsPerConnection requests, then closes.
// - One write may wait at most write_timeout for the client to take data.
// - After stop() every connection thread returns within kStopPollInterval.
// Thread safety: HttpServer is shared by all connection threads; stats() and the
// current_request_* functions may be called from any thread (the latter act on the
// calling thread's connection).
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace hearth::app {

inline constexpr size_t kMaxHeadBytes = 64 * 1024;
inline constexpr size_t kMaxRequestsPerConnection = 100;
inline constexpr std::chrono::milliseconds kStopPollInterval{200};

struct ConnectionLimits {
  int max_connections = 128;
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
  // Complete HTTP responses (status line, headers, body) sent by this layer itself: to a
  // connection beyond max_connections, and to one whose request line did not arrive in
  // time (httplib answers nothing then; later parts time out through its error handler).
  std::string refusal_response;
  std::string timeout_response;
};

struct ConnectionStats {
  int64_t open = 0;        // connections being served now
  uint64_t refused = 0;    // turned away because max_connections were open
  uint64_t timed_out = 0;  // closed because a request did not arrive within read_timeout
};

class HttpServer : public httplib::Server {
 public:
  explicit HttpServer(ConnectionLimits limits);
  // httplib listens with a backlog of 5 (a compile-time constant of the shared library); a
  // burst of connections overflows that and clients wait a 1 s SYN retry. Linux lets a
  // listening socket's backlog be raised by calling listen() again. Call after binding.
  void raise_backlog();
  ConnectionStats stats() const;

  // For handlers: true when the calling thread's request failed because it did not arrive
  // within read_timeout (httplib then reports a plain 400; the error handler says 408).
  static bool current_request_timed_out();
  // For handlers: close the calling thread's connection once this response is sent (used
  // when a request is refused before its body was read, so the unread body is never taken
  // for the next request).
  static void close_current_connection_after_response();
  // For handlers that work before they answer (embeddings): false once the client of the
  // calling thread's connection has closed or reset its end, so the work can stop. A poll
  // and at most a one-byte peek; true outside a connection thread.
  static bool current_client_connected();

  // Bookkeeping for the connection threads (server_connection.cpp).
  struct Counters {
    std::atomic<int64_t> open{0};
    std::atomic<uint64_t> refused{0};
    std::atomic<uint64_t> timed_out{0};
  };

 private:
  bool process_and_close_socket(socket_t sock) override;
  void refuse(socket_t sock);
  void lingering_close(socket_t sock);

  const ConnectionLimits limits_;
  Counters counters_;
};

}  // namespace hearth::app
