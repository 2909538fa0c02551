#include "app/server_metrics.h"

#include <fmt/format.h>

namespace hearth::app {

void Metrics::record_request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  Latency& l = latency_[route];
  for (size_t i = 0; i < kLatencyBuckets.size(); ++i)
    if (seconds <= kLatencyBuckets[i]) ++l.buckets[i];
  ++l.count;
  l.sum += seconds;
}

void Metrics::record_generation(int64_t prompt_tokens, int64_t prompt_tokens_evaluated,
                                int64_t generated_tokens, double prefill_seconds,
                                double decode_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++generations_;
  prompt_tokens_ += prompt_tokens;
  prompt_tokens_evaluated_ += prompt_tokens_evaluated;
  generated_tokens_ += generated_tokens;
  prefill_seconds_ += prefill_seconds;
  decode_seconds_ += decode_seconds;
}

std::string Metrics::render(int slots, int busy_slots, int queued) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  family("hearth_http_requests_total", "counter", "HTTP requests by route and status.");
  for (const auto& [key, n] : requests_)
    out += fmt::format("hearth_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  family("hearth_http_request_duration_seconds", "histogram",
         "HTTP request latency, to the last byte.");
  for (const auto& [route, l] : latency_) {
    for (size_t i = 0; i < kLatencyBuckets.size(); ++i)
      out +=
          fmt::format("hearth_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                      route, kLatencyBuckets[i], l.buckets[i]);
    out +=
        fmt::format("hearth_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                    route, l.count);
    out +=
        fmt::format("hearth_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", route, l.sum);
    out += fmt::format("hearth_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", route,
                       l.count);
  }
  family("hearth_generations_total", "counter", "Finished generations.");
  out += fmt::format("hearth_generations_total {}\n", generations_);
  family("hearth_prompt_tokens_total", "counter", "Prompt tokens of finished generations.");
  out += fmt::format("hearth_prompt_tokens_total {}\n", prompt_tokens_);
  family("hearth_prompt_tokens_evaluated_total", "counter",
         "Prompt tokens evaluated (not found in a slot's cache).");
  out += fmt::format("hearth_prompt_tokens_evaluated_total {}\n", prompt_tokens_evaluated_);
  family("hearth_generated_tokens_total", "counter", "Tokens generated.");
  out += fmt::format("hearth_generated_tokens_total {}\n", generated_tokens_);
  family("hearth_prefill_seconds_total", "counter", "Seconds spent evaluating prompts.");
  out += fmt::format("hearth_prefill_seconds_total {}\n", prefill_seconds_);
  family("hearth_decode_seconds_total", "counter",
         "Seconds spent generating tokens (per slot, summed).");
  out += fmt::format("hearth_decode_seconds_total {}\n", decode_seconds_);
  family("hearth_slots", "gauge", "Generation slots.");
  out += fmt::format("hearth_slots {}\n", slots);
  family("hearth_slots_busy", "gauge", "Slots generating now.");
  out += fmt::format("hearth_slots_busy {}\n", busy_slots);
  family("hearth_queue_depth", "gauge", "Requests waiting for a slot.");
  out += fmt::format("hearth_queue_depth {}\n", queued);
  return out;
}

}  // namespace hearth::app
