// The six TorchScript modules of a bundle, on one device in one dtype, and the checks of what
// they return against what the manifest promises. Internal to the engine.
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

namespace unibiomed {

// One exported module. Calls are const (a TorchScript method does not change the module), so a
// loaded model can be shared by sessions on several threads.
class Part {
 public:
  Part() = default;
  Part(std::string name, torch::jit::Module module)
      : name_(std::move(name)), module_(std::move(module)) {}

  const std::string& name() const { return name_; }
  // Runs `method`; a LibTorch error becomes an Error naming this part and the method.
  c10::IValue call(const std::string& method, std::vector<c10::IValue> inputs) const;
  torch::Tensor call_tensor(const std::string& method, std::vector<c10::IValue> inputs) const;
  std::vector<torch::Tensor> call_tuple(const std::string& method,
                                        std::vector<c10::IValue> inputs) const;

  torch::jit::Module& module() { return module_; }
  const torch::jit::Module& module() const { return module_; }

 private:
  std::string name_;
  torch::jit::Module module_;
};

struct ModelParts {
  Part vision;       // forward(pixels [N,3,T,T]) -> [N, tokens_per_tile, hidden]
  Part language;     // embed(ids [B,T]); forward(embeds, start, k, v, logits_index)
  Part grounding;    // forward(hidden [K,hidden]) -> [K, language_embed_dim]
  Part sam_image;    // forward(image [B,3,S,S]) -> (s0, s1, image_embed, image_pos)
  Part sam_decoder;  // forward(embed, s0, s1, lang [K,D]) -> (masks, iou, object_score, tokens)
  Part sam_tracker;  // no_memory(embed), ... (video mode)
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;

  torch::TensorOptions options() const {
    return torch::TensorOptions().device(device).dtype(dtype);
  }
};

// Throws Error(Input) naming the part when `t` does not have `expected` (-1: any size).
void expect_shape(const torch::Tensor& t, const std::vector<std::int64_t>& expected,
                  const std::string& part, const std::string& what);

std::string shape_string(const torch::Tensor& t);

}  // namespace unibiomed
