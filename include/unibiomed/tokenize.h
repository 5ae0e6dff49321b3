// `unibiomed tokenize`: text to token ids and back, line by line, with a bundle's tokenizer or a
// tokenizer file. For debugging prompts, and for checking the tokenizer from outside.
#pragma once

#include <istream>
#include <ostream>
#include <string>

namespace unibiomed {

struct TokenizeRequest {
  std::string model_dir;        // a bundle: its tokenizer, special tokens and chat template
  std::string tokenizer_file;   // or a tokenizer file (.model or tokenizer.json)
  bool decode = false;          // lines of ids -> text
  bool apply_template = false;  // encode the full chat prompt of each line (an <image> in it is
                                // expanded for `image_tiles` tiles)
  int image_tiles = 1;
  bool jsonl = false;  // input text / output text as one JSON string per line
};

// Reads lines from `in` and writes one line per input line to `out`. Throws Error naming the
// line at fault (invalid UTF-8, a bad JSON string, an id outside the vocabulary).
void run_tokenize(const TokenizeRequest& request, std::istream& in, std::ostream& out);

}  // namespace unibiomed
