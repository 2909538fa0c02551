// libFuzzer target: any bytes as the body of a generation or embedding request (the first
// byte picks the endpoint: 0-3 generation kinds, 4-6 embedding APIs), plus the Host-header
// check on the same bytes. Must never crash, hang or leak: bad bodies are ApiError values
// with a 4xx status.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "app/server_auth.h"
#include "app/server_request.h"
#include "platform/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1u << 20)) return 0;
  using hearth::app::ApiKind;
  static constexpr ApiKind kKinds[] = {ApiKind::kOpenAiChat, ApiKind::kOpenAiCompletion,
                                       ApiKind::kOllamaChat, ApiKind::kOllamaGenerate};
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 7 >= 4) {
    using hearth::app::EmbedApi;
    static constexpr EmbedApi kApis[] = {EmbedApi::kOpenAi, EmbedApi::kOllamaEmbed,
                                         EmbedApi::kOllamaLegacy};
    const EmbedApi api = kApis[data[0] % 7 - 4];
    const hearth::app::EmbeddingParseResult r = hearth::app::parse_embedding_request(api, body);
    if (r.request) {
      const auto& inputs = r.request->inputs;
      if (inputs.empty() || inputs.size() > hearth::app::kMaxEmbeddingInputs) std::abort();
      for (const auto& in : inputs) {
        if (in.from_tokens ? in.tokens.empty() : in.text.empty()) std::abort();
        if (in.from_tokens && api != EmbedApi::kOpenAi) std::abort();
        for (int32_t t : in.tokens)
          if (t < 0) std::abort();
      }
    } else if (r.error.status < 400 || r.error.status > 499 || r.error.message.empty()) {
      std::abort();
    }
    return 0;
  }
  const ApiKind kind = kKinds[data[0] % 7];
  const hearth::app::ParseResult r = hearth::app::parse_request(kind, body);
  if (r.request) {
    // What the handlers rely on.
    const bool chat = kind == ApiKind::kOpenAiChat || kind == ApiKind::kOllamaChat;
    if (chat && r.request->messages.empty()) std::abort();
    if (r.request->gen.max_tokens < -1) std::abort();
    if (!hearth::platform::utf8::is_valid(r.request->prompt)) std::abort();
  } else if (r.error.status < 400 || r.error.status > 499 || r.error.message.empty()) {
    std::abort();
  }
  (void)hearth::app::host_allowed(body, "192.168.1.2");
  (void)hearth::app::bearer_matches(
      body, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  return 0;
}
