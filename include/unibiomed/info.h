// `unibiomed info`: what was read from a scan, as text or JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "unibiomed/read.h"
#include "unibiomed/volume.h"

namespace unibiomed {

// Everything `info` reports about a volume, as JSON (the text form prints the same fields).
nlohmann::json describe_volume(const Volume& volume);
std::string format_description(const nlohmann::json& description);

struct InfoRequest {
  std::string input;
  ReadOptions read;
  bool json = false;
};

// Reads request.input and prints its description to out. Throws Error on bad input.
void run_info(const InfoRequest& request, std::ostream& out);

}  // namespace unibiomed
