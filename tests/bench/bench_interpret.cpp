// Per-stage time of one interpretation: load, preprocess, vision, prefill, decode (tokens/s),
// SAM encode, SAM decode. Prints a table; not a test.
//
//   unibiomed_bench_interpret -m BUNDLE IMAGE [--target T] [--task T] [--question Q]
//                             [--max-new-tokens N] [--repeat N] [--device D] [--dtype D]
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "engine/model_parts.h"
#include "sam/segment_image.h"
#include "unibiomed/engine.h"
#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/read.h"

namespace {

int usage() {
  std::cerr << "usage: unibiomed_bench_interpret -m BUNDLE IMAGE [--target T] [--task T] "
               "[--question Q] [--max-new-tokens N] [--repeat N] [--device D] [--dtype D] "
               "[--threads N]\n";
  return 2;
}

void row(const char* stage, double seconds, const std::string& extra = "") {
  std::printf("  %-12s %9.3f s  %s\n", stage, seconds, extra.c_str());
}

double seconds_since(std::chrono::steady_clock::time_point start, bool cuda) {
  if (cuda) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  std::string image_path;
  unibiomed::ModelOptions options;
  unibiomed::InterpretRequest request;
  int repeat = 2;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "-m")
      model_dir = value();
    else if (arg == "--target")
      request.targets.push_back(value());
    else if (arg == "--task")
      request.task = value();
    else if (arg == "--question")
      request.question = value();
    else if (arg == "--max-new-tokens")
      request.generation.max_new_tokens = std::stoi(value());
    else if (arg == "--repeat")
      repeat = std::stoi(value());
    else if (arg == "--device")
      options.device = value();
    else if (arg == "--dtype")
      options.dtype = value();
    else if (arg == "--threads")
      threads = std::stoi(value());
    else if (!arg.empty() && arg[0] != '-' && image_path.empty())
      image_path = arg;
    else
      return usage();
  }
  if (model_dir.empty() || image_path.empty() || repeat < 1) return usage();
  if (request.task == "segment" && request.targets.empty()) request.targets = {"brain"};
  if (threads > 0) torch::set_num_threads(threads);
  try {
    const auto volume = unibiomed::read_image(image_path);
    unibiomed::InputImage input;
    input.rgb = unibiomed::frame_rgb8(unibiomed::to_display(volume).volume, 0);
    const auto model = unibiomed::Model::load(model_dir, options);
    std::printf("model %s on %s (%s), %d threads; image %s %dx%d\n", model->manifest().name.c_str(),
                model->device_name().c_str(), model->dtype_name().c_str(), torch::get_num_threads(),
                image_path.c_str(), input.rgb.width, input.rgb.height);
    row("load", model->load_seconds());
    for (int r = 0; r < repeat; ++r) {
      // A new session each time: nothing of the previous image is reused.
      unibiomed::Session session(model);
      const auto result = session.interpret(input, request);
      const auto& t = result.times;
      std::printf("run %d%s: %zu answer(s), %zu finding(s), %zu generated tokens\n", r + 1,
                  r == 0 ? " (cold)" : "", result.answers.size(), result.findings.size(),
                  result.answers.empty() ? std::size_t{0} : result.answers[0].output_ids.size());
      row("preprocess", t.preprocess);
      row("vision", t.vision);
      row("prefill", t.prefill,
          std::to_string(result.answers.empty() ? 0 : result.answers[0].prompt_ids.size()) +
              " prompt tokens");
      char rate[64];
      std::snprintf(rate, sizeof rate, "%zu tokens, %.1f tokens/s", t.decode_tokens,
                    t.decode > 0 ? static_cast<double>(t.decode_tokens) / t.decode : 0.0);
      row("decode", t.decode, rate);
      if (result.findings.empty()) {
        // A random model rarely writes [SEG]: time SAM2 on the image with one language
        // embedding of zeros, as the pipeline would run it.
        torch::InferenceMode guard;
        const auto& parts = model->parts();
        const auto& m = model->manifest();
        auto start = std::chrono::steady_clock::now();
        const auto features = unibiomed::encode_sam_image(parts, m, input.rgb);
        const double encode = seconds_since(start, parts.device.is_cuda());
        start = std::chrono::steady_clock::now();
        const auto candidates = unibiomed::decode_masks(
            parts, m, features, torch::zeros({1, m.sam.language_embed_dim}, parts.options()));
        unibiomed::masks_on_image(candidates, m.sam.image_size, input.rgb.height, input.rgb.width,
                                  m.sam.mask_threshold);
        const double decode = seconds_since(start, parts.device.is_cuda());
        row("sam encode", encode, "(no [SEG] in the answer: run on its own)");
        row("sam decode", decode, "(one embedding of zeros)");
      } else {
        row("sam encode", t.sam_encode);
        row("sam decode", t.sam_decode);
      }
      row("postprocess", t.postprocess);
      row("total", t.total);
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_interpret: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
