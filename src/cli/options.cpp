#include "options.h"

namespace unibiomed::cli {

const std::vector<CommandRow>& command_table() {
  static const std::vector<CommandRow> kCommands = {
      {"info",
       "Read a scan or picture and print what was read: format, geometry, modality, "
       "intensities, DICOM series"},
      {"tokenize",
       "Turn lines of text on stdin into token ids (or ids into text) with a model's tokenizer"},
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
      {{"info", "tokenize"}, "-v,--verbose", "Log what is done to stderr", &Settings::verbose},
      {{"tokenize"},
       "-m,--model",
       "Model bundle folder (its tokenizer and chat template)",
       &Settings::model_dir},
      {{"tokenize"},
       "--tokenizer",
       "Tokenizer file instead of a bundle: .model or tokenizer.json",
       &Settings::tokenizer},
      {{"tokenize"},
       "--decode",
       "Read lines of space-separated ids and print their text",
       &Settings::decode},
      {{"tokenize"},
       "--template",
       "Encode each line as the full chat prompt (needs -m)",
       &Settings::apply_template},
      {{"tokenize"},
       "--image-tiles",
       "Tiles an <image> in a --template line stands for (1)",
       &Settings::image_tiles},
      {{"tokenize"},
       "--jsonl",
       "Text lines in and out are JSON strings (text may hold newlines)",
       &Settings::jsonl},
  };
  return kOptions;
}

}  // namespace unibiomed::cli
