// The command line: one declarative table of options, shared by every subcommand.
#pragma once

#include <string>
#include <variant>
#include <vector>

namespace unibiomed::cli {

// Every value any subcommand accepts. A subcommand reads only the fields its options fill.
struct Settings {
  std::string command;
  std::string input;
  bool json = false;
  std::string modality;
  int frame = -1;
  bool verbose = false;
  std::string model_dir;
  std::string tokenizer;
  bool decode = false;
  bool apply_template = false;
  bool jsonl = false;
  int image_tiles = 1;
  // interpret
  std::string output_dir;
  std::string task = "segment";
  std::vector<std::string> targets;
  std::string question;
  std::string box;
  std::string prompt;
  std::string device = "auto";
  std::string dtype;
  std::string window;
  std::string axis;
  std::string llm_frames;
  std::string prompt_frames;
  int max_new_tokens = 0;
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  int seed = 0;
  bool quiet = false;
  bool no_warmup = false;
  // batch
  int jobs = 1;
  bool resume = false;
  std::string shard;
  bool merge = false;
  // eval
  std::string registry;
  std::vector<std::string> only;
  std::string data_root;
  std::string baseline;
  std::string junit;
  bool keep_predictions = false;
};

struct OptionRow {
  std::vector<std::string> commands;  // subcommands that take it
  std::string flags;  // CLI11 flag spec, e.g. "-o,--output", or "input" (positional)
  std::string help;
  std::variant<std::string Settings::*, bool Settings::*, int Settings::*, double Settings::*,
               std::vector<std::string> Settings::*>
      field;
  bool required = false;
};

struct CommandRow {
  std::string name;
  std::string help;
};

const std::vector<CommandRow>& command_table();
const std::vector<OptionRow>& option_table();

}  // namespace unibiomed::cli
