#include "cli/interrupt.h"

#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace hearth::cli {
namespace {

std::atomic<bool> g_interrupted{false};
struct sigaction g_previous {};

void on_sigint(int) { g_interrupted.store(true); }

}  // namespace

InterruptGuard::InterruptGuard() {
  g_interrupted.store(false);
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns so the prompt can react
  sigaction(SIGINT, &sa, &g_previous);
}

InterruptGuard::~InterruptGuard() { sigaction(SIGINT, &g_previous, nullptr); }

const std::atomic<bool>& InterruptGuard::flag() const { return g_interrupted; }

bool InterruptGuard::take() { return g_interrupted.exchange(false); }

ReadLine read_line(InterruptGuard& guard, std::string& line) {
  static std::string pending;  // bytes read past the last line
  line.clear();
  for (;;) {
    if (const size_t nl = pending.find('\n'); nl != std::string::npos) {
      line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return ReadLine::kLine;
    }
    // SIGINT stays blocked from the flag check until ppoll waits, which unblocks it
    // atomically: a Ctrl-C in between is not lost.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if (guard.take()) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return ReadLine::kInterrupted;
    }
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int r = ppoll(&p, 1, nullptr, &old);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;  // the flag check above reports it
      return ReadLine::kEof;
    }
    char buf[4096];
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // end of input: a last line without a newline still counts
      if (pending.empty()) return ReadLine::kEof;
      line.swap(pending);
      return ReadLine::kLine;
    }
    pending.append(buf, static_cast<size_t>(n));
  }
}

void print_stats(const engine::GenerateResult& r) {
  const double pp = r.prefill_seconds > 0 ? r.n_prompt_evaluated / r.prefill_seconds : 0;
  const double tg = r.decode_seconds > 0 ? r.n_decoded / r.decode_seconds : 0;
  fmt::print(stderr, "[prompt {} tokens ({} new) {:.1f} ms, {:.1f} t/s | answer {} tokens {:.2f} s, {:.1f} t/s | {}]\n",
             r.n_prompt, r.n_prompt_evaluated, r.prefill_seconds * 1e3, pp, r.n_decoded, r.decode_seconds, tg,
             engine::stop_reason_name(r.reason));
}

}  // namespace hearth::cli
