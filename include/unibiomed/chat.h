// Prompt building as the release does it: task text, <image> expansion, the chat template,
// and stop words found on the decoded output.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace unibiomed {

// The tokens the release adds to the vocabulary, in the order it adds them.
inline const std::vector<std::string>& added_tokens() {
  static const std::vector<std::string> kTokens = {"[SEG]", "<p>",   "</p>",   "<vp>",
                                                   "</vp>", "<img>", "</img>", "<IMG_CONTEXT>"};
  return kTokens;
}

struct ChatSettings {
  std::string template_text = "<|user|>\n{input}<|end|>\n<|assistant|>\n";
  std::string system;
  std::vector<std::string> stop_words = {"<|end|>"};
  std::string image_placeholder = "<image>";
  int max_new_tokens = 2048;
  std::vector<std::int32_t> eos_token_ids;
  std::map<std::string, std::string> tasks;  // task -> text with {target} / {question}
};

// The user text of a task, e.g. "<image>Please segment liver.". Throws Error(Usage) for an
// unknown task or a missing target/question.
std::string task_text(const ChatSettings& chat, const std::string& task,
                      const std::string& target = "", const std::string& question = "");

// Replaces the placeholder by <img> + N x <IMG_CONTEXT> + </img> per frame (N from
// tokens_per_frame), each block followed by a newline and the whole replacement stripped; a
// text without the placeholder gets "<image>\n" prepended first.
std::string expand_image_tokens(const std::string& text, const std::vector<int>& tokens_per_frame,
                                const std::string& placeholder = "<image>");

// system + template with {input} replaced.
std::string chat_prompt(const ChatSettings& chat, const std::string& user_text);

// Where a stop word ends `text` (compared with CR and LF removed, as the release's stopping
// criterion does): the byte offset of the stop word in `text`, or nothing.
std::optional<std::size_t> find_stop(const std::string& text,
                                     const std::vector<std::string>& stop_words);

}  // namespace unibiomed
