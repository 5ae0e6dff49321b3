#include "unibiomed/info.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "unibiomed/preprocess.h"

namespace unibiomed {
namespace {

std::string join(const nlohmann::json& values, const std::string& separator) {
  std::ostringstream out;
  out << std::setprecision(6);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) out << separator;
    if (values[i].is_number_float()) {
      out << values[i].get<double>();
    } else {
      out << values[i].dump();
    }
  }
  return out.str();
}

}  // namespace

nlohmann::json describe_volume(const Volume& volume) {
  const Geometry& g = volume.geometry;
  const SourceInfo& s = volume.source;
  nlohmann::json d;
  d["file"] = s.path;
  d["format"] = s.format;
  d["pixel_type"] = s.pixel_type;
  d["channels"] = volume.channels;
  d["photometric"] = s.photometric;
  d["dimensions"] = volume.is_2d() ? 2 : 3;
  d["size"] = g.size;
  d["spacing_mm"] = g.spacing;
  std::array<double, 3> origin = g.origin;
  for (double& v : origin) v += 0.0;
  d["origin_mm"] = origin;
  std::array<double, 9> direction = g.direction;
  for (double& v : direction) v += 0.0;  // print -0 as 0
  d["direction"] = direction;
  d["orientation"] = g.orientation_code();
  d["modality"] = to_string(volume.modality);
  d["modality_source"] =
      s.modality_source.empty() ? "not in the file; use --modality" : s.modality_source;
  if (s.multiframe || s.frames_total > 1) d["frames"] = s.frames_total;
  if (s.multiframe) d["multiframe"] = true;
  if (s.frame_used) d["frame_used"] = *s.frame_used;

  if (!s.transfer_syntax.empty() || !s.series_uid.empty()) {
    nlohmann::json dicom;
    dicom["transfer_syntax"] = s.transfer_syntax;
    dicom["rescale_slope"] = s.rescale_slope;
    dicom["rescale_intercept"] = s.rescale_intercept;
    if (!s.series_uid.empty()) dicom["series_uid"] = s.series_uid;
    if (!s.series_description.empty()) dicom["series_description"] = s.series_description;
    if (s.series_found) {
      dicom["series_in_folder"] = s.series_found;
      dicom["files_in_series"] = s.files_in_series;
    }
    d["dicom"] = dicom;
  }

  nlohmann::json intensity;
  if (!volume.voxels.empty()) {
    const auto [lo, hi] = std::minmax_element(volume.voxels.begin(), volume.voxels.end());
    const double sum = std::accumulate(volume.voxels.begin(), volume.voxels.end(), 0.0);
    intensity["min"] = *lo;
    intensity["max"] = *hi;
    intensity["mean"] = sum / static_cast<double>(volume.voxels.size());
    std::vector<float> scratch = volume.voxels;
    nlohmann::json percentiles;
    for (const double q : {0.5, 1.0, 50.0, 99.0, 99.5}) {
      std::ostringstream key;
      key << "p" << q;
      percentiles[key.str()] = percentile(scratch, q);
    }
    intensity["percentiles"] = percentiles;
  }
  intensity["nonfinite_replaced"] = s.nonfinite_replaced;
  d["intensity"] = intensity;
  d["warnings"] = s.warnings;
  return d;
}

std::string format_description(const nlohmann::json& d) {
  std::ostringstream out;
  out << std::setprecision(6);
  const auto row = [&](const std::string& key, const std::string& value) {
    out << std::left << std::setw(12) << key << value << "\n";
  };
  row("file", d["file"].get<std::string>());
  row("format", d["format"].get<std::string>() + " (" + d["pixel_type"].get<std::string>() + ", " +
                    d["photometric"].get<std::string>() + ")");
  std::string size = join(d["size"], " x ");
  size += "  (" + std::to_string(d["dimensions"].get<int>()) + "-D, " +
          std::to_string(d["channels"].get<int>()) +
          (d["channels"] == 1 ? " channel)" : " channels)");
  row("size", size);
  row("spacing", join(d["spacing_mm"], " x ") + " mm");
  row("origin", join(d["origin_mm"], ", ") + " mm");
  std::ostringstream direction;
  direction << d["orientation"].get<std::string>() << "  [" << join(d["direction"], " ") << "]";
  row("orientation", direction.str());
  row("modality",
      d["modality"].get<std::string>() + "  (" + d["modality_source"].get<std::string>() + ")");
  if (d.contains("frames")) {
    std::string frames = std::to_string(d["frames"].get<std::size_t>());
    if (d.contains("multiframe")) frames += " (multi-frame: time, not space)";
    if (d.contains("frame_used"))
      frames += ", frame " + std::to_string(d["frame_used"].get<std::size_t>()) + " used";
    row("frames", frames);
  }
  if (d.contains("dicom")) {
    const auto& dicom = d["dicom"];
    row("transfer", dicom["transfer_syntax"].get<std::string>());
    std::ostringstream rescale;
    rescale << "slope " << dicom["rescale_slope"].get<double>() << ", intercept "
            << dicom["rescale_intercept"].get<double>() << " (applied)";
    row("rescale", rescale.str());
    if (dicom.contains("series_uid")) {
      std::string series = dicom["series_uid"].get<std::string>();
      if (dicom.contains("series_in_folder")) {
        series += "  (" + std::to_string(dicom["files_in_series"].get<std::size_t>()) + " files; " +
                  std::to_string(dicom["series_in_folder"].get<std::size_t>()) +
                  " series in folder, the largest chosen)";
      }
      row("series", series);
    }
  }
  const auto& intensity = d["intensity"];
  if (intensity.contains("min")) {
    std::ostringstream range;
    range << intensity["min"].get<double>() << " .. " << intensity["max"].get<double>() << ", mean "
          << intensity["mean"].get<double>();
    row("intensity", range.str());
    std::ostringstream pct;
    bool first = true;
    for (const auto& [key, value] : intensity["percentiles"].items()) {
      pct << (first ? "" : "  ") << key << " " << value.get<double>();
      first = false;
    }
    row("percentiles", pct.str());
  }
  if (intensity["nonfinite_replaced"].get<std::size_t>() > 0) {
    row("non-finite",
        std::to_string(intensity["nonfinite_replaced"].get<std::size_t>()) + " voxels replaced");
  }
  for (const auto& warning : d["warnings"]) row("warning", warning.get<std::string>());
  return out.str();
}

void run_info(const InfoRequest& request, std::ostream& out) {
  const Volume volume = read_image(request.input, request.read);
  const auto description = describe_volume(volume);
  if (request.json) {
    out << description.dump(2) << "\n";
  } else {
    out << format_description(description);
  }
}

}  // namespace unibiomed
