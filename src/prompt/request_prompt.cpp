#include "prompt/request_prompt.h"

#include "unibiomed/error.h"

namespace unibiomed {
namespace {

std::string trim_space(const std::string& text) {
  const char* space = " \t\n\r\v\f";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::string preview(const std::string& text) {
  return text.size() <= 40 ? text : text.substr(0, 40) + "...";
}

// A target or question as it goes into the prompt: trimmed, bounded, free of control tokens.
std::string checked_text(const std::string& text, const std::string& option,
                         const ChatSettings& chat) {
  const std::string value = trim_space(text);
  if (value.empty()) throw usage_error(option + " is empty");
  if (value.size() > kMaxTargetBytes) {
    throw usage_error(option + " is " + std::to_string(value.size()) + " bytes long (at most " +
                      std::to_string(kMaxTargetBytes) + "): '" + preview(value) + "'");
  }
  std::vector<std::string> forbidden = added_tokens();
  forbidden.push_back(chat.image_placeholder);
  for (const auto& token : forbidden) {
    if (!token.empty() && value.find(token) != std::string::npos) {
      throw usage_error(option + " '" + preview(value) + "' holds the model's control token " +
                        token);
    }
  }
  return value;
}

std::size_t count_of(const std::string& text, const std::string& word) {
  std::size_t n = 0;
  for (auto at = text.find(word); !word.empty() && at != std::string::npos;
       at = text.find(word, at + word.size())) {
    ++n;
  }
  return n;
}

}  // namespace

std::vector<PromptText> request_prompts(const ChatSettings& chat, const InterpretRequest& request) {
  if (!request.raw_prompt.empty()) {
    if (request.raw_prompt.size() > 16 * kMaxTargetBytes) {
      throw usage_error("--prompt is " + std::to_string(request.raw_prompt.size()) +
                        " bytes long (at most " + std::to_string(16 * kMaxTargetBytes) + ")");
    }
    if (count_of(request.raw_prompt, chat.image_placeholder) > 1) {
      throw usage_error("--prompt holds " + chat.image_placeholder +
                        " more than once (the model sees one image)");
    }
    return {{"", request.raw_prompt}};
  }
  if (!chat.tasks.count(request.task)) {
    std::string known;
    for (const auto& [name, text] : chat.tasks) known += (known.empty() ? "" : ", ") + name;
    throw usage_error("--task " + request.task + ": this model knows " + known);
  }
  std::vector<PromptText> prompts;
  const std::string& pattern = chat.tasks.at(request.task);
  if (pattern.find("{target}") != std::string::npos) {
    if (request.targets.empty()) {
      throw usage_error("--task " + request.task + " needs --target (what to segment)");
    }
    for (const auto& raw : request.targets) {
      const std::string target = checked_text(raw, "--target", chat);
      prompts.push_back({target, task_text(chat, request.task, target)});
    }
    return prompts;
  }
  std::string question;
  if (pattern.find("{question}") != std::string::npos) {
    if (request.task == "region" && request.question.empty()) {
      question = kDefaultRegionQuestion;
    } else if (request.question.empty()) {
      throw usage_error("--task " + request.task + " needs --question");
    } else {
      question = checked_text(request.question, "--question", chat);
    }
  }
  prompts.push_back({"", task_text(chat, request.task, "", question)});
  return prompts;
}

void check_box(const PixelBox& box, int width, int height) {
  const std::string text = std::to_string(box.x0) + "," + std::to_string(box.y0) + "," +
                           std::to_string(box.x1) + "," + std::to_string(box.y1);
  if (box.x0 > box.x1 || box.y0 > box.y1) {
    throw usage_error("--box " + text + ": expected x0,y0,x1,y1 with x0 <= x1 and y0 <= y1");
  }
  if (box.x0 < 0 || box.y0 < 0 || box.x1 >= width || box.y1 >= height) {
    throw usage_error("--box " + text + " lies outside the " + std::to_string(width) + "x" +
                      std::to_string(height) + " image (pixels 0.." + std::to_string(width - 1) +
                      ", 0.." + std::to_string(height - 1) + ")");
  }
}

}  // namespace unibiomed
