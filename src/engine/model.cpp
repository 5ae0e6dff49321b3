// Loading a bundle: manifest, tokenizer, the six modules on the device in the compute dtype,
// and the checks that the files are what the manifest says.
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <chrono>
#include <cstdlib>

#include "core/text.h"
#include "engine/model_parts.h"
#include "unibiomed/engine.h"
#include "unibiomed/error.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;

torch::Device parse_device(const std::string& text) {
  const std::string name = detail::to_lower(detail::trim(text));
  if (name.empty() || name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                       : torch::Device(torch::kCPU);
  }
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw usage_error("--device " + text +
                        ": LibTorch sees no CUDA device here (CPU-only LibTorch, or no GPU)");
    }
    int index = 0;
    if (name.size() > 5) {
      const std::string digits = name.substr(5);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
          digits.size() > 3) {
        throw usage_error("--device " + text + ": expected cuda:N");
      }
      index = std::stoi(digits);
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count) {
      throw usage_error("--device " + text + ": there are " + std::to_string(count) +
                        " CUDA devices");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw usage_error("--device " + text + ": expected auto, cpu, cuda or cuda:N");
}

torch::ScalarType parse_dtype(const std::string& text, const std::string& what) {
  const std::string name = detail::to_lower(detail::trim(text));
  if (name == "fp32" || name == "float32" || name == "float") return torch::kFloat32;
  if (name == "fp16" || name == "float16" || name == "half") return torch::kFloat16;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  throw usage_error(what + " '" + text + "': expected fp32, fp16 or bf16");
}

std::string dtype_string(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "fp32";
    case torch::kFloat16:
      return "fp16";
    case torch::kBFloat16:
      return "bf16";
    default:
      return std::string(c10::toString(dtype));
  }
}

// The compute dtype: --dtype, else the manifest's compute_dtype for the device kind, else fp32
// on CPU and bf16 on CUDA.
torch::ScalarType choose_dtype(const BundleManifest& m, const ModelOptions& options,
                               const torch::Device& device) {
  const std::string kind = device.is_cuda() ? "cuda" : "cpu";
  torch::ScalarType dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  if (!options.dtype.empty()) {
    dtype = parse_dtype(options.dtype, "--dtype");
  } else if (m.raw.contains("compute_dtype") && m.raw.at("compute_dtype").contains(kind)) {
    const auto& value = m.raw.at("compute_dtype").at(kind);
    if (!value.is_string()) {
      throw input_error((m.dir / "manifest.json").string() + ": compute_dtype." + kind +
                        " is not a string");
    }
    dtype = parse_dtype(value.get<std::string>(),
                        (m.dir / "manifest.json").string() + ": compute_dtype." + kind);
  }
  if (!device.is_cuda() && dtype == torch::kFloat16) {
    throw usage_error("--dtype fp16 is not supported on the CPU (use fp32 or bf16)");
  }
  return dtype;
}

Part load_part(const BundleManifest& m, const std::string& key, const torch::Device& device,
               torch::ScalarType stored, torch::ScalarType compute) {
  const fs::path path = m.file_path(key);
  torch::jit::Module module;
  try {
    module = torch::jit::load(path.string(), device);
  } catch (const c10::Error& e) {
    throw input_error(path.string() + ": not a loadable TorchScript module (" +
                      std::string(e.what_without_backtrace()) + ")");
  }
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (p.value.is_floating_point() && p.value.scalar_type() != stored) {
      throw input_error(path.string() + ": parameter " + p.name + " is " +
                        dtype_string(p.value.scalar_type()) +
                        ", the manifest says the weights are " + dtype_string(stored));
    }
  }
  module.eval();
  if (compute != stored) module.to(compute);
  return Part(key, std::move(module));
}

// One cheap call of the language side and the grounding projector: their outputs must have the
// manifest's shapes. With `full` (on a GPU) the vision encoder and SAM2 are run once as well,
// which also warms their kernels.
void warm_up(const ModelParts& parts, const BundleManifest& m, bool full) {
  torch::InferenceMode guard;
  const auto& lang = m.language;
  const auto ids =
      torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kInt64).device(parts.device));
  const torch::Tensor embeds = parts.language.call_tensor("embed", {ids});
  expect_shape(embeds, {1, 1, lang.hidden_size}, "language_decoder", "embed");
  const torch::Tensor cache =
      torch::zeros({lang.num_layers, 1, lang.num_kv_heads, 1, lang.head_dim}, parts.options());
  const torch::Tensor cache_v = torch::zeros_like(cache);
  const auto index =
      torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt64).device(parts.device));
  const auto out =
      parts.language.call_tuple("forward", {embeds, std::int64_t{0}, cache, cache_v, index});
  expect_shape(out.at(0), {1, 1, lang.vocab_size}, "language_decoder", "logits");
  expect_shape(out.at(1), {1, 1, lang.hidden_size}, "language_decoder", "hidden state");
  const torch::Tensor language = parts.grounding.call_tensor("forward", {out.at(1)[0]});
  expect_shape(language, {1, m.sam.language_embed_dim}, "grounding_projector",
               "language embedding");
  if (!full) return;
  const int tile = m.vision.tile_size;
  const torch::Tensor tokens =
      parts.vision.call_tensor("forward", {torch::zeros({1, 3, tile, tile}, parts.options())});
  expect_shape(tokens, {1, m.vision.tokens_per_tile, lang.hidden_size}, "vision_encoder",
               "image tokens");
  const int size = m.sam.image_size;
  const auto enc =
      parts.sam_image.call_tuple("forward", {torch::zeros({1, 3, size, size}, parts.options())});
  const torch::Tensor embed = parts.sam_tracker.call_tensor("no_memory", {enc.at(2)});
  const auto dec = parts.sam_decoder.call_tuple("forward", {embed, enc.at(0), enc.at(1), language});
  expect_shape(dec.at(0), {1, -1, m.sam.low_res_size, m.sam.low_res_size}, "sam_mask_decoder",
               "mask logits");
}

}  // namespace

c10::IValue Part::call(const std::string& method, std::vector<c10::IValue> inputs) const {
  try {
    return module_.get_method(method)(std::move(inputs));
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    if (message.size() > 400) message = message.substr(0, 400) + "...";
    throw internal_error("model part " + name_ + "." + method + " failed: " + message);
  }
}

torch::Tensor Part::call_tensor(const std::string& method, std::vector<c10::IValue> inputs) const {
  const c10::IValue out = call(method, std::move(inputs));
  if (!out.isTensor()) {
    throw input_error("model part " + name_ + "." + method + " returned no tensor");
  }
  return out.toTensor();
}

std::vector<torch::Tensor> Part::call_tuple(const std::string& method,
                                            std::vector<c10::IValue> inputs) const {
  const c10::IValue out = call(method, std::move(inputs));
  if (!out.isTuple()) {
    throw input_error("model part " + name_ + "." + method + " returned no tuple");
  }
  std::vector<torch::Tensor> tensors;
  for (const auto& element : out.toTupleRef().elements()) {
    if (!element.isTensor()) {
      throw input_error("model part " + name_ + "." + method + " returned a non-tensor");
    }
    tensors.push_back(element.toTensor());
  }
  return tensors;
}

std::string shape_string(const torch::Tensor& t) {
  std::string text = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) {
    if (i) text += ", ";
    text += std::to_string(t.size(i));
  }
  return text + "]";
}

void expect_shape(const torch::Tensor& t, const std::vector<std::int64_t>& expected,
                  const std::string& part, const std::string& what) {
  bool ok = t.dim() == static_cast<std::int64_t>(expected.size());
  for (std::size_t i = 0; ok && i < expected.size(); ++i) {
    ok = expected[i] < 0 || t.size(static_cast<std::int64_t>(i)) == expected[i];
  }
  if (ok) return;
  std::string want = "[";
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (i) want += ", ";
    want += expected[i] < 0 ? std::string("*") : std::to_string(expected[i]);
  }
  throw input_error("model part " + part + " gives " + what + " of shape " + shape_string(t) +
                    " where the manifest promises " + want + "]");
}

Model::Model(PrivateKey) {}
Model::~Model() = default;

std::string Model::device_name() const {
  return parts_->device.str();
}
std::string Model::dtype_name() const {
  return dtype_string(parts_->dtype);
}

std::shared_ptr<const Model> Model::load(const fs::path& dir, const ModelOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  torch::InferenceMode guard;
  auto model = std::make_shared<Model>(PrivateKey{});
  model->manifest_ = read_manifest(dir);
  const BundleManifest& m = model->manifest_;
  const torch::Device device = parse_device(options.device);
  const torch::ScalarType stored =
      parse_dtype(m.dtype, (dir / "manifest.json").string() + ": dtype");
  const torch::ScalarType compute = choose_dtype(m, options, device);

  auto tokenizer = load_tokenizer(m.tokenizer.kind, dir / m.tokenizer.file, added_tokens());
  for (const auto& [token, id] : m.tokenizer.special_tokens) {
    if (tokenizer->token_to_id(token) != id) {
      throw input_error((dir / "manifest.json").string() + ": special token " + token + " is id " +
                        std::to_string(id) + " but the tokenizer gives " +
                        std::to_string(tokenizer->token_to_id(token)));
    }
  }
  model->tokenizer_ = std::move(tokenizer);

  auto parts = std::make_unique<ModelParts>();
  parts->device = device;
  parts->dtype = compute;
  parts->vision = load_part(m, "vision_encoder", device, stored, compute);
  parts->language = load_part(m, "language_decoder", device, stored, compute);
  parts->grounding = load_part(m, "grounding_projector", device, stored, compute);
  parts->sam_image = load_part(m, "sam_image_encoder", device, stored, compute);
  parts->sam_decoder = load_part(m, "sam_mask_decoder", device, stored, compute);
  parts->sam_tracker = load_part(m, "sam_tracker", device, stored, compute);
  if (options.warmup) warm_up(*parts, m, device.is_cuda());
  model->parts_ = std::move(parts);
  model->load_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::debug("loaded {} on {} ({}) in {:.2f} s", m.name, model->device_name(),
                model->dtype_name(), model->load_seconds_);
  return model;
}

fs::path default_model_dir() {
  if (const char* env = std::getenv("UNIBIOMED_MODEL"); env && *env) {
    return fs::path(env);
  }
  for (const fs::path& candidate :
       {fs::path(UNIBIOMED_DEFAULT_MODEL_SOURCE), fs::path(UNIBIOMED_DEFAULT_MODEL_INSTALL)}) {
    if (fs::exists(candidate / "manifest.json")) return candidate;
  }
  throw usage_error(
      "no model given: pass -m MODEL_DIR or set UNIBIOMED_MODEL (there is no default model in " +
      std::string(UNIBIOMED_DEFAULT_MODEL_SOURCE) + ")");
}

}  // namespace unibiomed
