#include "unibiomed/tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "bpe_tokenizer.h"
#include "sentencepiece_module.h"
#include "unibiomed/error.h"
#include "utf8.h"

namespace unibiomed {
namespace tokenize {
namespace {

using LoadFunction = decltype(&unibiomed_load_sentencepiece);

// Where the module may be: named by the environment, installed beside the program
// (bin/../lib/unibiomed), in the build tree, in the install prefix.
std::vector<std::filesystem::path> module_candidates() {
  constexpr char kName[] = "libunibiomed_sentencepiece.so";
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("UNIBIOMED_SENTENCEPIECE_MODULE"); env != nullptr && *env) {
    out.emplace_back(env);
    return out;
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back(exe.parent_path().parent_path() / "lib" / "unibiomed" / kName);
#ifdef UNIBIOMED_SENTENCEPIECE_MODULE_BUILD
  out.emplace_back(UNIBIOMED_SENTENCEPIECE_MODULE_BUILD);
#endif
#ifdef UNIBIOMED_SENTENCEPIECE_MODULE_INSTALL
  out.emplace_back(UNIBIOMED_SENTENCEPIECE_MODULE_INSTALL);
#endif
  return out;
}

LoadFunction open_module() {
  static std::mutex mutex;
  static LoadFunction function = nullptr;
  const std::lock_guard<std::mutex> lock(mutex);
  if (function != nullptr) return function;
  std::string tried;
  for (const auto& candidate : module_candidates()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(candidate, ec)) {
      tried += (tried.empty() ? "" : ", ") + candidate.string();
      continue;
    }
    // Never closed: the tokenizers it makes live in it.
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      throw internal_error(candidate.string() +
                           ": cannot open the SentencePiece module: " + dlerror());
    }
    void* symbol = dlsym(handle, "unibiomed_load_sentencepiece");
    if (symbol == nullptr) {
      throw internal_error(candidate.string() + ": not the unibiomed SentencePiece module");
    }
    function = reinterpret_cast<LoadFunction>(symbol);
    return function;
  }
  throw internal_error(
      "the SentencePiece module libunibiomed_sentencepiece.so is missing (looked at " + tried +
      "; UNIBIOMED_SENTENCEPIECE_MODULE names it)");
}

}  // namespace

std::unique_ptr<const Tokenizer> load_sentencepiece(const std::filesystem::path& path,
                                                    const std::vector<std::string>& added_tokens) {
  const LoadFunction load = open_module();
  int kind = 0;
  std::string message;
  Tokenizer* tokenizer = load(&path, &added_tokens, &kind, &message);
  if (tokenizer == nullptr) throw Error(static_cast<ErrorKind>(kind), message);
  return std::unique_ptr<const Tokenizer>(tokenizer);
}

}  // namespace tokenize

std::unique_ptr<const Tokenizer> load_tokenizer(const std::string& kind,
                                                const std::filesystem::path& path,
                                                const std::vector<std::string>& added_tokens) {
  if (kind == "sentencepiece") {
    return tokenize::load_sentencepiece(path, added_tokens);
  }
  if (kind == "bpe") return std::make_unique<tokenize::BpeTokenizer>(path, added_tokens);
  throw input_error(path.string() + ": unknown tokenizer kind '" + kind +
                    "' (known: sentencepiece, bpe)");
}

std::string tokenizer_kind_for(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".model") return "sentencepiece";
  if (ext == ".json") return "bpe";
  throw input_error(path.string() +
                    ": not a tokenizer file (expected a SentencePiece .model or a tokenizer.json)");
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(TokenId id) {
  if (skip_special_ && tokenizer_->is_special(id)) return "";
  try {
    pending_ += tokenizer_->token_bytes(id);
  } catch (const Error&) {
    return "";  // an unknown id adds nothing, as decode() skips it
  }
  std::string out;
  const std::size_t used = tokenize::decode_utf8_replace(pending_, false, out);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  tokenize::decode_utf8_replace(pending_, true, out);
  pending_.clear();
  return out;
}

}  // namespace unibiomed
