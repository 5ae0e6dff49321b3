#include "unibiomed/chat.h"

#include "unibiomed/error.h"

namespace unibiomed {
namespace {

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

std::string strip(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace

std::string task_text(const ChatSettings& chat, const std::string& task, const std::string& target,
                      const std::string& question) {
  const auto it = chat.tasks.find(task);
  if (it == chat.tasks.end()) {
    std::string known;
    for (const auto& item : chat.tasks) known += (known.empty() ? "" : ", ") + item.first;
    throw usage_error("unknown task '" + task + "' (this model knows: " + known + ")");
  }
  std::string text = it->second;
  if (text.find("{target}") != std::string::npos && target.empty()) {
    throw usage_error("task '" + task + "' needs a target (--target)");
  }
  if (text.find("{question}") != std::string::npos && question.empty()) {
    throw usage_error("task '" + task + "' needs a question (--question)");
  }
  replace_all(text, "{target}", target);
  replace_all(text, "{question}", question);
  return text;
}

std::string expand_image_tokens(const std::string& text, const std::vector<int>& tokens_per_frame,
                                const std::string& placeholder) {
  std::string out = text;
  if (out.find(placeholder) == std::string::npos) out = placeholder + "\n" + out;
  std::string blocks;
  for (const int n : tokens_per_frame) {
    blocks += "<img>";
    for (int i = 0; i < n; ++i) blocks += "<IMG_CONTEXT>";
    blocks += "</img>\n";
  }
  replace_all(out, placeholder, strip(blocks));
  return out;
}

std::string chat_prompt(const ChatSettings& chat, const std::string& user_text) {
  std::string prompt = chat.template_text;
  replace_all(prompt, "{input}", user_text);
  return chat.system + prompt;
}

std::optional<std::size_t> find_stop(const std::string& text,
                                     const std::vector<std::string>& stop_words) {
  std::string flat;
  flat.reserve(text.size());
  for (const char c : text) {
    if (c != '\r' && c != '\n') flat.push_back(c);
  }
  for (const auto& word : stop_words) {
    if (word.empty() || flat.size() < word.size()) continue;
    if (flat.compare(flat.size() - word.size(), word.size(), word) != 0) continue;
    const auto at = text.rfind(word);
    return at == std::string::npos ? text.size() : at;
  }
  return std::nullopt;
}

}  // namespace unibiomed
