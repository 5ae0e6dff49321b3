// Speed and memory of the video pipeline on a volume: the language side once, then SAM2 image
// encoding and memory propagation through every slice, as slices/s, and the peak resident
// memory. Prints a table; not a test.
//
//   unibiomed_bench_volume -m BUNDLE VOLUME [--modality M] [--axis A] [--slices FIRST:END]
//                          [--objects K] [--rule spread|release] [--max-new-tokens N (16)]
//                          [--threads N] [--device D]
//
// A random bundle rarely writes [SEG]; the propagation is then run with K random language
// embeddings on the frames the rule chose, exactly as the pipeline would run it.
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "engine/model_parts.h"
#include "sam/propagate_video.h"
#include "tools/interpret_sequence.h"
#include "unibiomed/engine.h"
#include "unibiomed/error.h"
#include "unibiomed/read.h"

namespace {

int usage() {
  std::cerr << "usage: unibiomed_bench_volume -m BUNDLE VOLUME [--modality M] [--axis A] "
               "[--slices FIRST:END] [--objects K] [--rule spread|release] [--max-new-tokens N] "
               "[--threads N] [--device D]\n";
  return 2;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

void row(const char* what, double seconds, int frames) {
  std::printf("  %-22s %9.2f s  %8.2f slices/s\n", what, seconds,
              seconds > 0 ? frames / seconds : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  unibiomed::InterpretCommand command;
  unibiomed::ModelOptions options;
  std::string slices;
  std::string rule = "spread";
  int objects = 1;
  int threads = 0;
  int max_new_tokens = 16;  // a random bundle never stops on its own
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "-m") {
      command.model_dir = value();
    } else if (arg == "--modality") {
      command.read.modality = unibiomed::parse_modality(value());
    } else if (arg == "--axis") {
      command.axis = value();
    } else if (arg == "--slices") {
      slices = value();
    } else if (arg == "--objects") {
      objects = std::atoi(value().c_str());
    } else if (arg == "--rule") {
      rule = value();
    } else if (arg == "--max-new-tokens") {
      max_new_tokens = std::atoi(value().c_str());
    } else if (arg == "--threads") {
      threads = std::atoi(value().c_str());
    } else if (arg == "--device") {
      options.device = value();
    } else if (!arg.empty() && arg[0] != '-' && command.input.empty()) {
      command.input = arg;
    } else {
      return usage();
    }
  }
  if (command.model_dir.empty() || command.input.empty() || objects < 1) return usage();
  if (threads > 0) torch::set_num_threads(threads);
  command.llm_frames = rule;
  try {
    const auto start = std::chrono::steady_clock::now();
    const unibiomed::Volume volume = unibiomed::read_image(command.input, command.read);
    unibiomed::FrameSequence sequence = unibiomed::make_frame_sequence(volume, command);
    unibiomed::InputFrames frames = sequence.frames;
    if (!slices.empty()) {  // a slab FIRST:END of the slices
      const auto colon = slices.find(':');
      const int first = std::atoi(slices.substr(0, colon).c_str());
      const int end =
          colon == std::string::npos ? frames.count : std::atoi(slices.substr(colon + 1).c_str());
      if (first < 0 || end > frames.count || end <= first) {
        std::cerr << "--slices " << slices << ": outside 0:" << frames.count << "\n";
        return 2;
      }
      const auto all = frames.frame;
      frames.frame = [all, first](int z) { return all(first + z); };
      frames.count = end - first;
    }
    const double read_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rss_read = peak_rss_mib();

    const auto model = unibiomed::Model::load(command.model_dir, options);
    const double rss_model = peak_rss_mib();
    std::printf("model %s on %s (%s), %d threads\n", model->manifest().name.c_str(),
                model->device_name().c_str(), model->dtype_name().c_str(),
                torch::get_num_threads());
    std::printf("volume %s: %dx%d, %d %s slices (of %zu x %zu x %zu)\n", command.input.c_str(),
                frames.width, frames.height, frames.count, sequence.slicing.c_str(),
                volume.geometry.size[0], volume.geometry.size[1], volume.geometry.size[2]);
    std::printf("  %-22s %9.2f s\n", "read + slice", read_seconds);
    std::printf("  %-22s %9.2f s\n", "load", model->load_seconds());

    unibiomed::Session session(model);
    unibiomed::InterpretRequest request;
    request.targets = {"brain"};
    request.generation.max_new_tokens = max_new_tokens;
    const auto result = session.interpret_frames(frames, request);
    const auto& t = result.times;
    std::printf("  %-22s %9.2f s  (%zu frames seen: %s rule)\n", "vision", t.vision,
                result.llm_frames.size(), result.frame_rule.c_str());
    std::printf("  %-22s %9.2f s  (%zu prompt tokens)\n", "prefill", t.prefill,
                result.answers.empty() ? std::size_t{0} : result.answers[0].prompt_ids.size());
    std::printf("  %-22s %9.2f s  (%zu tokens)\n", "decode", t.decode, t.decode_tokens);

    double encode = t.sam_encode;
    double track = t.sam_decode;
    int peak_memories = 0;
    if (result.findings.empty()) {
      std::printf("  (no [SEG] in the answer: propagation with %d random embedding(s))\n", objects);
      torch::InferenceMode guard;
      const auto& parts = model->parts();
      const auto& m = model->manifest();
      torch::manual_seed(0);
      const torch::Tensor language =
          torch::randn({objects, m.sam.language_embed_dim}).to(parts.device, parts.dtype);
      unibiomed::VideoOptions video_options;
      video_options.width = frames.width;
      video_options.height = frames.height;
      const auto video = unibiomed::propagate_video(parts, m, frames.count, frames.frame, language,
                                                    result.llm_frames, video_options);
      encode = video.encode_seconds;
      track = video.track_seconds;
      peak_memories = video.peak_memories;
    }
    row("SAM2 image encoding", encode, frames.count);
    row("propagation", track, frames.count);
    row("SAM2 total", encode + track, frames.count);
    if (peak_memories > 0) std::printf("  memories held at most   %d frames\n", peak_memories);
    std::printf("  peak RSS: %.0f MiB (after reading %.0f MiB, after loading %.0f MiB)\n",
                peak_rss_mib(), rss_read, rss_model);
  } catch (const std::exception& e) {
    std::cerr << "bench_volume: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
