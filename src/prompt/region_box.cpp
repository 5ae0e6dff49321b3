// The region prompt's box, drawn with OpenCV's rectangle as the release draws it with cv2.
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "prompt/request_prompt.h"

namespace unibiomed {

Image8 draw_region_box(const Image8& image, const PixelBox& box) {
  check_box(box, image.width, image.height);
  Image8 drawn = image;
  cv::Mat rgb(drawn.height, drawn.width, CV_8UC3, drawn.rgb.data());
  cv::rectangle(rgb, cv::Point(box.x0, box.y0), cv::Point(box.x1, box.y1), cv::Scalar(0, 255, 0),
                2);
  return drawn;
}

}  // namespace unibiomed
