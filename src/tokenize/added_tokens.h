// Added tokens, matched in the text before tokenisation: leftmost, longest first (what Hugging
// Face's tokenizers does with Aho-Corasick), with the lstrip/rstrip/single_word rules.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "unibiomed/tokenizer.h"

namespace unibiomed::tokenize {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = true;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// One piece of a split text: plain text (token == nullptr) or an added token.
struct TextPiece {
  std::string_view text;
  const AddedToken* token = nullptr;
};

class AddedTokenSplitter {
 public:
  AddedTokenSplitter() = default;
  // Keeps pointers to `tokens`, which must outlive the splitter; empty contents are ignored.
  explicit AddedTokenSplitter(const std::vector<const AddedToken*>& tokens);

  bool empty() const { return order_.empty(); }
  // Splits valid UTF-8 `text`; a token piece's text is the token's content, and the whitespace
  // its lstrip/rstrip swallows belongs to no piece.
  std::vector<TextPiece> split(std::string_view text) const;

 private:
  // The leftmost-longest match at or after `from`: its token and start, or nullptr.
  const AddedToken* find(std::string_view text, std::size_t from, std::size_t* start) const;

  std::vector<const AddedToken*> order_;  // longest first (in code points), then by text
  // Per first byte, the indices into order_ of the tokens starting with it, in order.
  std::array<std::vector<std::size_t>, 256> by_first_byte_;
};

}  // namespace unibiomed::tokenize
