#include "options.h"

namespace unibiomed::cli {

const std::vector<CommandRow>& command_table() {
  static const std::vector<CommandRow> kCommands = {
      {"info",
       "Read a scan or picture and print what was read: format, geometry, modality, "
       "intensities, DICOM series"},
  };
  return kCommands;
}

const std::vector<OptionRow>& option_table() {
  static const std::vector<OptionRow> kOptions = {
      {{"info"},
       "input",
       "Scan: NIfTI, NRRD, MetaImage, DICOM file or series folder, PNG, JPEG, "
       "TIFF, BMP",
       &Settings::input,
       true},
      {{"info"}, "--json", "Print JSON instead of text", &Settings::json},
      {{"info"},
       "--modality",
       "Modality when the file does not say (ct, mr, xray, us, pathology, "
       "fundus, endoscopy, dermoscopy, oct, pet, other)",
       &Settings::modality},
      {{"info"}, "--frame", "Frame of a 4-D input to use (default: the first)", &Settings::frame},
      {{"info"}, "-v,--verbose", "Log what is done to stderr", &Settings::verbose},
  };
  return kOptions;
}

}  // namespace unibiomed::cli
