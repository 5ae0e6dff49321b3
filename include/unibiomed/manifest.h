// The model bundle's manifest (docs/bundle-format.md): every size, token, prompt and file the
// engine needs, read and checked once when a bundle is opened.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "unibiomed/chat.h"

namespace unibiomed {

inline constexpr int kBundleFormatVersion = 1;

struct BundleFile {
  std::string path;  // relative to the bundle folder
  std::uintmax_t bytes = 0;
  std::string sha256;
};

struct TokenizerInfo {
  std::string kind;  // "sentencepiece" or "bpe"
  std::string file;
  std::map<std::string, std::int32_t> special_tokens;  // [SEG], <p>, ..., <IMG_CONTEXT>
};

struct VisionInputInfo {
  int tile_size = 448;
  int min_tiles = 1;
  int max_tiles = 12;
  bool use_thumbnail = true;
  int tokens_per_tile = 256;
};

struct LanguageInfo {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int hidden_size = 0;
  int vocab_size = 0;
  int max_positions = 32768;  // architecture.language.max_position_embeddings
};

struct SamInfo {
  int image_size = 1024;
  int low_res_size = 256;
  double mask_threshold = 0.0;
  int language_embed_dim = 256;
  int num_maskmem = 7;
  int max_obj_ptrs = 16;
};

// The frames a [SEG] embedding prompts in video mode: those the language model saw, SAM2's
// memory carrying the masks to the others (the release), or every frame, each decoded on its
// own like a 2-D image.
enum class PromptFrames { Seen, Every };
std::optional<PromptFrames> prompt_frames_named(const std::string& name);  // "seen" | "every"
std::string to_string(PromptFrames frames);

struct BundleManifest {
  std::filesystem::path dir;
  std::string name;
  std::string description;
  bool demo = false;
  std::string dtype;  // weights as stored: fp32, fp16, bf16
  std::map<std::string, BundleFile> files;
  TokenizerInfo tokenizer;
  ChatSettings chat;
  VisionInputInfo vision;
  LanguageInfo language;
  SamInfo sam;
  int video_llm_frames = 5;
  // The frames a [SEG] prompts in video mode when the request does not say (video.prompt_frames).
  PromptFrames video_prompt_frames = PromptFrames::Seen;
  nlohmann::json raw;  // the whole manifest, for what the engine does not model

  std::filesystem::path file_path(const std::string& key) const;
};

// Reads `dir`/manifest.json and checks format, version and that every listed file exists with
// its size. Throws Error(Input) naming the file and the key at fault.
BundleManifest read_manifest(const std::filesystem::path& dir);

}  // namespace unibiomed
