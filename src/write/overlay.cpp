// Overlay pictures: masks filled semi-transparently in their own colours, outlined, named in a
// legend; for volumes, a montage of the slices that hold them.
#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "unibiomed/error.h"
#include "unibiomed/write.h"

namespace unibiomed {
namespace {

constexpr double kFillOpacity = 0.4;

cv::Mat to_bgr(const Image8& image) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<std::uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

Image8 from_bgr(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  Image8 out{rgb.cols, rgb.rows, {}};
  out.rgb.assign(rgb.data, rgb.data + rgb.total() * 3);
  return out;
}

cv::Scalar bgr_colour(std::size_t label) {
  const auto c = label_colour(label);
  return cv::Scalar(c[2], c[1], c[0]);
}

// Fills and outlines every label of one 2-D slice (labels given as a CV_8U matrix).
void draw_labels(cv::Mat& bgr, const cv::Mat& slice_labels, std::size_t label_count) {
  const int thickness = std::max(1, std::min(bgr.cols, bgr.rows) / 256);
  for (std::size_t v = 1; v < label_count; ++v) {
    cv::Mat mask = slice_labels == static_cast<int>(v);
    if (cv::countNonZero(mask) == 0) continue;
    cv::Mat fill(bgr.size(), bgr.type(), bgr_colour(v));
    cv::Mat blended;
    cv::addWeighted(bgr, 1.0 - kFillOpacity, fill, kFillOpacity, 0.0, blended);
    blended.copyTo(bgr, mask);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(mask, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    cv::drawContours(bgr, contours, -1, bgr_colour(v), thickness, cv::LINE_8);
  }
}

void draw_legend(cv::Mat& bgr, const std::vector<std::string>& names,
                 const std::vector<bool>& present) {
  const double scale = std::clamp(bgr.cols / 700.0, 0.4, 1.2);
  const int line = static_cast<int>(22 * scale) + 4;
  int y = 6;
  for (std::size_t v = 1; v < names.size(); ++v) {
    if (!present[v]) continue;
    const std::string text = names[v].empty() ? "label " + std::to_string(v) : names[v];
    int baseline = 0;
    const auto size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale * 0.6, 1, &baseline);
    const cv::Rect box(4, y, size.width + line + 8, line);
    cv::Mat roi = bgr(box & cv::Rect(0, 0, bgr.cols, bgr.rows));
    roi *= 0.3;  // darken behind the text
    cv::rectangle(bgr, cv::Rect(8, y + 4, line - 8, line - 8), bgr_colour(v), cv::FILLED);
    cv::putText(bgr, text, cv::Point(8 + line, y + line - 7), cv::FONT_HERSHEY_SIMPLEX, scale * 0.6,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    y += line + 2;
  }
}

}  // namespace

std::array<std::uint8_t, 3> label_colour(std::size_t label) {
  static const std::array<std::array<std::uint8_t, 3>, 10> kPalette = {{
      {230, 25, 75},
      {60, 180, 75},
      {255, 225, 25},
      {0, 130, 200},
      {245, 130, 48},
      {145, 30, 180},
      {70, 240, 240},
      {240, 50, 230},
      {210, 245, 60},
      {250, 190, 212},
  }};
  return kPalette[(label == 0 ? 0 : label - 1) % kPalette.size()];
}

Image8 render_overlay(const Image8& picture, const LabelMap& labels) {
  const auto& size = labels.geometry.size;
  if (size[2] != 1 || static_cast<int>(size[0]) != picture.width ||
      static_cast<int>(size[1]) != picture.height) {
    throw internal_error("overlay: the label map is not 2-D of the picture's size");
  }
  cv::Mat bgr = to_bgr(picture);
  const cv::Mat slice(picture.height, picture.width, CV_8UC1,
                      const_cast<std::uint8_t*>(labels.labels.data()));
  std::vector<bool> present(std::max<std::size_t>(labels.names.size(), 1), false);
  for (const auto v : labels.labels) {
    if (v < present.size()) present[v] = true;
  }
  draw_labels(bgr, slice, labels.names.size());
  draw_legend(bgr, labels.names, present);
  return from_bgr(bgr);
}

Image8 render_montage(const Volume& display, const LabelMap& labels, int max_slices) {
  const auto& size = labels.geometry.size;
  if (size != display.geometry.size)
    throw internal_error("montage: label map and volume differ in size");
  const std::size_t plane = size[0] * size[1];
  std::vector<std::size_t> occupied;
  std::vector<bool> present(std::max<std::size_t>(labels.names.size(), 1), false);
  for (std::size_t z = 0; z < size[2]; ++z) {
    bool any = false;
    for (std::size_t p = 0; p < plane; ++p) {
      const auto v = labels.labels[z * plane + p];
      if (v != 0) {
        any = true;
        if (v < present.size()) present[v] = true;
      }
    }
    if (any) occupied.push_back(z);
  }
  if (occupied.empty()) occupied.push_back(size[2] / 2);  // nothing found: show the middle
  std::vector<std::size_t> chosen;
  const std::size_t count =
      std::min<std::size_t>(occupied.size(), static_cast<std::size_t>(max_slices));
  for (std::size_t i = 0; i < count; ++i) {
    chosen.push_back(
        occupied[count == 1 ? occupied.size() / 2 : i * (occupied.size() - 1) / (count - 1)]);
  }
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(chosen.size()))));
  const int rows = static_cast<int>((chosen.size() + static_cast<std::size_t>(cols) - 1) /
                                    static_cast<std::size_t>(cols));
  const int w = static_cast<int>(size[0]);
  const int h = static_cast<int>(size[1]);
  cv::Mat montage(rows * h, cols * w, CV_8UC3, cv::Scalar(0, 0, 0));
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const std::size_t z = chosen[i];
    cv::Mat tile = to_bgr(frame_rgb8(display, z));
    const cv::Mat slice(h, w, CV_8UC1, const_cast<std::uint8_t*>(labels.labels.data() + z * plane));
    draw_labels(tile, slice, labels.names.size());
    cv::putText(tile, "slice " + std::to_string(z), cv::Point(4, h - 6), cv::FONT_HERSHEY_SIMPLEX,
                std::clamp(w / 500.0, 0.3, 1.0), cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    const int c = static_cast<int>(i) % cols;
    const int r = static_cast<int>(i) / cols;
    tile.copyTo(montage(cv::Rect(c * w, r * h, w, h)));
  }
  draw_legend(montage, labels.names, present);
  return from_bgr(montage);
}

}  // namespace unibiomed
