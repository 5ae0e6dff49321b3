// Tokenizers: text to token ids and back, exactly as the model was trained. Two kinds behind one
// interface, chosen by the bundle manifest's `tokenizer.kind`:
//   "sentencepiece"  a SentencePiece .model (libsentencepiece);
//   "bpe"            a Hugging Face byte-level BPE tokenizer.json (Qwen2): NFC, the Split regex,
//                    byte-to-unicode, merges by rank, added tokens matched first.
// A loaded tokenizer is immutable and may be shared between threads; a StreamDecoder is
// per request.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace unibiomed {

using TokenId = std::int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "sentencepiece" or "bpe".
  virtual std::string kind() const = 0;
  // Token ids of `text` (UTF-8; invalid UTF-8 is an input error naming the byte offset). Added
  // and special tokens written in the text are matched first, longest first; nothing else is
  // added (no BOS/EOS).
  virtual std::vector<TokenId> encode(const std::string& text) const = 0;
  // The UTF-8 text of `ids`; `skip_special` drops added/special tokens. Bytes that do not form
  // valid UTF-8 at the end become U+FFFD.
  virtual std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const = 0;
  // The raw bytes a token stands for (special tokens: their text).
  virtual std::string token_bytes(TokenId id) const = 0;
  virtual bool is_special(TokenId id) const = 0;
  // Id of a token's text (a special token, or a vocabulary entry); throws naming the token.
  virtual TokenId token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(TokenId id) const = 0;
  virtual std::size_t vocab_size() const = 0;
  // Every token matched before tokenisation (added and special), text -> id.
  virtual const std::map<std::string, TokenId>& special_tokens() const = 0;
};

// Loads `path` of the given kind; `added_tokens` must all be tokens of the file (for "bpe",
// ones the file lacks are appended with the next free ids, special and not normalised, as
// Hugging Face's add_tokens does). Throws Error(Input) naming the file or the token.
std::unique_ptr<const Tokenizer> load_tokenizer(const std::string& kind,
                                                const std::filesystem::path& path,
                                                const std::vector<std::string>& added_tokens = {});

// "sentencepiece" for *.model, "bpe" for *.json.
std::string tokenizer_kind_for(const std::filesystem::path& path);

// Turns ids into text as they are generated: returns only complete UTF-8 characters, holding
// back the bytes of a character whose remaining bytes are still to come.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  std::string push(TokenId id);
  // The held-back bytes (as U+FFFD when they never completed a character).
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace unibiomed
