#include "unibiomed/tokenize.h"

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "unibiomed/chat.h"
#include "unibiomed/error.h"
#include "unibiomed/manifest.h"
#include "unibiomed/tokenizer.h"

namespace unibiomed {
namespace {

struct Loaded {
  std::unique_ptr<const Tokenizer> tokenizer;
  ChatSettings chat;
  int tokens_per_tile = 256;
};

Loaded load(const TokenizeRequest& request) {
  Loaded loaded;
  if (!request.model_dir.empty() == !request.tokenizer_file.empty()) {
    throw usage_error("give either -m MODEL_DIR or --tokenizer FILE");
  }
  if (!request.model_dir.empty()) {
    const BundleManifest manifest = read_manifest(request.model_dir);
    const auto path = manifest.dir / manifest.tokenizer.file;
    loaded.tokenizer = load_tokenizer(manifest.tokenizer.kind, path, added_tokens());
    for (const auto& [token, id] : manifest.tokenizer.special_tokens) {
      const TokenId found = loaded.tokenizer->token_to_id(token);
      if (found != id) {
        throw input_error((manifest.dir / "manifest.json").string() + ": special token " + token +
                          " has id " + std::to_string(id) + ", " + path.string() + " says " +
                          std::to_string(found));
      }
    }
    loaded.chat = manifest.chat;
    loaded.tokens_per_tile = manifest.vision.tokens_per_tile;
  } else {
    const std::filesystem::path path = request.tokenizer_file;
    loaded.tokenizer = load_tokenizer(tokenizer_kind_for(path), path, added_tokens());
  }
  return loaded;
}

std::string line_error(std::size_t number, const std::string& what) {
  return "stdin line " + std::to_string(number) + ": " + what;
}

std::vector<TokenId> parse_ids(const std::string& line, std::size_t number, std::size_t vocab) {
  std::vector<TokenId> ids;
  std::istringstream stream(line);
  std::string word;
  while (stream >> word) {
    std::size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || value < 0 || static_cast<unsigned long long>(value) >= vocab) {
      throw input_error(
          line_error(number, "'" + word + "' is not a token id below " + std::to_string(vocab)));
    }
    ids.push_back(static_cast<TokenId>(value));
  }
  return ids;
}

}  // namespace

void run_tokenize(const TokenizeRequest& request, std::istream& in, std::ostream& out) {
  if (request.image_tiles < 1) throw usage_error("--image-tiles must be at least 1");
  const Loaded loaded = load(request);
  const Tokenizer& tokenizer = *loaded.tokenizer;
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (request.decode) {
      const std::string text = tokenizer.decode(parse_ids(line, number, tokenizer.vocab_size()));
      if (request.jsonl) {
        out << nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            << '\n';
      } else {
        out << text << '\n';
      }
      continue;
    }
    std::string text = line;
    if (request.jsonl) {
      try {
        const auto value = nlohmann::json::parse(line);
        if (!value.is_string()) throw input_error(line_error(number, "not a JSON string"));
        text = value.get<std::string>();
      } catch (const nlohmann::json::exception& e) {
        throw input_error(line_error(number, std::string("not a JSON string (") + e.what() + ")"));
      }
    }
    if (request.apply_template) {
      const std::string& placeholder = loaded.chat.image_placeholder;
      if (text.find(placeholder) != std::string::npos) {
        const std::vector<int> frames = {loaded.tokens_per_tile * request.image_tiles};
        text = expand_image_tokens(text, frames, placeholder);
      }
      text = chat_prompt(loaded.chat, text);
    }
    std::vector<TokenId> ids;
    try {
      ids = tokenizer.encode(text);
    } catch (const Error& e) {
      throw Error(e.kind(), line_error(number, e.what()));
    }
    for (std::size_t i = 0; i < ids.size(); ++i) out << (i ? " " : "") << ids[i];
    out << '\n';
  }
}

}  // namespace unibiomed
