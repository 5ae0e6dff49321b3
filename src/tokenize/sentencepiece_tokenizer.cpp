#include "sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "sentencepiece_module.h"
#include "unibiomed/error.h"
#include "utf8.h"

namespace unibiomed::tokenize {

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& path,
                                               const std::vector<std::string>& added_tokens)
    : path_(path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const std::string where = path.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw input_error(where + ": cannot open the tokenizer file");
  }
  const auto status = sp_->Load(where);
  if (!status.ok()) {
    throw input_error(where + ": not a SentencePiece model: " + status.ToString());
  }
  const int n = sp_->GetPieceSize();
  std::map<std::string, TokenId> added;
  for (const std::string& s : added_tokens) {
    const int i = sp_->PieceToId(s);
    bool ok = i >= 0 && i < n && sp_->IdToPiece(i) == s && !sp_->IsControl(i) &&
              !sp_->IsUnknown(i) && !sp_->IsByte(i);
    if (ok) {
      std::vector<int> ids;
      ok = sp_->Encode(s, &ids).ok() && ids == std::vector<int>{i};
    }
    if (!ok) {
      throw input_error(where + ": added token '" + s +
                        "' is not a user-defined symbol of the SentencePiece model");
    }
    added[s] = i;
  }
  for (int i = 0; i < n; ++i) {
    if (sp_->IsControl(i)) special_[sp_->IdToPiece(i)] = i;
  }
  for (const auto& [text, id] : added) special_[text] = id;
  tokens_.reserve(special_.size());
  for (const auto& [text, id] : special_) {
    special_ids_.insert(id);
    AddedToken token;
    token.id = id;
    token.content = text;
    tokens_.push_back(token);
  }
  std::vector<const AddedToken*> pointers;
  for (const AddedToken& token : tokens_) pointers.push_back(&token);
  splitter_ = AddedTokenSplitter(pointers);
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::size_t SentencePieceTokenizer::vocab_size() const {
  return static_cast<std::size_t>(sp_->GetPieceSize());
}

std::vector<TokenId> SentencePieceTokenizer::encode(const std::string& text) const {
  check_utf8(text, "text to tokenize");
  std::vector<TokenId> ids;
  for (const TextPiece& piece : splitter_.split(text)) {
    if (piece.token != nullptr) {
      ids.push_back(piece.token->id);
      continue;
    }
    std::vector<int> piece_ids;
    const auto status = sp_->Encode(piece.text, &piece_ids);
    if (!status.ok()) {
      throw internal_error(path_.string() +
                           ": SentencePiece encoding failed: " + status.ToString());
    }
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<TokenId>& ids,
                                           bool skip_special) const {
  const int n = sp_->GetPieceSize();
  std::vector<int> keep;
  keep.reserve(ids.size());
  for (const TokenId id : ids) {
    if (id < 0 || id >= n) continue;
    if (skip_special && special_ids_.count(id) != 0) continue;
    keep.push_back(id);
  }
  std::string text;
  const auto status = sp_->Decode(keep, &text);
  if (!status.ok()) {
    throw internal_error(path_.string() + ": SentencePiece decoding failed: " + status.ToString());
  }
  return text;
}

std::string SentencePieceTokenizer::token_bytes(TokenId id) const {
  const std::string piece = id_to_token(id);
  if (sp_->IsControl(id)) return "";
  if (sp_->IsByte(id)) {  // <0xNN>
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  if (sp_->IsUnknown(id)) return " \xE2\x81\x87 ";  // " ⁇ ", as SentencePiece decodes it
  if (special_ids_.count(id) != 0) return piece;
  std::string out;
  static constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581
  for (std::size_t pos = 0; pos < piece.size();) {
    if (piece.compare(pos, kSpace.size(), kSpace) == 0) {
      out.push_back(' ');
      pos += kSpace.size();
    } else {
      out.push_back(piece[pos++]);
    }
  }
  return out;
}

bool SentencePieceTokenizer::is_special(TokenId id) const {
  return special_ids_.count(id) != 0;
}

TokenId SentencePieceTokenizer::token_to_id(const std::string& token) const {
  const int id = sp_->PieceToId(token);
  if (sp_->IdToPiece(id) != token) {
    throw input_error(path_.string() + ": no token '" + token + "'");
  }
  return id;
}

std::string SentencePieceTokenizer::id_to_token(TokenId id) const {
  if (id < 0 || id >= sp_->GetPieceSize()) {
    throw input_error(path_.string() + ": no token has id " + std::to_string(id));
  }
  return sp_->IdToPiece(id);
}

}  // namespace unibiomed::tokenize

extern "C" unibiomed::Tokenizer* unibiomed_load_sentencepiece(
    const std::filesystem::path* path, const std::vector<std::string>* added_tokens,
    int* error_kind, std::string* error_message) {
  try {
    return new unibiomed::tokenize::SentencePieceTokenizer(*path, *added_tokens);
  } catch (const unibiomed::Error& e) {
    *error_kind = static_cast<int>(e.kind());
    *error_message = e.what();
  } catch (const std::exception& e) {
    *error_kind = static_cast<int>(unibiomed::ErrorKind::Internal);
    *error_message = e.what();
  }
  return nullptr;
}
