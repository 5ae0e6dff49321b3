// The `unibiomed` executable: parses the command line from the option table, calls the
// library function of the subcommand, and turns errors into one line and an exit code.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <string>
#include <type_traits>

#include "options.h"
#include "unibiomed/error.h"
#include "unibiomed/info.h"
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

// Errors are printed on one line: library messages (ITK's among them) may hold newlines.
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
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
