#include "unibiomed/interpret.h"

#include <chrono>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "prompt/request_prompt.h"
#include "results/results.h"
#include "tools/interpret_sequence.h"
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

void write_text_atomically(const fs::path& path, const std::string& text) {
  write_atomically(path, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw output_error("could not write the file");
  });
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
  const Volume volume = read_image(command.input, command.read);
  const bool sequence = !volume.is_2d();
  const bool picture = is_picture(volume.source.format);

  // The input as the engine takes it: one image, or a sequence of frames.
  InputImage image;
  std::optional<FrameSequence> frames;
  if (sequence) {
    frames = make_frame_sequence(volume, command);
    if (command.request.box) {
      throw usage_error("--box: a region box is drawn on a 2-D image; " + command.input + " has " +
                        std::to_string(frames->frames.count) + " slices");
    }
  } else {
    DisplayOptions display_options;
    display_options.window = command.window;
    const DisplayVolume display = to_display(volume, display_options);
    image.rgb = frame_rgb8(display.volume, 0);
    if (!picture) image.spacing_mm = {{volume.geometry.spacing[0], volume.geometry.spacing[1]}};
    try {
      check_image_size(image.rgb.width, image.rgb.height);
    } catch (const Error& e) {
      throw input_error(command.input + ": " + e.what());
    }
  }

  const fs::path output_dir =
      command.output_dir.empty() ? default_output_dir(command.input) : fs::path(command.output_dir);
  if (fs::exists(output_dir) && !fs::is_directory(output_dir)) {
    throw output_error(output_dir.string() + ": exists and is not a folder");
  }

  const fs::path model_dir =
      command.model_dir.empty() ? default_model_dir() : fs::path(command.model_dir);
  // The request is checked against the model's prompts and the image before the weights load.
  request_prompts(read_manifest(model_dir).chat, command.request);
  if (command.request.box) check_box(*command.request.box, image.rgb.width, image.rgb.height);

  stage("load model");
  const auto model = Model::load(model_dir, command.model);
  Session session(model);
  Interpretation result = sequence
                              ? session.interpret_frames(frames->frames, command.request, stage)
                              : session.interpret(image, command.request, stage);
  std::vector<std::string> warnings = volume.source.warnings;
  if (frames) warnings.insert(warnings.end(), frames->warnings.begin(), frames->warnings.end());
  result.warnings.insert(result.warnings.begin(), warnings.begin(), warnings.end());

  stage("write " + output_dir.string());
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec || !fs::is_directory(output_dir)) {
    throw output_error(output_dir.string() + ": cannot create the output folder (" + ec.message() +
                       ")");
  }
  ResultContext context;
  context.input_path = command.input;
  context.input_format = volume.source.format;
  context.input_geometry = volume.geometry;
  context.model_name = model->manifest().name;
  context.model_dir = model_dir.string();
  context.demo = model->manifest().demo;
  context.device = model->device_name();
  context.dtype = model->dtype_name();
  if (sequence) {
    write_sequence_outputs(*frames, volume, result, output_dir, context);
  } else {
    write_image_outputs(image, volume, picture, result, output_dir, context);
  }
  const nlohmann::json document = interpretation_to_json(result, context);
  write_text_atomically(output_dir / "result.json", document.dump(2) + "\n");
  stage("done");

  if (command.json) {
    out << document.dump(2) << "\n";
  } else {
    out << interpretation_text(result);
  }
  out.flush();
  if (context.demo && command.progress) {
    log << "unibiomed: note: " << context.model_name << " is a demonstration model, not for "
        << "clinical use (" << (model_dir / "MODEL_CARD.md").string() << ")" << std::endl;
  }
}

}  // namespace unibiomed
