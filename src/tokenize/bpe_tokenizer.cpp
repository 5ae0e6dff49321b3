#include "bpe_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <queue>
#include <utility>

#include "split_regex.h"
#include "unibiomed/error.h"
#include "utf8.h"

namespace unibiomed::tokenize {

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

using nlohmann::json;

// GPT-2's reversible byte -> printable character table.
std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> table{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[static_cast<std::size_t>(b)] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[static_cast<std::size_t>(b)] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[static_cast<std::size_t>(b)] = true;
  char32_t next = 256;
  for (std::size_t b = 0; b < 256; ++b) table[b] = direct[b] ? static_cast<char32_t>(b) : next++;
  return table;
}

// Escapes a literal for PCRE2 (ASCII punctuation gets a backslash).
std::string regex_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u) && u != '_' && c != '\0') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool truthy(const json& value) {
  if (value.is_null()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) return value.get<double>() != 0.0;
  if (value.is_string()) return !value.get<std::string>().empty();
  return !value.empty();
}

bool flag(const json& object, const char* key, bool fallback) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? fallback : truthy(*it);
}

// object[key] when it is a string, else `fallback`.
std::string string_or(const json& object, const char* key, const std::string& fallback) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get_ref<const std::string&>() : fallback;
}

std::string type_of(const json& object) {
  return string_or(object, "type", "(none)");
}

}  // namespace

BpeTokenizer::BpeTokenizer(const std::filesystem::path& path,
                           const std::vector<std::string>& added_tokens)
    : path_(path) {
  const std::string where = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(where + ": cannot open the tokenizer file");
  json cfg;
  std::string pattern;  // of the Split pre-tokenizer
  bool have_pattern = false;
  try {
    cfg = json::parse(in);
  } catch (const json::exception& e) {
    throw input_error(where + ": not valid JSON: " + e.what());
  }
  try {
    if (!cfg.is_object() || !cfg.contains("model") || !cfg["model"].is_object()) {
      throw input_error(where + ": not a tokenizer.json (no model)");
    }
    const json& model = cfg["model"];
    const std::string model_type = string_or(model, "type", "BPE");
    if (model_type != "BPE") {
      throw input_error(where + ": model type '" + model_type + "' is not BPE");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && truthy(model[key])) {
        throw input_error(where + ": unsupported BPE option " + key + "=" + model[key].dump());
      }
    }
    if (model.contains("dropout") && truthy(model["dropout"])) {
      throw input_error(where +
                        ": BPE dropout is not supported (dropout=" + model["dropout"].dump() + ")");
    }
    ignore_merges_ = flag(model, "ignore_merges", false);

    // Pre-tokenizer: at most one Split, then ByteLevel (or ByteLevel with its own regex).
    bool saw_byte_level = false;
    std::vector<json> pres;
    if (cfg.contains("pre_tokenizer") && !cfg["pre_tokenizer"].is_null()) {
      const json& pre = cfg["pre_tokenizer"];
      if (type_of(pre) == "Sequence") {
        for (const auto& p : pre.value("pretokenizers", json::array())) pres.push_back(p);
      } else {
        pres.push_back(pre);
      }
    }
    for (const json& p : pres) {
      const std::string type = type_of(p);
      if (type == "Split") {
        if (have_pattern) throw input_error(where + ": only one Split pre-tokenizer is supported");
        const json& pat = p.at("pattern");
        pattern = pat.contains("Regex") ? pat["Regex"].get<std::string>()
                                        : regex_escape(pat.at("String").get<std::string>());
        have_pattern = true;
        const std::string behavior = string_or(p, "behavior", "Isolated");
        if (behavior != "Isolated" && behavior != "Removed") {
          throw input_error(where + ": unsupported Split behavior '" + behavior + "'");
        }
        split_isolated_ = behavior == "Isolated";
        if (flag(p, "invert", false)) {
          throw input_error(where + ": inverted Split (invert=true) is not supported");
        }
      } else if (type == "ByteLevel") {
        saw_byte_level = true;
        if (flag(p, "add_prefix_space", false)) {
          throw input_error(where + ": ByteLevel add_prefix_space is not supported");
        }
        if (flag(p, "use_regex", true)) {
          if (have_pattern) {
            throw input_error(where + ": Split followed by ByteLevel(use_regex) is not supported");
          }
          pattern = kGpt2Pattern;
          have_pattern = true;
        }
      } else {
        throw input_error(where + ": unsupported pre-tokenizer '" + type + "'");
      }
    }
    if (!saw_byte_level) {
      throw input_error(where + ": not a byte-level tokenizer (no ByteLevel pre-tokenizer)");
    }
    if (!cfg.contains("decoder") || !cfg["decoder"].is_object() ||
        type_of(cfg["decoder"]) != "ByteLevel") {
      throw input_error(where + ": unsupported decoder " +
                        (cfg.contains("decoder") ? cfg["decoder"].dump() : std::string("null")));
    }
    const std::function<void(const json&)> add_normalizer = [&](const json& n) {
      if (n.is_null()) return;
      const std::string type = type_of(n);
      if (type == "NFC") {
        normalization_.push_back(Normalization::NFC);
      } else if (type == "NFD") {
        normalization_.push_back(Normalization::NFD);
      } else if (type == "NFKC") {
        normalization_.push_back(Normalization::NFKC);
      } else if (type == "NFKD") {
        normalization_.push_back(Normalization::NFKD);
      } else if (type == "Sequence") {
        for (const auto& sub : n.value("normalizers", json::array())) add_normalizer(sub);
      } else {
        throw input_error(where + ": unsupported normalizer '" + type + "'");
      }
    };
    if (cfg.contains("normalizer")) add_normalizer(cfg["normalizer"]);

    // Vocabulary: ids keep their value; other strings of the merges are interned after them.
    const json& vocab = model.at("vocab");
    if (!vocab.is_object()) throw input_error(where + ": model.vocab is not an object");
    TokenId max_id = -1;
    for (const auto& item : vocab.items()) {
      const TokenId id = item.value().get<TokenId>();
      if (id < 0) throw input_error(where + ": negative id of token '" + item.key() + "'");
      max_id = std::max(max_id, id);
    }
    vocab_count_ = static_cast<std::size_t>(max_id + 1);
    vocab_pieces_.assign(vocab_count_, std::string());
    vocab_present_.assign(vocab_count_, false);
    symbols_.reserve(vocab.size() * 2);
    for (const auto& item : vocab.items()) {
      const TokenId id = item.value().get<TokenId>();
      symbols_[item.key()] = id;
      vocab_pieces_[static_cast<std::size_t>(id)] = item.key();
      vocab_present_[static_cast<std::size_t>(id)] = true;
    }

    const auto table = bytes_to_unicode();
    std::unordered_map<char32_t, unsigned char> char_to_byte;
    for (std::size_t b = 0; b < 256; ++b) {
      append_utf8(table[b], byte_char_[b]);
      char_to_byte[table[b]] = static_cast<unsigned char>(b);
      byte_symbol_[b] = intern(byte_char_[b]);
    }
    // The bytes of each vocabulary token: its characters mapped back through the table, or
    // its own UTF-8 when a character is not in the table (as the ByteLevel decoder does).
    vocab_bytes_.assign(vocab_count_, std::string());
    for (std::size_t id = 0; id < vocab_count_; ++id) {
      if (!vocab_present_[id]) continue;
      const std::string& piece = vocab_pieces_[id];
      std::string bytes;
      bool mapped = true;
      for (std::size_t pos = 0; pos < piece.size();) {
        std::size_t length = 0;
        const auto it = char_to_byte.find(code_point_at(piece, pos, &length));
        if (it == char_to_byte.end()) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(it->second));
        pos += length;
      }
      vocab_bytes_[id] = mapped ? bytes : piece;
    }

    // Merges: "a b" strings or [a, b] pairs; a later duplicate wins.
    const json& merges = model.at("merges");
    merges_.reserve(merges.size() * 2);
    std::int32_t rank = 0;
    for (const json& m : merges) {
      std::string a;
      std::string b;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos) {
          throw input_error(where + ": merge '" + s + "' is not two tokens");
        }
        a = s.substr(0, space);
        b = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        throw input_error(where + ": merge " + m.dump() + " is not two tokens");
      }
      const Symbol left = intern(a);
      const Symbol right = intern(b);
      const Symbol merged = intern(a + b);
      const std::uint64_t key =
          (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
          static_cast<std::uint32_t>(right);
      merges_[key] = Merge{rank++, merged};
    }

    // Added tokens of the file, then the requested ones it lacks.
    TokenId next_id = max_id;
    if (cfg.contains("added_tokens") && !cfg["added_tokens"].is_null()) {
      for (const json& t : cfg["added_tokens"]) {
        AddedToken token;
        token.id = t.at("id").get<TokenId>();
        token.content = t.at("content").get<std::string>();
        token.special = flag(t, "special", false);
        token.normalized = flag(t, "normalized", !token.special);
        token.lstrip = flag(t, "lstrip", false);
        token.rstrip = flag(t, "rstrip", false);
        token.single_word = flag(t, "single_word", false);
        if (token.id < 0) throw input_error(where + ": negative id of '" + token.content + "'");
        check_utf8(token.content, where + ": added token");
        next_id = std::max(next_id, token.id);
        added_.push_back(std::move(token));
      }
    }
    ++next_id;
    for (const std::string& content : added_tokens) {
      check_utf8(content, "added token");
      const bool present = std::any_of(added_.begin(), added_.end(),
                                       [&](const AddedToken& t) { return t.content == content; });
      if (present) continue;
      AddedToken token;
      token.content = content;
      const auto it = symbols_.find(content);
      if (it != symbols_.end() && static_cast<std::size_t>(it->second) < vocab_count_) {
        token.id = it->second;
      } else {
        token.id = next_id++;
      }
      added_.push_back(std::move(token));
    }
  } catch (const json::exception& e) {
    throw input_error(where + ": unexpected tokenizer.json content: " + e.what());
  }

  TokenId max_id = static_cast<TokenId>(vocab_count_) - 1;
  std::vector<const AddedToken*> raw;
  std::vector<const AddedToken*> normalized;
  for (std::size_t i = 0; i < added_.size(); ++i) {
    const AddedToken& t = added_[i];
    added_by_id_[t.id] = i;
    added_by_content_[t.content] = i;
    special_[t.content] = t.id;
    max_id = std::max(max_id, t.id);
    (t.normalized ? normalized : raw).push_back(&t);
  }
  vocab_size_ = static_cast<std::size_t>(max_id + 1);
  split_raw_ = AddedTokenSplitter(raw);
  split_norm_ = AddedTokenSplitter(normalized);
  if (have_pattern) split_ = std::make_unique<SplitRegex>(pattern, where);
}

BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer::Symbol BpeTokenizer::intern(const std::string& piece) {
  const auto it = symbols_.find(piece);
  if (it != symbols_.end()) return it->second;
  const auto symbol = static_cast<Symbol>(vocab_count_ + internal_pieces_.size());
  internal_pieces_.push_back(piece);
  symbols_.emplace(piece, symbol);
  return symbol;
}

const AddedToken* BpeTokenizer::added_by_id(TokenId id) const {
  const auto it = added_by_id_.find(id);
  return it == added_by_id_.end() ? nullptr : &added_[it->second];
}

bool BpeTokenizer::in_vocab(TokenId id) const {
  return id >= 0 && static_cast<std::size_t>(id) < vocab_count_ &&
         vocab_present_[static_cast<std::size_t>(id)];
}

std::vector<TokenId> BpeTokenizer::encode(const std::string& text) const {
  check_utf8(text, "text to tokenize");
  std::vector<TokenId> ids;
  for (const TextPiece& piece : split_raw_.split(text)) {
    if (piece.token != nullptr) {
      ids.push_back(piece.token->id);
      continue;
    }
    std::string normal(piece.text);
    const bool ascii = std::all_of(normal.begin(), normal.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x80;  // ASCII is the same in every form
    });
    for (const Normalization form : normalization_) {
      if (ascii) break;
      int options = UTF8PROC_STABLE;
      switch (form) {
        case Normalization::NFC:
          options |= UTF8PROC_COMPOSE;
          break;
        case Normalization::NFD:
          options |= UTF8PROC_DECOMPOSE;
          break;
        case Normalization::NFKC:
          options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
          break;
        case Normalization::NFKD:
          options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
          break;
      }
      utf8proc_uint8_t* result = nullptr;
      const utf8proc_ssize_t n =
          utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(normal.data()),
                       static_cast<utf8proc_ssize_t>(normal.size()), &result,
                       static_cast<utf8proc_option_t>(options));
      if (n < 0) {
        throw internal_error(std::string("Unicode normalisation failed: ") + utf8proc_errmsg(n));
      }
      normal.assign(reinterpret_cast<const char*>(result), static_cast<std::size_t>(n));
      std::free(result);
    }
    for (const TextPiece& sub : split_norm_.split(normal)) {
      if (sub.token != nullptr) {
        ids.push_back(sub.token->id);
      } else {
        encode_plain(sub.text, ids);
      }
    }
  }
  return ids;
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<TokenId>& ids) const {
  if (text.empty()) return;
  if (!split_) {
    encode_word(text, ids);
    return;
  }
  std::size_t pos = 0;
  split_->for_each_match(text, [&](std::size_t start, std::size_t end) {
    if (start > pos) encode_word(text.substr(pos, start - pos), ids);
    if (end > start && split_isolated_) encode_word(text.substr(start, end - start), ids);
    pos = std::max(pos, end);
  });
  if (pos < text.size()) encode_word(text.substr(pos), ids);
}

void BpeTokenizer::encode_word(std::string_view bytes, std::vector<TokenId>& ids) const {
  if (bytes.empty()) return;
  if (ignore_merges_) {
    std::string word;
    for (const char c : bytes) word += byte_char_[static_cast<unsigned char>(c)];
    const auto it = symbols_.find(word);
    if (it != symbols_.end() && in_vocab(it->second)) {
      ids.push_back(it->second);
      return;
    }
  }
  constexpr std::size_t kCacheMaxWord = 256;  // longer words are rare, not worth caching
  constexpr std::size_t kCacheMaxEntries = 10000;
  if (bytes.size() > kCacheMaxWord) {
    bpe(bytes, ids);
    return;
  }
  const std::string key(bytes);
  {
    const std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<TokenId> word_ids;
  bpe(bytes, word_ids);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  const std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheMaxEntries) cache_.clear();
  cache_.emplace(key, std::move(word_ids));
}

// Merges by rank, lowest first and leftmost on ties: a linked list of symbols and a heap of
// candidate merges, so a word of n bytes costs O(n log n).
void BpeTokenizer::bpe(std::string_view bytes, std::vector<TokenId>& ids) const {
  const std::size_t n = bytes.size();
  std::vector<Symbol> syms(n);
  std::vector<std::int64_t> next(n);
  std::vector<std::int64_t> prev(n);
  for (std::size_t i = 0; i < n; ++i) {
    syms[i] = byte_symbol_[static_cast<unsigned char>(bytes[i])];
    next[i] = i + 1 < n ? static_cast<std::int64_t>(i + 1) : -1;
    prev[i] = static_cast<std::int64_t>(i) - 1;
  }
  struct Candidate {
    std::int32_t rank;
    std::int64_t pos;
    Symbol left;
    Symbol right;
    Symbol merged;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  const auto find_merge = [this](Symbol left, Symbol right) -> const Merge* {
    const std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
                              static_cast<std::uint32_t>(right);
    const auto it = merges_.find(key);
    return it == merges_.end() ? nullptr : &it->second;
  };
  std::vector<Candidate> initial;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (const Merge* m = find_merge(syms[i], syms[i + 1])) {
      initial.push_back({m->rank, static_cast<std::int64_t>(i), syms[i], syms[i + 1], m->merged});
    }
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap(
      std::greater<Candidate>(), std::move(initial));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const auto i = static_cast<std::size_t>(c.pos);
    const std::int64_t j = next[i];
    if (j < 0 || syms[i] != c.left || syms[static_cast<std::size_t>(j)] != c.right) {
      continue;  // stale: one side has merged since
    }
    const Symbol merged = c.merged;
    syms[i] = merged;
    syms[static_cast<std::size_t>(j)] = -1;
    const std::int64_t k = next[static_cast<std::size_t>(j)];
    next[i] = k;
    if (k >= 0) {
      prev[static_cast<std::size_t>(k)] = c.pos;
      if (const Merge* m = find_merge(merged, syms[static_cast<std::size_t>(k)])) {
        heap.push({m->rank, c.pos, merged, syms[static_cast<std::size_t>(k)], m->merged});
      }
    }
    const std::int64_t p = prev[i];
    if (p >= 0) {
      if (const Merge* m = find_merge(syms[static_cast<std::size_t>(p)], merged)) {
        heap.push({m->rank, p, syms[static_cast<std::size_t>(p)], merged, m->merged});
      }
    }
  }
  for (std::int64_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)]) {
    const Symbol s = syms[static_cast<std::size_t>(i)];
    if (!in_vocab(s)) {
      const std::string piece = static_cast<std::size_t>(s) >= vocab_count_
                                    ? internal_pieces_[static_cast<std::size_t>(s) - vocab_count_]
                                    : std::string("?");
      throw input_error(path_.string() + ": BPE piece '" + piece + "' is not in the vocabulary");
    }
    ids.push_back(s);
  }
}

std::string BpeTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  // Added tokens verbatim; the byte runs between them through the ByteLevel decoder.
  std::string out;
  std::string buffer;
  for (const TokenId id : ids) {
    if (const AddedToken* t = added_by_id(id)) {
      if (skip_special && t->special) continue;
      decode_utf8_replace(buffer, true, out);
      buffer.clear();
      out += t->content;
      continue;
    }
    if (!in_vocab(id)) continue;  // unknown id: skipped, as tokenizers does
    buffer += vocab_bytes_[static_cast<std::size_t>(id)];
  }
  decode_utf8_replace(buffer, true, out);
  return out;
}

std::string BpeTokenizer::token_bytes(TokenId id) const {
  if (const AddedToken* t = added_by_id(id)) return t->content;
  if (!in_vocab(id)) {
    throw input_error(path_.string() + ": no token has id " + std::to_string(id));
  }
  return vocab_bytes_[static_cast<std::size_t>(id)];
}

bool BpeTokenizer::is_special(TokenId id) const {
  const AddedToken* t = added_by_id(id);
  return t != nullptr && t->special;
}

TokenId BpeTokenizer::token_to_id(const std::string& token) const {
  const auto added = added_by_content_.find(token);
  if (added != added_by_content_.end()) return added_[added->second].id;
  const auto it = symbols_.find(token);
  if (it != symbols_.end() && in_vocab(it->second)) return it->second;
  throw input_error(path_.string() + ": no token '" + token + "'");
}

std::string BpeTokenizer::id_to_token(TokenId id) const {
  if (const AddedToken* t = added_by_id(id)) return t->content;
  if (!in_vocab(id)) {
    throw input_error(path_.string() + ": no token has id " + std::to_string(id));
  }
  return vocab_pieces_[static_cast<std::size_t>(id)];
}

}  // namespace unibiomed::tokenize
