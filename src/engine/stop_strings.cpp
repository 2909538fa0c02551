#include "engine/stop_strings.h"

#include <algorithm>
#include <utility>

#include "platform/utf8.h"

namespace hearth::engine {

namespace {

// Longest suffix of `text` that is a proper prefix of `stop`.
size_t partial_match_length(std::string_view text, std::string_view stop) {
  const size_t max_len = std::min(text.size(), stop.size() - 1);
  for (size_t len = max_len; len > 0; --len) {
    if (text.substr(text.size() - len) == stop.substr(0, len)) return len;
  }
  return 0;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

StopMatcher::Result StopMatcher::feed(std::string_view piece) {
  out_.clear();
  if (stopped_) return {out_, true};

  work_.assign(held_);
  work_.append(piece);
  const std::string_view text(work_);

  size_t stop_at = std::string_view::npos;
  for (const auto& s : stops_) stop_at = std::min(stop_at, text.find(s));
  if (stop_at != std::string_view::npos) {
    out_.assign(text.substr(0, stop_at));
    held_.clear();
    stopped_ = true;
    return {out_, true};
  }

  size_t hold = text.size() - platform::utf8::complete_prefix_length(text);
  for (const auto& s : stops_) hold = std::max(hold, partial_match_length(text, s));
  const size_t cut = text.size() - hold;
  out_.assign(text.substr(0, cut));
  held_.assign(text.substr(cut));
  return {out_, false};
}

std::string_view StopMatcher::flush() {
  out_.clear();
  if (!stopped_) out_.swap(held_);
  held_.clear();
  return out_;
}

void StopMatcher::reset() {
  held_.clear();
  out_.clear();
  stopped_ = false;
}

}  // namespace hearth::engine
