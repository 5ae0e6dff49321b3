#include "unibiomed/manifest.h"

#include <fstream>

#include "unibiomed/error.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A value at `key` of `table`, converted to T; errors name the manifest and the key.
template <typename T>
T get(const json& table, const std::string& key, const std::string& where) {
  if (!table.is_object() || !table.contains(key)) {
    throw input_error(where + ": missing key '" + key + "'");
  }
  try {
    return table.at(key).get<T>();
  } catch (const json::exception& e) {
    throw input_error(where + ": key '" + key + "' has the wrong type (" + e.what() + ")");
  }
}

// A value at `key` when present, else `fallback` (json::value() trips GCC's -Wnull-dereference).
template <typename T>
T get_or(const json& table, const std::string& key, const T& fallback, const std::string& where) {
  return table.contains(key) ? get<T>(table, key, where) : fallback;
}

const json& table_at(const json& root, const std::string& key, const std::string& where) {
  if (!root.contains(key) || !root.at(key).is_object()) {
    throw input_error(where + ": missing table '" + key + "'");
  }
  return root.at(key);
}

}  // namespace

fs::path BundleManifest::file_path(const std::string& key) const {
  const auto it = files.find(key);
  if (it == files.end()) {
    throw input_error((dir / "manifest.json").string() + ": no file entry '" + key + "'");
  }
  return dir / it->second.path;
}

BundleManifest read_manifest(const fs::path& dir) {
  const fs::path path = dir / "manifest.json";
  const std::string where = path.string();
  if (!fs::is_directory(dir)) throw input_error(dir.string() + ": not a model bundle folder");
  std::ifstream in(path);
  if (!in) throw input_error(dir.string() + ": not a model bundle (no manifest.json)");
  BundleManifest m;
  m.dir = dir;
  try {
    m.raw = json::parse(in);
  } catch (const json::exception& e) {
    throw input_error(where + ": not valid JSON (" + e.what() + ")");
  }
  const json& r = m.raw;
  if (get<std::string>(r, "format", where) != "unibiomed-bundle") {
    throw input_error(where + ": format is not 'unibiomed-bundle'");
  }
  const int version = get<int>(r, "format_version", where);
  if (version != kBundleFormatVersion) {
    throw input_error(where + ": format_version " + std::to_string(version) +
                      " is not supported (this engine reads " +
                      std::to_string(kBundleFormatVersion) + ")");
  }
  m.name = get<std::string>(r, "name", where);
  m.description = get_or<std::string>(r, "description", "", where);
  m.demo = get_or<bool>(r, "demo", false, where);
  m.dtype = get<std::string>(r, "dtype", where);
  for (const auto& [key, entry] : table_at(r, "files", where).items()) {
    BundleFile file{get<std::string>(entry, "path", where + " files." + key),
                    get<std::uintmax_t>(entry, "bytes", where + " files." + key),
                    get_or<std::string>(entry, "sha256", "", where + " files." + key)};
    const fs::path file_path = dir / file.path;
    std::error_code ec;
    const auto size = fs::file_size(file_path, ec);
    if (ec) throw input_error(dir.string() + ": " + key + " file " + file.path + " is missing");
    if (size != file.bytes) {
      throw input_error(file_path.string() + ": " + std::to_string(size) +
                        " bytes, the manifest says " + std::to_string(file.bytes));
    }
    m.files.emplace(key, file);
  }
  const json& tok = table_at(r, "tokenizer", where);
  m.tokenizer.kind = get<std::string>(tok, "kind", where + " tokenizer");
  m.tokenizer.file = get<std::string>(tok, "file", where + " tokenizer");
  m.tokenizer.special_tokens =
      get<std::map<std::string, std::int32_t>>(tok, "special_tokens", where + " tokenizer");
  for (const auto& token : added_tokens()) {
    if (!m.tokenizer.special_tokens.count(token)) {
      throw input_error(where + ": tokenizer.special_tokens lacks " + token);
    }
  }
  const json& chat = table_at(r, "chat", where);
  const std::string at_chat = where + " chat";
  m.chat.template_text = get<std::string>(chat, "template", at_chat);
  m.chat.system = get_or<std::string>(chat, "system", "", at_chat);
  m.chat.stop_words = get<std::vector<std::string>>(chat, "stop_words", at_chat);
  m.chat.image_placeholder = get<std::string>(chat, "image_placeholder", at_chat);
  m.chat.max_new_tokens = get<int>(chat, "max_new_tokens", at_chat);
  m.chat.eos_token_ids = get<std::vector<std::int32_t>>(chat, "eos_token_ids", at_chat);
  m.chat.tasks = get<std::map<std::string, std::string>>(r, "tasks", where);
  if (m.chat.template_text.find("{input}") == std::string::npos) {
    throw input_error(at_chat + ": template has no {input}");
  }
  const json& vision = table_at(r, "vision_input", where);
  const std::string at_vision = where + " vision_input";
  m.vision.tile_size = get<int>(vision, "tile_size", at_vision);
  m.vision.min_tiles = get<int>(vision, "min_tiles", at_vision);
  m.vision.max_tiles = get<int>(vision, "max_tiles", at_vision);
  m.vision.use_thumbnail = get<bool>(vision, "use_thumbnail", at_vision);
  m.vision.tokens_per_tile = get<int>(vision, "tokens_per_tile", at_vision);
  const json& lang = table_at(r, "language", where);
  const std::string at_lang = where + " language";
  m.language.num_layers = get<int>(lang, "num_layers", at_lang);
  m.language.num_kv_heads = get<int>(lang, "num_kv_heads", at_lang);
  m.language.head_dim = get<int>(lang, "head_dim", at_lang);
  m.language.hidden_size = get<int>(lang, "hidden_size", at_lang);
  m.language.vocab_size = get<int>(lang, "vocab_size", at_lang);
  if (r.contains("architecture") && r.at("architecture").contains("language")) {
    m.language.max_positions =
        get_or<int>(r.at("architecture").at("language"), "max_position_embeddings",
                    m.language.max_positions, where + " architecture.language");
  }
  const json& sam = table_at(r, "sam", where);
  const std::string at_sam = where + " sam";
  m.sam.image_size = get<int>(sam, "image_size", at_sam);
  m.sam.low_res_size = get<int>(sam, "low_res_size", at_sam);
  m.sam.mask_threshold = get<double>(sam, "mask_threshold", at_sam);
  m.sam.language_embed_dim = get<int>(sam, "language_embed_dim", at_sam);
  m.sam.num_maskmem = get<int>(sam, "num_maskmem", at_sam);
  m.sam.max_obj_ptrs = get<int>(sam, "max_obj_ptrs", at_sam);
  const json& video = table_at(r, "video", where);
  m.video_llm_frames = get<int>(video, "llm_frames", where + " video");
  const std::string prompt_frames =
      get_or<std::string>(video, "prompt_frames", "seen", where + " video");
  const std::optional<PromptFrames> named = prompt_frames_named(prompt_frames);
  if (!named) {
    throw input_error(where + " video: prompt_frames '" + prompt_frames +
                      "', expected seen or every");
  }
  m.video_prompt_frames = *named;
  for (const auto& [token, id] : m.tokenizer.special_tokens) {
    if (id < 0 || id >= m.language.vocab_size) {
      throw input_error(where + ": special token " + token + " has id " + std::to_string(id) +
                        " outside the vocabulary of " + std::to_string(m.language.vocab_size));
    }
  }
  return m;
}

std::optional<PromptFrames> prompt_frames_named(const std::string& name) {
  if (name == "seen") return PromptFrames::Seen;
  if (name == "every") return PromptFrames::Every;
  return std::nullopt;
}

std::string to_string(PromptFrames frames) {
  return frames == PromptFrames::Every ? "every" : "seen";
}

}  // namespace unibiomed
