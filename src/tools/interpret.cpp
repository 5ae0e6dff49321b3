#include "unibiomed/interpret.h"

#include <chrono>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "prompt/request_prompt.h"
#include "results/results.h"
#include "tools/interpret_sequence.h"
#include "tools/prepared_input.h"
#include "unibiomed/error.h"
#include "unibiomed/preprocess.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

namespace fs = std::filesystem;

// Formats whose files carry no physical geometry: their masks are PNGs, their areas in pixels.
bool is_picture(const std::string& format) {
  return format == "PNG" || format == "JPEG" || format == "TIFF" || format == "BMP";
}

std::string input_name(const fs::path& input) {
  fs::path name = input.filename();
  if (name.empty()) name = input.parent_path().filename();  // "folder/"
  std::string text = name.string();
  for (const char* ext : {".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm", ".png", ".jpg",
                          ".jpeg", ".tif", ".tiff", ".bmp"}) {
    const std::string e = ext;
    if (text.size() > e.size() && text.compare(text.size() - e.size(), e.size(), e) == 0) {
      return text.substr(0, text.size() - e.size());
    }
  }
  return text.empty() ? "input" : text;
}

LabelMap finding_mask(const Finding& finding, const Geometry& geometry, std::uint8_t on) {
  LabelMap map;
  map.geometry = geometry;
  map.labels = finding.mask;
  if (on != 1) {
    for (auto& v : map.labels) v = v ? on : 0;
  }
  map.names = {"background", finding.phrase.empty() ? "finding" : finding.phrase};
  return map;
}

// The masks of a 2-D input on its grid (PNG for pictures, else NIfTI) and the overlay.
void write_image_outputs(const InputImage& image, const Volume& volume, bool picture,
                         const Interpretation& result, const fs::path& output_dir,
                         ResultContext& context) {
  LabelMap all;
  all.geometry = volume.geometry;
  all.labels.assign(volume.geometry.voxel_count(), 0);
  all.names = {"background"};
  for (std::size_t i = 0; i < result.findings.size(); ++i) {
    const Finding& finding = result.findings[i];
    const std::string name = mask_file_name(i + 1, finding.phrase, picture);
    if (picture) {
      write_label_png(finding_mask(finding, volume.geometry, 255), output_dir / name);
    } else {
      write_label_map(finding_mask(finding, volume.geometry, 1), output_dir / name);
    }
    context.mask_files.push_back(name);
    if (i + 1 < 256) {
      const auto label = static_cast<std::uint8_t>(i + 1);
      for (std::size_t p = 0; p < finding.mask.size(); ++p) {
        if (finding.mask[p]) all.labels[p] = label;
      }
      all.names.push_back(std::to_string(i + 1) + " " +
                          (finding.phrase.empty() ? "finding" : finding.phrase));
    }
  }
  write_png(render_overlay(image.rgb, all), output_dir / "overlay.png");
  context.overlay_file = "overlay.png";
}

}  // namespace

fs::path default_output_dir(const fs::path& input) {
  return fs::current_path() / (input_name(input) + ".unibiomed");
}

PreparedInput prepare_input(const InterpretCommand& command) {
  PreparedInput in;
  in.path = command.input;
  in.volume = read_image(command.input, command.read);
  in.sequence = !in.volume.is_2d();
  in.picture = is_picture(in.volume.source.format);
  if (in.sequence) {
    in.frames = make_frame_sequence(in.volume, command);
    if (command.request.box) {
      throw usage_error("--box: a region box is drawn on a 2-D image; " + command.input + " has " +
                        std::to_string(in.frames->frames.count) + " slices");
    }
  } else {
    DisplayOptions display_options;
    display_options.window = command.window;
    const DisplayVolume display = to_display(in.volume, display_options);
    in.image.rgb = frame_rgb8(display.volume, 0);
    if (!in.picture) {
      in.image.spacing_mm = {{in.volume.geometry.spacing[0], in.volume.geometry.spacing[1]}};
    }
    try {
      check_image_size(in.image.rgb.width, in.image.rgb.height);
    } catch (const Error& e) {
      throw input_error(command.input + ": " + e.what());
    }
    if (command.request.box) {
      check_box(*command.request.box, in.image.rgb.width, in.image.rgb.height);
    }
  }
  return in;
}

Interpretation interpret_prepared(Session& session, const PreparedInput& in,
                                  const InterpretRequest& request, const StageCallback& stage) {
  Interpretation result = in.sequence ? session.interpret_frames(in.frames->frames, request, stage)
                                      : session.interpret(in.image, request, stage);
  std::vector<std::string> warnings = in.volume.source.warnings;
  if (in.frames) {
    warnings.insert(warnings.end(), in.frames->warnings.begin(), in.frames->warnings.end());
  }
  result.warnings.insert(result.warnings.begin(), warnings.begin(), warnings.end());
  return result;
}

nlohmann::json write_outputs(const PreparedInput& in, const Interpretation& result,
                             const Model& model, const fs::path& model_dir,
                             const fs::path& output_dir) {
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec || !fs::is_directory(output_dir)) {
    throw output_error(output_dir.string() + ": cannot create the output folder (" + ec.message() +
                       ")");
  }
  ResultContext context;
  context.input_path = in.path;
  context.input_format = in.volume.source.format;
  context.input_geometry = in.volume.geometry;
  context.model_name = model.manifest().name;
  context.model_dir = model_dir.string();
  context.demo = model.manifest().demo;
  context.device = model.device_name();
  context.dtype = model.dtype_name();
  if (in.sequence) {
    write_sequence_outputs(*in.frames, in.volume, result, output_dir, context);
  } else {
    write_image_outputs(in.image, in.volume, in.picture, result, output_dir, context);
  }
  nlohmann::json document = interpretation_to_json(result, context);
  write_text_atomically(output_dir / "result.json", document.dump(2) + "\n");
  return document;
}

void run_interpret(const InterpretCommand& command, std::ostream& out, std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  const auto stage = [&](const std::string& name) {
    if (!command.progress) return;
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log << "unibiomed: " << std::fixed << std::setprecision(1) << std::setw(6) << t << " s  "
        << name << std::endl;
  };

  stage("read " + command.input);
  const PreparedInput in = prepare_input(command);

  const fs::path output_dir =
      command.output_dir.empty() ? default_output_dir(command.input) : fs::path(command.output_dir);
  if (fs::exists(output_dir) && !fs::is_directory(output_dir)) {
    throw output_error(output_dir.string() + ": exists and is not a folder");
  }

  const fs::path model_dir =
      command.model_dir.empty() ? default_model_dir() : fs::path(command.model_dir);
  // The request is checked against the model's prompts before the weights load.
  request_prompts(read_manifest(model_dir).chat, command.request);

  stage("load model");
  const auto model = Model::load(model_dir, command.model);
  Session session(model);
  const Interpretation result = interpret_prepared(session, in, command.request, stage);

  stage("write " + output_dir.string());
  const nlohmann::json document = write_outputs(in, result, *model, model_dir, output_dir);
  stage("done");

  if (command.json) {
    out << document.dump(2) << "\n";
  } else {
    out << interpretation_text(result);
  }
  out.flush();
  if (model->manifest().demo && command.progress) {
    log << "unibiomed: note: " << model->manifest().name << " is a demonstration model, not for "
        << "clinical use (" << (model_dir / "MODEL_CARD.md").string() << ")" << std::endl;
  }
}

}  // namespace unibiomed
