// Encodes text with the C++ tokenizers for tools/tokenizer_oracle/compare_cpp.py: reads one JSON
// string per line on stdin (blank lines skipped) and writes one JSON line per input,
//   {"ids": [...], "decoded": "...", "streamed": "..."}
// (`streamed`: the text a StreamDecoder gives for the ids, then flushed).
//
//   unibiomed_tokenizer_dump TOKENIZER_FILE [--add-tokens JSON_ARRAY] < in.jsonl > out.jsonl
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unibiomed/error.h"
#include "unibiomed/tokenizer.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::string path;
  std::vector<std::string> added;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--add-tokens" && i + 1 < args.size()) {
      added = nlohmann::json::parse(args[++i]).get<std::vector<std::string>>();
    } else if (path.empty() && args[i].rfind("--", 0) != 0) {
      path = args[i];
    } else {
      std::cerr << "usage: unibiomed_tokenizer_dump TOKENIZER_FILE [--add-tokens JSON_ARRAY]\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "usage: unibiomed_tokenizer_dump TOKENIZER_FILE [--add-tokens JSON_ARRAY]\n";
    return 2;
  }
  try {
    const auto tokenizer =
        unibiomed::load_tokenizer(unibiomed::tokenizer_kind_for(path), path, added);
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string text = nlohmann::json::parse(line).get<std::string>();
      const auto ids = tokenizer->encode(text);
      unibiomed::StreamDecoder stream(*tokenizer);
      std::string streamed;
      for (const auto id : ids) streamed += stream.push(id);
      streamed += stream.flush();
      const nlohmann::json out = {
          {"ids", ids}, {"decoded", tokenizer->decode(ids)}, {"streamed", streamed}};
      std::cout << out.dump() << '\n';
    }
  } catch (const std::exception& e) {
    std::cerr << "unibiomed_tokenizer_dump: error: " << e.what() << '\n';
    return 3;
  }
  return 0;
}
