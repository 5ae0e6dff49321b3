// Tokenizer throughput: prints encode and decode speed in MB/s for a tokenizer file on a large
// text, and the time of one 100 kB line without spaces (the case a quadratic BPE fails on).
//
//   unibiomed_bench_tokenizer TOKENIZER_FILE [TEXT_FILE] [--mb N]
//
// TEXT_FILE defaults to tools/tokenizer_oracle/corpus.txt (JSON strings, one per line); the
// text is repeated up to N MB (default 8). A benchmark that prints figures, not a test.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "unibiomed/chat.h"
#include "unibiomed/error.h"
#include "unibiomed/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw unibiomed::input_error(path + ": cannot open");
  std::vector<std::string> lines;
  std::string line;
  const bool json_lines = path.size() > 4 && path.substr(path.size() - 4) == ".txt" &&
                          path.find("corpus") != std::string::npos;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    lines.push_back(json_lines ? nlohmann::json::parse(line).get<std::string>() : line);
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: unibiomed_bench_tokenizer TOKENIZER_FILE [TEXT_FILE] [--mb N]\n";
    return 2;
  }
  try {
    std::string text_file =
        std::string(UNIBIOMED_SOURCE_DIR) + "/tools/tokenizer_oracle/corpus.txt";
    double megabytes = 8.0;
    for (int i = 2; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--mb" && i + 1 < argc) {
        megabytes = std::stod(argv[++i]);
      } else {
        text_file = arg;
      }
    }
    const std::string path = argv[1];
    auto start = Clock::now();
    const auto tokenizer = unibiomed::load_tokenizer(unibiomed::tokenizer_kind_for(path), path,
                                                     unibiomed::added_tokens());
    const double load_s = seconds_since(start);
    const auto lines = read_lines(text_file);
    // Lines in a shuffled order, repeated up to the size asked for.
    std::vector<std::string> texts;
    std::size_t bytes = 0;
    std::mt19937 rng(1);
    while (bytes < static_cast<std::size_t>(megabytes * 1e6)) {
      std::vector<std::string> round = lines;
      std::shuffle(round.begin(), round.end(), rng);
      for (auto& t : round) {
        bytes += t.size();
        texts.push_back(std::move(t));
      }
    }
    start = Clock::now();
    std::size_t tokens = 0;
    std::vector<std::vector<unibiomed::TokenId>> encoded;
    encoded.reserve(texts.size());
    for (const auto& t : texts) {
      encoded.push_back(tokenizer->encode(t));
      tokens += encoded.back().size();
    }
    const double encode_s = seconds_since(start);
    start = Clock::now();
    std::size_t decoded_bytes = 0;
    for (const auto& ids : encoded) decoded_bytes += tokenizer->decode(ids).size();
    const double decode_s = seconds_since(start);
    const std::string no_spaces(100000, 'a');
    std::string mixed;
    for (int i = 0; mixed.size() < 100000; ++i) mixed += static_cast<char>('a' + (i * 7) % 26);
    start = Clock::now();
    const auto long_ids = tokenizer->encode(mixed);
    const double long_s = seconds_since(start);
    start = Clock::now();
    const auto same_ids = tokenizer->encode(no_spaces);
    const double same_s = seconds_since(start);
    std::cout << std::fixed << std::setprecision(2) << "tokenizer " << tokenizer->kind() << " ("
              << path << "), vocabulary " << tokenizer->vocab_size() << ", loaded in " << load_s
              << " s\n"
              << "encode: " << bytes / 1e6 << " MB, " << texts.size() << " texts, " << tokens
              << " tokens in " << encode_s << " s = " << bytes / 1e6 / encode_s << " MB/s, "
              << tokens / encode_s / 1e6 << " M tokens/s\n"
              << "decode: " << decoded_bytes / 1e6 / decode_s << " MB/s\n"
              << "one 100 kB line without spaces (letters cycling): " << long_ids.size()
              << " tokens in " << std::setprecision(3) << long_s << " s\n"
              << "one 100 kB line of 'a': " << same_ids.size() << " tokens in " << same_s << " s\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "unibiomed_bench_tokenizer: " << e.what() << "\n";
    return 1;
  }
}
