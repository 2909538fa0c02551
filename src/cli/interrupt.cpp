#include "cli/interrupt.h"

#include <fmt/core.h>
#include <signal.h>

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

void print_stats(const engine::GenerateResult& r) {
  const double pp = r.prefill_seconds > 0 ? r.n_prompt_evaluated / r.prefill_seconds : 0;
  const double tg = r.decode_seconds > 0 ? r.n_decoded / r.decode_seconds : 0;
  fmt::print(stderr, "[prompt {} tokens ({} new) {:.1f} ms, {:.1f} t/s | answer {} tokens {:.2f} s, {:.1f} t/s | {}]\n",
             r.n_prompt, r.n_prompt_evaluated, r.prefill_seconds * 1e3, pp, r.n_decoded, r.decode_seconds, tg,
             engine::stop_reason_name(r.reason));
}

}  // namespace hearth::cli
