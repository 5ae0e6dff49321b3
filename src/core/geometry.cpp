#include <cmath>
#include <string>

#include "unibiomed/volume.h"

namespace unibiomed {

std::array<double, 3> Geometry::index_to_point(const std::array<double, 3>& index) const {
  std::array<double, 3> point = origin;
  for (int row = 0; row < 3; ++row) {
    for (int axis = 0; axis < 3; ++axis) {
      point[row] += direction[row * 3 + axis] * spacing[axis] * index[axis];
    }
  }
  return point;
}

std::string Geometry::orientation_code() const {
  // LPS: +x is Left, +y is Posterior, +z is Superior.
  static const char kPositive[3] = {'L', 'P', 'S'};
  static const char kNegative[3] = {'R', 'A', 'I'};
  std::string code;
  for (int axis = 0; axis < 3; ++axis) {
    const auto d = axis_direction(axis);
    int best = 0;
    for (int row = 1; row < 3; ++row) {
      if (std::fabs(d[row]) > std::fabs(d[best])) best = row;
    }
    code += d[best] >= 0 ? kPositive[best] : kNegative[best];
  }
  return code;
}

bool Geometry::same_grid(const Geometry& other, double tolerance) const {
  if (size != other.size) return false;
  for (int i = 0; i < 3; ++i) {
    if (std::fabs(spacing[i] - other.spacing[i]) > tolerance) return false;
    if (std::fabs(origin[i] - other.origin[i]) > tolerance) return false;
  }
  for (int i = 0; i < 9; ++i) {
    if (std::fabs(direction[i] - other.direction[i]) > tolerance) return false;
  }
  return true;
}

}  // namespace unibiomed
