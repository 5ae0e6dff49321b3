// The `unibiomed` executable: parses the command line from the option table, calls the
// library function of the subcommand, and turns errors into one line and an exit code.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>

#include "options.h"
#include "unibiomed/batch.h"
#include "unibiomed/error.h"
#include "unibiomed/eval.h"
#include "unibiomed/info.h"
#include "unibiomed/interpret.h"
#include "unibiomed/tokenize.h"

namespace {

using unibiomed::cli::Settings;

void add_options(CLI::App& app, const std::string& command, Settings& settings) {
  for (const auto& row : unibiomed::cli::option_table()) {
    bool applies = false;
    for (const auto& name : row.commands) applies = applies || name == command;
    if (!applies) continue;
    std::visit(
        [&](auto member) {
          using Field = std::remove_reference_t<decltype(settings.*member)>;
          CLI::Option* option = nullptr;
          if constexpr (std::is_same_v<Field, bool>) {
            option = app.add_flag(row.flags, settings.*member, row.help);
          } else if constexpr (std::is_same_v<Field, std::vector<std::string>>) {
            // One value per occurrence, so that a positional after it is not taken.
            option = app.add_option(row.flags, settings.*member, row.help)
                         ->expected(1)
                         ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
          } else {
            option = app.add_option(row.flags, settings.*member, row.help);
          }
          if (row.required) option->required();
        },
        row.field);
  }
}

unibiomed::ReadOptions read_options(const Settings& settings) {
  unibiomed::ReadOptions options;
  if (!settings.modality.empty()) options.modality = unibiomed::parse_modality(settings.modality);
  if (settings.frame >= 0) options.frame = static_cast<std::size_t>(settings.frame);
  return options;
}

// "x0,y0,x1,y1" as four integers.
unibiomed::PixelBox parse_box(const std::string& text) {
  std::array<long, 4> v{};
  std::size_t at = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const std::size_t end = i < 3 ? text.find(',', at) : text.size();
    const std::string field = end == std::string::npos ? "" : text.substr(at, end - at);
    char* stop = nullptr;
    v[i] = field.empty() ? 0 : std::strtol(field.c_str(), &stop, 10);
    if (field.empty() || *stop != '\0' || v[i] < -1000000 || v[i] > 1000000) {
      throw unibiomed::usage_error("--box " + text + ": expected x0,y0,x1,y1 (four integers)");
    }
    at = end + 1;
  }
  return {static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]),
          static_cast<int>(v[3])};
}

// Errors are printed on one line: library messages (ITK's among them) may hold newlines.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

// How the model is loaded (interpret, batch, eval).
unibiomed::ModelOptions model_options(const Settings& settings) {
  unibiomed::ModelOptions options;
  options.device = settings.device;
  options.dtype = settings.dtype;
  options.warmup = !settings.no_warmup;
  return options;
}

// The interpret options of the table as a command (batch takes them as its defaults).
unibiomed::InterpretCommand interpret_command(const Settings& settings) {
  unibiomed::InterpretCommand command;
  command.input = settings.input;
  command.output_dir = settings.output_dir;
  command.model_dir = settings.model_dir;
  command.model = model_options(settings);
  command.read = read_options(settings);
  command.window = settings.window;
  command.axis = settings.axis;
  command.llm_frames = settings.llm_frames;
  command.prompt_frames = settings.prompt_frames;
  command.json = settings.json;
  auto& request = command.request;
  request.task = settings.task;
  request.targets = settings.targets;
  request.question = settings.question;
  request.raw_prompt = settings.prompt;
  if (!settings.box.empty()) request.box = parse_box(settings.box);
  if (request.box && request.task != "region" && request.raw_prompt.empty()) {
    throw unibiomed::usage_error("--box is for --task region");
  }
  if (settings.seed < 0) throw unibiomed::usage_error("--seed must be >= 0");
  request.generation.max_new_tokens = settings.max_new_tokens;
  if (settings.max_new_tokens < 0)
    throw unibiomed::usage_error("--max-new-tokens must be >= 0 (0: the model's limit)");
  request.generation.temperature = settings.temperature;
  request.generation.top_p = settings.top_p;
  request.generation.top_k = settings.top_k;
  request.generation.seed = static_cast<std::uint64_t>(settings.seed);
  return command;
}

int run(const Settings& settings) {
  spdlog::set_level(settings.verbose ? spdlog::level::debug : spdlog::level::warn);
  if (settings.command == "info") {
    unibiomed::InfoRequest request;
    request.input = settings.input;
    request.read = read_options(settings);
    request.json = settings.json;
    unibiomed::run_info(request, std::cout);
    return unibiomed::kExitOk;
  }
  if (settings.command == "interpret") {
    unibiomed::InterpretCommand command = interpret_command(settings);
    command.progress = !settings.quiet && isatty(STDERR_FILENO);
    unibiomed::run_interpret(command, std::cout, std::cerr);
    return unibiomed::kExitOk;
  }
  if (settings.command == "batch") {
    unibiomed::BatchCommand command;
    command.input = settings.input;
    command.output_dir = settings.output_dir;
    command.merge = settings.merge;
    if (command.merge != command.input.empty()) {
      throw unibiomed::usage_error(command.merge ? "--merge takes no input, only -o OUTDIR"
                                                 : "batch needs an input (folder, list or table)");
    }
    command.interpret = interpret_command(settings);
    command.jobs = settings.jobs;
    command.resume = settings.resume;
    if (!settings.shard.empty()) {
      std::tie(command.shard_index, command.shard_count) = unibiomed::parse_shard(settings.shard);
    }
    command.progress = !settings.quiet;
    command.terminal = isatty(STDERR_FILENO);
    const auto summary = unibiomed::run_batch(command, std::cerr);
    if (!command.merge) {
      std::cerr << "batch: " << summary.ok << " ok, " << summary.failed << " failed, "
                << summary.skipped << " skipped of " << summary.total << " in " << std::fixed
                << std::setprecision(1) << summary.seconds << " s\n";
    }
    return summary.failed ? unibiomed::kExitStudiesFailed : unibiomed::kExitOk;
  }
  if (settings.command == "eval") {
    unibiomed::EvalCommand command;
    command.dataset = settings.input;
    command.registry = settings.registry;
    command.only = settings.only;
    command.data_root = settings.data_root;
    command.model_dir = settings.model_dir;
    command.model = model_options(settings);
    command.baseline = settings.baseline;
    command.junit = settings.junit;
    command.output_dir = settings.output_dir;
    command.keep_predictions = settings.keep_predictions;
    command.progress = !settings.quiet && isatty(STDERR_FILENO);
    const auto outcome = unibiomed::run_eval(command, std::cout, std::cerr);
    if (!outcome.regressions.empty() || outcome.failed_datasets) {
      std::cerr << "eval: " << outcome.regressions.size() << " metrics below the baseline, "
                << outcome.failed_datasets << " datasets failed\n";
      return unibiomed::kExitRegression;
    }
    return unibiomed::kExitOk;
  }
  if (settings.command == "tokenize") {
    unibiomed::TokenizeRequest request;
    request.model_dir = settings.model_dir;
    request.tokenizer_file = settings.tokenizer;
    request.decode = settings.decode;
    request.apply_template = settings.apply_template;
    request.image_tiles = settings.image_tiles;
    request.jsonl = settings.jsonl;
    if (request.apply_template && request.model_dir.empty()) {
      throw unibiomed::usage_error("--template needs -m MODEL_DIR (the template is the model's)");
    }
    std::ios::sync_with_stdio(false);
    unibiomed::run_tokenize(request, std::cin, std::cout);
    return unibiomed::kExitOk;
  }
  throw unibiomed::usage_error("no command given (see --help)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"unibiomed: grounded biomedical image interpretation"};
  app.require_subcommand(1);
  Settings settings;
  for (const auto& command : unibiomed::cli::command_table()) {
    CLI::App* sub = app.add_subcommand(command.name, command.help);
    add_options(*sub, command.name, settings);
    sub->callback([&settings, name = command.name] { settings.command = name; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "unibiomed: usage error: " << e.what() << " (see unibiomed --help)\n";
    return unibiomed::kExitUsage;
  }
  try {
    return run(settings);
  } catch (const unibiomed::Error& e) {
    std::cerr << "unibiomed: error: " << one_line(e.what()) << "\n";
    return unibiomed::exit_code_for(e.kind());
  } catch (const std::bad_alloc&) {
    std::cerr << "unibiomed: error: out of memory\n";
    return unibiomed::kExitInternal;
  } catch (const std::exception& e) {
    std::cerr << "unibiomed: internal error: " << one_line(e.what()) << "\n";
    return unibiomed::kExitInternal;
  }
}
