// hearth run: chat with a model in the terminal, or answer one prompt and exit.
#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>

#include "app/chat_session.h"
#include "cli/common.h"
#include "cli/confine.h"
#include "cli/interrupt.h"
#include "cli/vault_access.h"
#include "platform/utf8.h"

namespace hearth::cli {
namespace {

constexpr const char* kHelp =
    "Commands: /exit (or Ctrl-D) quits, /reset starts a new conversation, /system TEXT sets the system prompt.\n"
    "Ctrl-C stops the current answer.\n";

bool stream_answer(app::ChatSession& chat, const std::string& text, InterruptGuard& guard, bool verbose, int& exit_code) {
  auto res = chat.send(text, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  }, &guard.flag());
  if (!res) {
    exit_code = fail(res.error());
    return false;
  }
  std::fputs("\n", stdout);
  std::fflush(stdout);
  if (res->reason == engine::StopReason::kCancelled) fmt::print(stderr, "[stopped]\n");
  if (res->reason == engine::StopReason::kContextFull)
    fmt::print(stderr, "[the context is full; the answer was cut. /reset, or run with a larger --ctx]\n");
  if (verbose) print_stats(*res);
  guard.take();
  return true;
}

}  // namespace

void register_run(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    ContextFlags context;
    SamplingFlags sampling;
    std::string prompt, system;
    bool prompt_set = false, verbose = false, no_history = false, require_sandbox = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Chat with a model (interactive), or answer one prompt (-p, or piped on stdin) and exit");
  o->model.add(cmd);
  cmd->add_option_function<std::string>("-p,--prompt", [o](const std::string& v) { o->prompt = v; o->prompt_set = true; },
                                        "Answer this prompt and exit");
  cmd->add_option("-s,--system", o->system, "System prompt (default: the model template's own)");
  cmd->add_flag("-v,--verbose", o->verbose, "Print prompt and answer speed after each answer");
  cmd->add_flag("--no-history", o->no_history, "Keep nothing: do not save this chat in the encrypted vault");
  cmd->add_flag("--require-sandbox", o->require_sandbox, "Refuse to run unless the process can confine itself fully (Landlock with network rules, and seccomp)");
  o->context.add(cmd);
  o->sampling.add(cmd, -1);
  cmd->callback([o, &exit_code] {
    if (Status s = o->sampling.validate(); !s) { exit_code = fail(s.error()); return; }
    const bool interactive = !o->prompt_set && isatty(STDIN_FILENO);
    std::string prompt = o->prompt;
    if (!o->prompt_set && !interactive) {  // a prompt piped on stdin
      prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      while (!prompt.empty() && (prompt.back() == '\n' || prompt.back() == '\r')) prompt.pop_back();
    }
    if (!interactive) {
      if (prompt.find_first_not_of(" \t\r\n") == std::string::npos) { exit_code = fail("the prompt is empty"); return; }
      if (!platform::utf8::is_valid(prompt)) { exit_code = fail("the prompt is not valid UTF-8"); return; }
    }
    std::unique_ptr<HistoryHook> history;
    if (!o->no_history) {
      auto h = HistoryHook::open();
      if (!h) { exit_code = fail(h.error()); return; }
      history = std::move(*h);
    }
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    if (history) history->model_loaded(o->model.model);
    auto confined = confine(o->model.model, o->require_sandbox);
    if (!confined) { exit_code = fail(confined.error()); return; }
    if (history) history->audit_event("sandbox", sandbox_audit(*confined));
    auto params = o->context.params(**model);
    if (!params) { exit_code = fail(params.error()); return; }
    app::ChatOptions opts;
    opts.context = *params;
    opts.generate = o->sampling.gen;
    opts.system_prompt = o->system;
    auto chat = app::ChatSession::create(**model, opts);
    if (!chat) { exit_code = fail(chat.error()); return; }
    InterruptGuard guard;
    if (!interactive) {
      if (stream_answer(**chat, prompt, guard, o->verbose, exit_code) && history) history->store_turn(**chat);
      return;
    }

    fmt::print(stderr, "hearth: chatting with {} (everything stays on this machine). /help for commands.\n",
               (*model)->gguf().get_string("general.name").value_or((*model)->gguf().name()));
    std::string line;
    for (;;) {
      fmt::print(">>> ");
      std::fflush(stdout);
      const ReadLine got = read_line(guard, line);
      if (got == ReadLine::kInterrupted) {  // Ctrl-C at the prompt: not an exit
        fmt::print("\n(use /exit or Ctrl-D to quit)\n");
        continue;
      }
      if (got == ReadLine::kEof) {
        fmt::print("\n");
        return;
      }
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (line == "/exit" || line == "/bye" || line == "/quit") return;
      if (line == "/help" || line == "/?") { fmt::print("{}", kHelp); continue; }
      if (line == "/reset" || line == "/clear") {
        (*chat)->reset();
        if (history) history->new_conversation();
        fmt::print(stderr, "[new conversation]\n");
        continue;
      }
      if (line.rfind("/system", 0) == 0 && (line.size() == 7 || line[7] == ' ')) {
        (*chat)->set_system(line.size() > 8 ? line.substr(8) : "");
        fmt::print(stderr, "[system prompt set; the conversation continues]\n");
        continue;
      }
      if (line[0] == '/') {  // the command word only: the rest may be a prompt, kept out of logs
        fmt::print(stderr, "unknown command {}. {}", line.substr(0, line.find(' ')), kHelp);
        continue;
      }
      if (!platform::utf8::is_valid(line)) { fmt::print(stderr, "hearth: that line is not valid UTF-8; try again\n"); continue; }
      if (!stream_answer(**chat, line, guard, o->verbose, exit_code)) {
        exit_code = 0;  // a failed turn is reported; the chat goes on
        continue;
      }
      if (history) history->store_turn(**chat);
    }
  });
}

}  // namespace hearth::cli
