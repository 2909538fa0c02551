#include "engine/chat_template.h"

#include "engine/jinja_interpreter.h"
#include "engine/jinja_parser.h"

namespace hearth::engine {

struct ChatTemplate::Impl {
  std::shared_ptr<const jinja::Template> tpl;
};

Expected<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  try {
    ChatTemplate t;
    auto impl = std::make_shared<Impl>();
    impl->tpl = jinja::parse_template(source);
    t.impl_ = std::move(impl);
    return t;
  } catch (const jinja::JinjaError& e) {
    return make_error("chat template: {}", e.what());
  } catch (const std::bad_alloc&) {
    return make_error("chat template: out of memory while parsing");
  }
}

Expected<std::string> ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!impl_) return make_error("chat template: render() on an empty template");
  jinja::Interpreter interp;
  try {
    jinja::Value ctx = jinja::Value::from_json(context);
    return interp.render(*impl_->tpl, ctx);
  } catch (const jinja::JinjaError& e) {
    std::string what = e.what();
    if (what.rfind("line ", 0) != 0) what = "line " + std::to_string(interp.line()) + ": " + what;
    return make_error("chat template: {}", what);
  } catch (const std::bad_alloc&) {
    return make_error("chat template: out of memory while rendering");
  }
}

Expected<std::string> ChatTemplate::render(const nlohmann::json& context) const {
  return render(nlohmann::ordered_json::parse(context.dump()));
}

Expected<std::string> ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt, std::string_view bos_token,
                                          std::string_view eos_token) const {
  nlohmann::ordered_json ctx;
  ctx["messages"] = nlohmann::ordered_json::array();
  for (const auto& m : messages)
    ctx["messages"].push_back({{"role", m.role}, {"content", m.content}});
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["bos_token"] = std::string(bos_token);
  ctx["eos_token"] = std::string(eos_token);
  return render(ctx);
}

}  // namespace hearth::engine
