// The Split pre-tokenizer's regex, compiled with PCRE2 (8-bit, UTF, Unicode properties, JIT when
// the library has it). Immutable after construction, so it is shared between threads (each
// search gets its own match data).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace unibiomed::tokenize {

class SplitRegex {
 public:
  // Throws Error(Input) naming `where` when the pattern does not compile.
  SplitRegex(const std::string& pattern, const std::string& where);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Calls `on_match(start, end)` for every match of valid UTF-8 `text`, left to right, with
  // Python's rules for empty matches (after an empty match the next one may not be empty at
  // the same place).
  void for_each_match(std::string_view text,
                      const std::function<void(std::size_t, std::size_t)>& on_match) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

}  // namespace unibiomed::tokenize
