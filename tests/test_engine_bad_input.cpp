// The bad-input contract of the engine and of `unibiomed interpret`: a broken bundle, a request
// that does not fit the model or the image, an image the model cannot take, an output that
// cannot be written. Each gives one clear line on stderr with the documented exit code (2 usage,
// 3 input, 4 output), never a crash and never a mask of the wrong shape. And two Sessions of one
// Model used from two threads at once give what they give one after the other.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_support.h"
#include "test_support.h"
#include "unibiomed/engine.h"
#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/read.h"
#include "unibiomed/write.h"

namespace fs = std::filesystem;

namespace {

using unibiomed::test::CliRun;
using unibiomed::test::quoted;
using unibiomed::test::read_json;
using unibiomed::test::sample;
using unibiomed::test::scratch_dir;
using unibiomed::test::test_data;
using unibiomed::test::unibiomed_cli;

// A small committed picture: no fetched sample needed.
fs::path brain_png() {
  return test_data("tiny-golden") / "inputs" / "brain_pd_segment.png";
}

// `unibiomed interpret -q -m BUNDLE -o <fresh folder> ARGUMENTS`.
CliRun interpret_with(const fs::path& bundle, const std::string& arguments,
                      const std::string& name) {
  const fs::path out = scratch_dir("bad_input_" + name) / "out";
  return unibiomed_cli("interpret -q -m " + quoted(bundle) + " -o " + quoted(out) + " " +
                       arguments);
}

CliRun interpret(const std::string& arguments, const std::string& name) {
  return interpret_with(test_data("tiny-bundle"), arguments, name);
}

// A failure: the exit code, nothing on stdout, one line on stderr holding every `part`.
void expect_error(const CliRun& run, int code, const std::vector<std::string>& parts) {
  EXPECT_EQ(run.code, code) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_EQ(run.err.rfind("unibiomed: ", 0), 0U) << run.err;
  EXPECT_EQ(run.err.find("internal error"), std::string::npos) << run.err;
  for (const auto& part : parts) {
    EXPECT_NE(run.err.find(part), std::string::npos) << "'" << part << "' not in: " << run.err;
  }
}

// A copy of the tiny bundle in a fresh folder, its manifest changed by `edit`.
fs::path bundle_copy(const std::string& name,
                     const std::function<void(nlohmann::json&)>& edit = {}) {
  const fs::path dir = scratch_dir("bundle_" + name) / "bundle";
  fs::copy(test_data("tiny-bundle"), dir, fs::copy_options::recursive);
  if (edit) {
    nlohmann::json manifest = read_json(dir / "manifest.json");
    edit(manifest);
    std::ofstream(dir / "manifest.json") << manifest.dump(2) << "\n";
  }
  return dir;
}

unibiomed::ModelOptions cpu() {
  unibiomed::ModelOptions options;
  options.device = "cpu";
  return options;
}

// Model::load of `bundle` throws Error(Input) whose message holds every `part`.
void expect_load_error(const fs::path& bundle, const std::vector<std::string>& parts,
                       bool warmup = true) {
  auto options = cpu();
  options.warmup = warmup;
  try {
    unibiomed::Model::load(bundle, options);
    ADD_FAILURE() << "Model::load accepted " << bundle;
  } catch (const unibiomed::Error& e) {
    EXPECT_EQ(e.kind(), unibiomed::ErrorKind::Input) << e.what();
    for (const auto& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << part << "' not in: " << e.what();
    }
  }
}

// ---- the bundle ---------------------------------------------------------------------------

TEST(EngineBadInput, BundleWithAMissingFileNamesIt) {
  const fs::path bundle = bundle_copy("missing_file");
  fs::remove(bundle / "sam_tracker.pt");
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain", "missing"), 3,
               {"sam_tracker.pt", "missing"});
  expect_load_error(bundle, {"sam_tracker.pt"});
}

TEST(EngineBadInput, ModuleFileThatIsNotTorchScriptIsNamed) {
  const fs::path bundle = bundle_copy("corrupt_module");
  const auto size = fs::file_size(bundle / "grounding_projector.pt");
  {
    std::ofstream out(bundle / "grounding_projector.pt", std::ios::binary | std::ios::trunc);
    out << std::string(size, 'x');
  }
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain", "corrupt"), 3,
               {"grounding_projector.pt"});
}

TEST(EngineBadInput, ManifestOfAnotherFormatVersion) {
  const fs::path bundle =
      bundle_copy("version99", [](nlohmann::json& m) { m["format_version"] = 99; });
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain", "version99"), 3,
               {"manifest.json", "format_version 99"});
  expect_load_error(bundle, {"format_version 99"});
}

TEST(EngineBadInput, ManifestDtypeThatTheWeightsDoNotHave) {
  const fs::path bundle = bundle_copy("bf16", [](nlohmann::json& m) { m["dtype"] = "bf16"; });
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain", "bf16"), 3,
               {".pt", "bf16", "fp32"});
  expect_load_error(bundle, {"bf16"});
}

// The language side's outputs are checked at load (warm-up) and again when interpreting.
TEST(EngineBadInput, LanguageHiddenSizeThatTheModuleDoesNotGive) {
  const fs::path bundle =
      bundle_copy("hidden_size", [](nlohmann::json& m) { m["language"]["hidden_size"] = 48; });
  expect_load_error(bundle, {"language_decoder", "48"});
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain", "hidden_size"), 3,
               {"language_decoder"});
}

// Without the warm-up the first part whose output meets the wrong size is the vision encoder
// (its tokens have the language model's width): still a shape error naming a part, exit 3.
TEST(EngineBadInput, LanguageHiddenSizeWithoutWarmupStillGivesAClearError) {
  const fs::path bundle = bundle_copy("hidden_size_nowarm",
                                      [](nlohmann::json& m) { m["language"]["hidden_size"] = 48; });
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain --no-warmup",
                              "hidden_size_nowarm"),
               3, {"model part", "48]", "where the manifest promises"});
}

TEST(EngineBadInput, LanguageEmbedDimThatTheProjectorDoesNotGive) {
  const fs::path bundle =
      bundle_copy("embed_dim", [](nlohmann::json& m) { m["sam"]["language_embed_dim"] = 16; });
  expect_load_error(bundle, {"grounding_projector", "16"});
  expect_error(
      interpret_with(bundle, quoted(brain_png()) + " --target brain --no-warmup", "embed_dim"), 3,
      {"grounding_projector"});
}

// The vision encoder is run at load only on a GPU; on the CPU its check comes when interpreting.
TEST(EngineBadInput, TokensPerTileThatTheVisionEncoderDoesNotGive) {
  const fs::path bundle =
      bundle_copy("tokens", [](nlohmann::json& m) { m["vision_input"]["tokens_per_tile"] = 32; });
  expect_error(interpret_with(bundle, quoted(brain_png()) + " --target brain", "tokens"), 3,
               {"vision_encoder", "32"});
}

// ---- the request --------------------------------------------------------------------------

TEST(EngineBadInput, TargetsThatCannotBeAsked) {
  const std::string image = quoted(brain_png());
  expect_error(interpret(image + " --target ''", "empty_target"), 2, {"--target", "empty"});
  expect_error(interpret(image + " --target '  \t '", "blank_target"), 2, {"--target"});
  expect_error(interpret(image + " --target " + std::string(10000, 'a'), "long_target"), 2,
               {"--target", "10000 bytes"});
  expect_error(interpret(image + " --target 'the [SEG] here'", "seg_target"), 2,
               {"--target", "[SEG]"});
  expect_error(interpret(image + " --target '<image> brain'", "image_target"), 2,
               {"--target", "<image>"});
  // One bad target among good ones fails the whole request, before the model is run.
  expect_error(interpret(image + " --target brain --target ''", "second_target"), 2, {"--target"});
}

TEST(EngineBadInput, BoxesThatDoNotFit) {
  const std::string image = quoted(brain_png());  // 181 x 217
  const auto volume = unibiomed::read_image(brain_png());
  const std::string w = std::to_string(volume.geometry.size[0]);
  expect_error(interpret(image + " --task region --box 10,10," + w + ",20", "box_outside"), 2,
               {"--box", "outside"});
  expect_error(interpret(image + " --task region --box -1,0,10,10", "box_negative"), 2, {"--box"});
  expect_error(interpret(image + " --task region --box 1,2,3", "box_three"), 2, {"--box"});
  expect_error(interpret(image + " --task region --box 1,2,3,4,5", "box_five"), 2, {"--box"});
  expect_error(interpret(image + " --task region --box a,b,c,d", "box_letters"), 2, {"--box"});
  expect_error(interpret(image + " --task region --box 50,10,20,40", "box_reversed"), 2,
               {"--box", "x0 <= x1"});
  expect_error(interpret(image + " --task segment --target brain --box 1,1,5,5", "box_segment"), 2,
               {"--box"});
}

TEST(EngineBadInput, TasksThatAreUnknownOrIncomplete) {
  const std::string image = quoted(brain_png());
  expect_error(interpret(image + " --task summarise", "unknown_task"), 2,
               {"--task summarise", "segment"});
  expect_error(interpret(image + " --task vqa", "vqa_without_question"), 2, {"--question"});
  expect_error(interpret(image + " --task vqa --question ' '", "vqa_blank_question"), 2,
               {"--question"});
  expect_error(interpret(image + " --task segment", "segment_without_target"), 2, {"--target"});
  expect_error(interpret(image, "default_task_without_target"), 2, {"--target"});
}

TEST(EngineBadInput, CudaWithoutCuda) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA";
  expect_error(interpret(quoted(brain_png()) + " --target brain --device cuda", "cuda"), 2,
               {"--device cuda"});
  expect_error(interpret(quoted(brain_png()) + " --target brain --device tpu", "tpu"), 2,
               {"--device tpu"});
}

TEST(EngineBadInput, Fp16OnTheCpuIsAUsageError) {
  expect_error(interpret(quoted(brain_png()) + " --target brain --device cpu --dtype fp16", "fp16"),
               2, {"fp16"});
}

// ---- the image ----------------------------------------------------------------------------

fs::path strip_png(const std::string& name, int width, int height) {
  unibiomed::Image8 image;
  image.width = width;
  image.height = height;
  image.rgb.assign(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3, 0);
  for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>(i);
  const fs::path path = scratch_dir("bad_input_images") / name;
  unibiomed::write_png(image, path);
  return path;
}

TEST(EngineBadInput, ImagesTheModelCannotTake) {
  const fs::path thin = strip_png("strip_1x5000.png", 1, 5000);
  expect_error(interpret(quoted(thin) + " --target brain", "strip_thin"), 3, {"1x5000"});
  const fs::path wide = strip_png("strip_5000x60.png", 5000, 60);
  expect_error(interpret(quoted(wide) + " --target brain", "strip_wide"), 3, {"5000x60"});
  // The library refuses them too, before running anything.
  const auto model = unibiomed::Model::load(test_data("tiny-bundle"), cpu());
  unibiomed::Session session(model);
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1, 5000}, {5000, 60}, {3, 3}}) {
    unibiomed::InputImage input;
    input.rgb.width = w;
    input.rgb.height = h;
    input.rgb.rgb.assign(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3, 90);
    unibiomed::InterpretRequest request;
    request.targets = {"brain"};
    try {
      session.interpret(input, request);
      ADD_FAILURE() << w << "x" << h << " was accepted";
    } catch (const unibiomed::Error& e) {
      EXPECT_EQ(e.kind(), unibiomed::ErrorKind::Input) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(w) + "x" + std::to_string(h)),
                std::string::npos)
          << e.what();
    }
  }
}

// README: every error is `unibiomed: error: <file or value>: <what is wrong>`.
TEST(EngineBadInput, ImageSizeErrorNamesTheFile) {
  const fs::path wide = strip_png("strip_named_5000x60.png", 5000, 60);
  const CliRun run = interpret(quoted(wide) + " --target brain", "strip_named");
  EXPECT_EQ(run.code, 3) << run.err;
  EXPECT_NE(run.err.find(wide.string()), std::string::npos) << run.err;
}

// A volume goes through the video path (tests/test_interpret_volume.cpp); a slicing axis it
// does not know is a usage error naming the value, before the model loads.
TEST(EngineBadInput, AVolumeWithAnUnknownAxisIsRefusedClearly) {
  const fs::path volume = sample("mricron/ch2.nii.gz");
  expect_error(interpret(quoted(volume) + " --target brain --axis oblique", "volume"), 2,
               {"oblique", "axial, coronal, sagittal"});
}

TEST(EngineBadInput, MissingImage) {
  expect_error(interpret("'/nonexistent/scan.png' --target brain", "no_image"), 3,
               {"/nonexistent/scan.png"});
}

// ---- generation limits --------------------------------------------------------------------

TEST(EngineBadInput, MaxNewTokensCutsTheAnswerAndSaysSo) {
  const fs::path out = scratch_dir("bad_input_max_tokens") / "out";
  const CliRun run =
      unibiomed_cli("interpret -q -m " + quoted(test_data("tiny-bundle")) + " -o " + quoted(out) +
                    " " + quoted(brain_png()) + " --target brain --max-new-tokens 2");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("max-new-tokens"), std::string::npos) << run.out;
  const auto result = read_json(out / "result.json");
  ASSERT_EQ(result["answers"].size(), 1U);
  const auto& answer = result["answers"][0];
  EXPECT_EQ(answer["stopped_by"], "max_new_tokens");
  EXPECT_EQ(answer["truncated"], true);
  EXPECT_EQ(answer["output_ids"].size(), 2U);
  ASSERT_FALSE(result["warnings"].empty());
  EXPECT_NE(result["warnings"].dump().find("cut"), std::string::npos) << result["warnings"];
  // Any mask there is has the picture's size.
  const auto volume = unibiomed::read_image(brain_png());
  for (const auto& f : result["findings"]) {
    ASSERT_TRUE(f["mask_file"].is_string());
    const auto mask = unibiomed::read_image(out / f["mask_file"].get<std::string>());
    EXPECT_EQ(mask.geometry.size, volume.geometry.size);
  }
}

// Every limit: the findings never outnumber the [SEG] tokens written, and every finding has a
// mask file of the picture's size.
TEST(EngineBadInput, EveryTokenLimitGivesConsistentFindings) {
  const auto volume = unibiomed::read_image(brain_png());
  for (int limit : {1, 3, 4, 5, 6}) {
    SCOPED_TRACE("--max-new-tokens " + std::to_string(limit));
    const fs::path out = scratch_dir("bad_input_limit_" + std::to_string(limit)) / "out";
    const CliRun run = unibiomed_cli("interpret -q -m " + quoted(test_data("tiny-bundle")) +
                                     " -o " + quoted(out) + " " + quoted(brain_png()) +
                                     " --target brain --max-new-tokens " + std::to_string(limit));
    ASSERT_EQ(run.code, 0) << run.err;
    const auto result = read_json(out / "result.json");
    const auto& answer = result["answers"][0];
    EXPECT_LE(answer["output_ids"].size(), static_cast<std::size_t>(limit));
    const std::string text = answer["text"];
    std::size_t segs = 0;
    for (auto at = text.find("[SEG]"); at != std::string::npos; at = text.find("[SEG]", at + 1)) {
      ++segs;
    }
    EXPECT_LE(result["findings"].size(), segs) << text;
    for (const auto& f : result["findings"]) {
      ASSERT_TRUE(f["mask_file"].is_string());
      const auto mask = unibiomed::read_image(out / f["mask_file"].get<std::string>());
      EXPECT_EQ(mask.geometry.size, volume.geometry.size);
    }
  }
}

TEST(EngineBadInput, NegativeMaxNewTokens) {
  expect_error(interpret(quoted(brain_png()) + " --target brain --max-new-tokens -3", "neg_max"), 2,
               {"--max-new-tokens"});
}

// A limit far beyond what the model's positions allow is a bad option value, not an attempt to
// allocate a KV cache of hundreds of gigabytes (an internal error with LibTorch's backtrace).
TEST(EngineBadInput, AbsurdMaxNewTokensIsAUsageError) {
  expect_error(
      interpret(quoted(brain_png()) + " --target brain --max-new-tokens 2000000000", "huge_max"), 2,
      {"--max-new-tokens"});
}

// ---- the output ---------------------------------------------------------------------------

TEST(EngineBadInput, OutputFolderThatIsAFile) {
  const fs::path file = scratch_dir("bad_input_output_file") / "taken";
  std::ofstream(file) << "not a folder\n";
  const CliRun run = unibiomed_cli("interpret -q -m " + quoted(test_data("tiny-bundle")) + " -o " +
                                   quoted(file) + " " + quoted(brain_png()) + " --target brain");
  expect_error(run, 4, {file.string()});
  EXPECT_EQ(unibiomed::test::slurp(file), "not a folder\n");
}

TEST(EngineBadInput, OutputFolderUnderAFile) {
  const fs::path file = scratch_dir("bad_input_output_under_file") / "taken";
  std::ofstream(file) << "not a folder\n";
  const CliRun run =
      unibiomed_cli("interpret -q -m " + quoted(test_data("tiny-bundle")) + " -o " +
                    quoted(file / "out") + " " + quoted(brain_png()) + " --target brain");
  expect_error(run, 4, {(file / "out").string()});
}

// ---- threads ------------------------------------------------------------------------------

struct Outcome {
  std::vector<std::vector<std::int32_t>> output_ids;
  std::vector<std::string> texts;
  std::vector<std::vector<std::uint8_t>> masks;
};

struct ImageCase {
  std::string name;
  unibiomed::InputImage input;
  unibiomed::InterpretRequest request;
};

Outcome run_case(unibiomed::Session& session, const ImageCase& c) {
  const auto result = session.interpret(c.input, c.request);
  Outcome out;
  for (const auto& a : result.answers) {
    out.output_ids.emplace_back(a.output_ids.begin(), a.output_ids.end());
    out.texts.push_back(a.text);
  }
  for (const auto& f : result.findings) {
    EXPECT_EQ(f.mask.size(),
              static_cast<std::size_t>(result.width) * static_cast<std::size_t>(result.height));
    out.masks.push_back(f.mask);
  }
  return out;
}

TEST(EngineBadInput, TwoSessionsOnOneModelInTwoThreadsMatchSequentialRuns) {
  const auto model = unibiomed::Model::load(test_data("tiny-bundle"), cpu());
  std::vector<ImageCase> cases;
  const nlohmann::json golden = read_json(test_data("tiny-golden") / "cases.json");
  for (const auto& c : golden["cases"]) {
    if (c["kind"] != "image") continue;
    ImageCase ic;
    ic.name = c["name"];
    const auto volume =
        unibiomed::read_image(test_data("tiny-golden") / c["image"].get<std::string>());
    ic.input.rgb = unibiomed::frame_rgb8(unibiomed::to_display(volume).volume, 0);
    ic.request.task = c["task"];
    if (!c["target"].get<std::string>().empty()) ic.request.targets = {c["target"]};
    ic.request.question = c["question"];
    cases.push_back(std::move(ic));
  }
  ASSERT_GE(cases.size(), 4U);

  std::vector<Outcome> sequential;
  {
    unibiomed::Session session(model);
    for (const auto& c : cases) sequential.push_back(run_case(session, c));
  }

  // Thread A takes the cases in order, thread B in reverse order, twice each, so that the two
  // sessions work on different images at the same time.
  const std::size_t n = cases.size();
  std::vector<Outcome> a(2 * n), b(2 * n);
  std::string error_a, error_b;
  const auto worker = [&](bool reverse, std::vector<Outcome>& outcomes, std::string& error) {
    try {
      unibiomed::Session session(model);
      for (std::size_t k = 0; k < 2 * n; ++k) {
        const std::size_t i = reverse ? n - 1 - k % n : k % n;
        outcomes[k] = run_case(session, cases[i]);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  };
  std::thread ta(worker, false, std::ref(a), std::ref(error_a));
  std::thread tb(worker, true, std::ref(b), std::ref(error_b));
  ta.join();
  tb.join();
  ASSERT_EQ(error_a, "");
  ASSERT_EQ(error_b, "");
  for (std::size_t k = 0; k < 2 * n; ++k) {
    const std::size_t ia = k % n;
    const std::size_t ib = n - 1 - k % n;
    SCOPED_TRACE("round " + std::to_string(k));
    EXPECT_EQ(a[k].output_ids, sequential[ia].output_ids) << cases[ia].name;
    EXPECT_EQ(a[k].texts, sequential[ia].texts) << cases[ia].name;
    EXPECT_TRUE(a[k].masks == sequential[ia].masks) << cases[ia].name << ": mask pixels differ";
    EXPECT_EQ(b[k].output_ids, sequential[ib].output_ids) << cases[ib].name;
    EXPECT_EQ(b[k].texts, sequential[ib].texts) << cases[ib].name;
    EXPECT_TRUE(b[k].masks == sequential[ib].masks) << cases[ib].name << ": mask pixels differ";
  }
}

}  // namespace
