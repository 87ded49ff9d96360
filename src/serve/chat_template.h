// The chat template of /v1/chat/completions: a minimal, documented one (docs/serve.md), the same for every model,
// since our checkpoints carry none. Each message becomes
//     <|ROLE|>\n CONTENT \n          (no spaces: "<|user|>\nHello\n")
// and the prompt ends with "<|assistant|>\n", where the model continues. Generation also stops at kChatStop, the
// start of the next turn's marker (the text before it is the reply). Roles: system, developer, user, assistant.
#pragma once
#include <string>
#include <vector>

namespace wattmoe {

struct ChatMessage {
  std::string role, content;
};

inline constexpr const char* kChatStop = "\n<|";

std::string render_chat(const std::vector<ChatMessage>& messages);

}  // namespace wattmoe
