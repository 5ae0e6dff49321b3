// `unibiomed tokenize`: ids per line, the chat template, decoding, JSON lines, and errors with
// the documented exit codes.
#include <gtest/gtest.h>

#include <string>

#include "cli_support.h"
#include "test_support.h"
#include "unibiomed/safetensors.h"

namespace {

using unibiomed::test::CliRun;
using unibiomed::test::test_data;
using unibiomed::test::unibiomed_cli;

std::string tiny() {
  return "-m '" + test_data("tiny-bundle").string() + "'";
}

TEST(CliTokenize, EncodesEachLine) {
  const CliRun run = unibiomed_cli("tokenize " + tiny(), "Please segment brain.\nIt is [SEG].\n");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "281 282 414 492\n306 296 477 3 492\n");
}

TEST(CliTokenize, TemplateGivesTheGoldenPromptIds) {
  const auto cases = unibiomed::test::read_json(test_data("tiny-golden") / "cases.json")["cases"];
  const auto gold =
      unibiomed::read_safetensors(test_data("tiny-golden") / "brain_pd_segment.safetensors");
  ASSERT_EQ(cases[0]["name"], "brain_pd_segment");
  const CliRun run =
      unibiomed_cli("tokenize --template " + tiny(), "<image>Please segment brain.\n");
  EXPECT_EQ(run.code, 0) << run.err;
  std::string expected;
  const auto ids = gold.at("prompt_ids");
  for (std::int64_t i = 0; i < ids.size(0); ++i) {
    expected += (i ? " " : "") + std::to_string(ids[i].item<std::int64_t>());
  }
  EXPECT_EQ(run.out, expected + "\n");
}

TEST(CliTokenize, DecodesAndRoundTripsJsonLines) {
  const std::string text = "Line one\nline two\twith tab, ü and 肝脏 [SEG]";
  const std::string input = nlohmann::json(text).dump() + "\n";
  const CliRun enc = unibiomed_cli("tokenize --jsonl " + tiny(), input);
  ASSERT_EQ(enc.code, 0) << enc.err;
  const CliRun dec = unibiomed_cli("tokenize --decode --jsonl " + tiny(), enc.out);
  ASSERT_EQ(dec.code, 0) << dec.err;
  EXPECT_EQ(nlohmann::json::parse(dec.out).get<std::string>(), text);
  const CliRun plain = unibiomed_cli("tokenize --decode " + tiny(), "306 296 477 3 492\n");
  EXPECT_EQ(plain.out, "It is [SEG].\n");
}

TEST(CliTokenize, BadInputNamesTheLine) {
  const CliRun utf8 = unibiomed_cli("tokenize " + tiny(), "fine\nbad \xff byte\n");
  EXPECT_EQ(utf8.code, 3) << utf8.err;
  EXPECT_NE(utf8.err.find("stdin line 2"), std::string::npos) << utf8.err;
  const CliRun ids = unibiomed_cli("tokenize --decode " + tiny(), "1 2 x\n");
  EXPECT_EQ(ids.code, 3) << ids.err;
  EXPECT_NE(ids.err.find("'x' is not a token id"), std::string::npos) << ids.err;
  const CliRun json = unibiomed_cli("tokenize --jsonl " + tiny(), "not json\n");
  EXPECT_EQ(json.code, 3) << json.err;
}

TEST(CliTokenize, UsageErrors) {
  EXPECT_EQ(unibiomed_cli("tokenize", "x\n").code, 2);
  const std::string tok = test_data("tiny-bundle").string() + "/tokenizer.model";
  EXPECT_EQ(unibiomed_cli("tokenize " + tiny() + " --tokenizer '" + tok + "'", "x\n").code, 2);
  EXPECT_EQ(unibiomed_cli("tokenize --template --tokenizer '" + tok + "'", "x\n").code, 2);
  const CliRun missing = unibiomed_cli("tokenize --tokenizer /nonexistent/tokenizer.json", "x\n");
  EXPECT_EQ(missing.code, 3);
  EXPECT_NE(missing.err.find("/nonexistent/tokenizer.json"), std::string::npos) << missing.err;
}

}  // namespace
