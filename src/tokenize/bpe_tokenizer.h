// Byte-level BPE from a Hugging Face tokenizer.json (the Qwen2 kind), with the semantics of the
// tokenizers library as tools/unibiomed_ref/tokenizer.py reproduces them: added tokens split
// out first, NFC, the Split regex ("Isolated"), the byte-to-unicode mapping, merges by rank
// (lowest first, leftmost on ties) and the ByteLevel decoder.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "added_tokens.h"
#include "unibiomed/tokenizer.h"

namespace unibiomed::tokenize {

class SplitRegex;  // the compiled Split pattern (PCRE2)

class BpeTokenizer final : public Tokenizer {
 public:
  // Loads a tokenizer.json; `added_tokens` the file lacks are appended (see load_tokenizer).
  BpeTokenizer(const std::filesystem::path& path, const std::vector<std::string>& added_tokens);
  ~BpeTokenizer() override;

  std::string kind() const override { return "bpe"; }
  std::vector<TokenId> encode(const std::string& text) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special) const override;
  std::string token_bytes(TokenId id) const override;
  bool is_special(TokenId id) const override;
  TokenId token_to_id(const std::string& token) const override;
  std::string id_to_token(TokenId id) const override;
  std::size_t vocab_size() const override { return vocab_size_; }
  const std::map<std::string, TokenId>& special_tokens() const override { return special_; }

 private:
  enum class Normalization { NFC, NFD, NFKC, NFKD };
  // Symbols are interned strings: vocabulary tokens keep their id, strings of the merges that
  // are not in the vocabulary get ids after them (an error only if a word ends up using one).
  using Symbol = std::int32_t;
  struct Merge {
    std::int32_t rank;
    Symbol merged;
  };

  Symbol intern(const std::string& piece);
  void encode_plain(std::string_view text, std::vector<TokenId>& ids) const;
  void encode_word(std::string_view bytes, std::vector<TokenId>& ids) const;
  void bpe(std::string_view bytes, std::vector<TokenId>& ids) const;
  const AddedToken* added_by_id(TokenId id) const;
  bool in_vocab(TokenId id) const;

  std::filesystem::path path_;
  std::unordered_map<std::string, Symbol> symbols_;  // vocabulary and merge strings
  std::vector<std::string> vocab_pieces_;            // by id (empty where no token)
  std::vector<bool> vocab_present_;
  std::vector<std::string> vocab_bytes_;  // by id: the raw bytes a vocabulary token stands for
  std::size_t vocab_count_ = 0;           // ids below this are vocabulary ids
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left << 32 | right) -> merge
  std::vector<std::string> internal_pieces_;         // symbols from vocab_count_ on
  std::array<Symbol, 256> byte_symbol_{};
  std::array<std::string, 256> byte_char_;  // byte -> its printable character (UTF-8)
  bool ignore_merges_ = false;
  std::vector<Normalization> normalization_;
  std::unique_ptr<SplitRegex> split_;
  bool split_isolated_ = true;

  std::vector<AddedToken> added_;
  std::unordered_map<TokenId, std::size_t> added_by_id_;
  std::unordered_map<std::string, std::size_t> added_by_content_;
  AddedTokenSplitter split_raw_;   // added tokens matched before normalisation
  AddedTokenSplitter split_norm_;  // normalized ones, matched after it
  std::map<std::string, TokenId> special_;
  std::size_t vocab_size_ = 0;

  // Words already merged (short ones only); the tokenizer is shared between threads.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
};

}  // namespace unibiomed::tokenize
