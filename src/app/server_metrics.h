// Server counters for GET /metrics, in Prometheus text format (version 0.0.4).
//
// Records only what was asked of whom and how it went: route, status, latency, token
// counts. Never prompt or answer text.
// Thread safety: every member may be called from any thread (one mutex).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace hearth::app {

class Metrics {
 public:
  // One finished HTTP request: route pattern (e.g. "/v1/chat/completions"), status, seconds.
  void record_request(const std::string& route, int status, double seconds);
  // One finished generation.
  void record_generation(int64_t prompt_tokens, int64_t prompt_tokens_evaluated,
                         int64_t generated_tokens, double prefill_seconds, double decode_seconds);
  // The exposition text; gauges (slots, queue) are passed in by the caller.
  std::string render(int slots, int busy_slots, int queued) const;

  static constexpr std::array<double, 10> kLatencyBuckets = {0.005, 0.01, 0.05, 0.1, 0.5,
                                                             1,     2.5,  5,    10,  30};

 private:
  struct Latency {
    std::array<uint64_t, kLatencyBuckets.size()> buckets{};  // cumulative counts
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Latency> latency_;
  uint64_t generations_ = 0;
  int64_t prompt_tokens_ = 0, prompt_tokens_evaluated_ = 0, generated_tokens_ = 0;
  double prefill_seconds_ = 0, decode_seconds_ = 0;
};

}  // namespace hearth::app
