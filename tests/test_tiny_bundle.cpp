// The committed tiny bundle, loaded with this LibTorch, reproduces the reference pipeline's
// goldens: the C++ side owns the KV cache and decodes greedily, exactly as the engine will.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.h"
#include "unibiomed/error.h"
#include "unibiomed/safetensors.h"

namespace fs = std::filesystem;

namespace {

using unibiomed::test::read_json;
using unibiomed::test::relative_error;
using unibiomed::test::test_data;

class TinyBundle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    manifest_ = read_json(test_data("tiny-bundle") / "manifest.json");
    cases_ = read_json(test_data("tiny-golden") / "cases.json")["cases"];
  }
  static torch::jit::Module load(const std::string& part) {
    const std::string file = manifest_["files"][part]["path"].get<std::string>();
    return torch::jit::load((test_data("tiny-bundle") / file).string());
  }
  static nlohmann::json manifest_;
  static nlohmann::json cases_;
};
nlohmann::json TinyBundle::manifest_;
nlohmann::json TinyBundle::cases_;

TEST_F(TinyBundle, ManifestDescribesEveryPart) {
  EXPECT_EQ(manifest_["format"], "unibiomed-bundle");
  EXPECT_EQ(manifest_["format_version"], 1);
  for (const char* part : {"vision_encoder", "language_decoder", "grounding_projector",
                           "sam_image_encoder", "sam_mask_decoder", "sam_tracker"}) {
    const auto& entry = manifest_["files"][part];
    const fs::path path = test_data("tiny-bundle") / entry["path"].get<std::string>();
    EXPECT_EQ(fs::file_size(path), entry["bytes"].get<std::uintmax_t>()) << part;
    EXPECT_NO_THROW(load(part)) << part;
  }
  EXPECT_EQ(manifest_["tokenizer"]["special_tokens"].size(), 8U);
}

// Greedy decoding with a caller-owned cache gives the golden ids, and the final-norm hidden
// state where each [SEG] is fed gives the golden [SEG] embeddings.
TEST_F(TinyBundle, LanguageDecoderReproducesGreedyGeneration) {
  torch::NoGradGuard no_grad;
  auto decoder = load("language_decoder");
  auto grounding = load("grounding_projector");
  const auto& lang = manifest_["language"];
  const auto& special = manifest_["tokenizer"]["special_tokens"];
  const std::int64_t context_id = special["<IMG_CONTEXT>"].get<std::int64_t>();
  const std::int64_t seg_id = special["[SEG]"].get<std::int64_t>();
  int checked = 0;
  for (const auto& c : cases_) {
    if (c["kind"] != "image") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    auto gold =
        unibiomed::read_safetensors(test_data("tiny-golden") / c["tensors"].get<std::string>());
    const torch::Tensor ids = gold.at("prompt_ids");
    const auto expected = c["output_ids"].get<std::vector<std::int64_t>>();
    const std::int64_t prompt_len = ids.size(0);
    const std::int64_t hidden_size = lang["hidden_size"].get<std::int64_t>();
    torch::Tensor embeds = decoder.run_method("embed", ids.unsqueeze(0)).toTensor();
    const torch::Tensor where = (ids == context_id).nonzero().flatten();
    const torch::Tensor vision = gold.at("vision_tokens").reshape({-1, hidden_size});
    ASSERT_EQ(where.size(0), vision.size(0));
    embeds.index_put_({0, where}, vision);
    const std::vector<std::int64_t> cache_shape = {
        lang["num_layers"].get<std::int64_t>(), 1, lang["num_kv_heads"].get<std::int64_t>(),
        prompt_len + static_cast<std::int64_t>(expected.size()),
        lang["head_dim"].get<std::int64_t>()};
    torch::Tensor k_cache = torch::zeros(cache_shape);
    torch::Tensor v_cache = torch::zeros(cache_shape);
    const void* k_storage = k_cache.data_ptr();
    auto out = decoder
                   .forward({embeds, int64_t{0}, k_cache, v_cache,
                             torch::tensor({prompt_len - 1}, torch::kInt64)})
                   .toTuple();
    torch::Tensor logits = out->elements()[0].toTensor();
    std::vector<torch::Tensor> seg_hidden;
    std::int64_t pos = prompt_len;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const std::int64_t token = logits.index({0, -1}).argmax().item<std::int64_t>();
      ASSERT_EQ(token, expected[i]) << "generated token " << i;
      if (i + 1 == expected.size()) break;
      const torch::Tensor step =
          decoder.run_method("embed", torch::tensor({{token}}, torch::kInt64)).toTensor();
      out = decoder.forward({step, pos, k_cache, v_cache, torch::tensor({0}, torch::kInt64)})
                .toTuple();
      logits = out->elements()[0].toTensor();
      if (token == seg_id) seg_hidden.push_back(out->elements()[1].toTensor()[0][0]);
      ++pos;
    }
    EXPECT_EQ(k_cache.data_ptr(), k_storage) << "the cache must be updated in place";
    ASSERT_EQ(static_cast<std::int64_t>(seg_hidden.size()), gold.at("seg_hidden").size(0));
    const torch::Tensor hidden = torch::stack(seg_hidden);
    EXPECT_LT(relative_error(hidden, gold.at("seg_hidden")), 1e-5);
    const torch::Tensor language = grounding.forward({hidden}).toTensor();
    EXPECT_LT(relative_error(language, gold.at("language_embeddings")), 1e-5);
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(Safetensors, RefusesMalformedFilesNamingThem) {
  const fs::path dir = fs::temp_directory_path() / "unibiomed_safetensors_test";
  fs::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& header, std::size_t data) {
    std::ofstream out(dir / name, std::ios::binary);
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << std::string(data, '\0');
    return dir / name;
  };
  const auto ok =
      write("ok.safetensors", R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 16);
  EXPECT_EQ(unibiomed::read_safetensors(ok).at("a").sizes(), (std::vector<std::int64_t>{2, 2}));
  const auto short_data =
      write("short.safetensors", R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 8);
  EXPECT_THROW(
      {
        try {
          unibiomed::read_safetensors(short_data);
        } catch (const unibiomed::Error& e) {
          EXPECT_NE(std::string(e.what()).find("tensor 'a'"), std::string::npos) << e.what();
          throw;
        }
      },
      unibiomed::Error);
  const auto wrong_size =
      write("size.safetensors", R"({"b":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})", 4);
  EXPECT_THROW(unibiomed::read_safetensors(wrong_size), unibiomed::Error);
  const auto not_json = write("json.safetensors", "{nope", 0);
  EXPECT_THROW(unibiomed::read_safetensors(not_json), unibiomed::Error);
  fs::remove_all(dir);
}

}  // namespace
