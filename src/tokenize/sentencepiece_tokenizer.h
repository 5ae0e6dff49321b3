// A SentencePiece model (libsentencepiece) whose added tokens are user-defined pieces of the
// model, as tools/unibiomed_ref/tokenizer.py's SentencePieceTokenizer: the added tokens and the
// control pieces (<s>, </s>) are matched in the text first, the rest is encoded by SentencePiece
// with no BOS/EOS; decoding is SentencePiece's own.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "added_tokens.h"
#include "unibiomed/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace unibiomed::tokenize {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::filesystem::path& path,
                         const std::vector<std::string>& added_tokens);
  ~SentencePieceTokenizer() override;

  std::string kind() const override { return "sentencepiece"; }
  std::vector<TokenId> encode(const std::string& text) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special) const override;
  std::string token_bytes(TokenId id) const override;
  bool is_special(TokenId id) const override;
  TokenId token_to_id(const std::string& token) const override;
  std::string id_to_token(TokenId id) const override;
  std::size_t vocab_size() const override;
  const std::map<std::string, TokenId>& special_tokens() const override { return special_; }

 private:
  std::filesystem::path path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::map<std::string, TokenId> special_;  // control pieces and added tokens
  std::set<TokenId> special_ids_;
  std::vector<AddedToken> tokens_;  // the same, for the splitter
  AddedTokenSplitter splitter_;
};

}  // namespace unibiomed::tokenize
