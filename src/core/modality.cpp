#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "text.h"
#include "unibiomed/error.h"
#include "unibiomed/volume.h"

namespace unibiomed {
namespace {

// Names accepted by --modality, and the canonical name printed for each.
const std::vector<std::pair<std::string, Modality>>& modality_names() {
  static const std::vector<std::pair<std::string, Modality>> kNames = {
      {"ct", Modality::CT},
      {"mr", Modality::MR},
      {"mri", Modality::MR},
      {"xray", Modality::XRay},
      {"x-ray", Modality::XRay},
      {"cr", Modality::XRay},
      {"dx", Modality::XRay},
      {"us", Modality::Ultrasound},
      {"ultrasound", Modality::Ultrasound},
      {"pet", Modality::PET},
      {"pathology", Modality::Pathology},
      {"fundus", Modality::Fundus},
      {"endoscopy", Modality::Endoscopy},
      {"dermoscopy", Modality::Dermoscopy},
      {"oct", Modality::OCT},
      {"other", Modality::Other},
  };
  return kNames;
}

}  // namespace

std::string to_string(Modality modality) {
  switch (modality) {
    case Modality::Unknown:
      return "unknown";
    case Modality::CT:
      return "CT";
    case Modality::MR:
      return "MR";
    case Modality::XRay:
      return "X-ray";
    case Modality::Ultrasound:
      return "ultrasound";
    case Modality::PET:
      return "PET";
    case Modality::Pathology:
      return "pathology";
    case Modality::Fundus:
      return "fundus";
    case Modality::Endoscopy:
      return "endoscopy";
    case Modality::Dermoscopy:
      return "dermoscopy";
    case Modality::OCT:
      return "OCT";
    case Modality::Other:
      return "other";
  }
  return "unknown";
}

Modality parse_modality(const std::string& name) {
  const std::string key = detail::to_lower(detail::trim(name));
  for (const auto& [text, modality] : modality_names()) {
    if (text == key) return modality;
  }
  std::string accepted;
  for (const auto& entry : modality_names())
    accepted += (accepted.empty() ? "" : ", ") + entry.first;
  throw usage_error("unknown modality '" + name + "' (accepted: " + accepted + ")");
}

Modality modality_from_dicom(const std::string& code) {
  const std::string key = detail::trim(code);
  if (key == "CT") return Modality::CT;
  if (key == "MR") return Modality::MR;
  if (key == "CR" || key == "DX" || key == "XA" || key == "RF" || key == "MG" || key == "RG" ||
      key == "PX" || key == "IO")
    return Modality::XRay;
  if (key == "US" || key == "IVUS") return Modality::Ultrasound;
  if (key == "PT" || key == "NM") return Modality::PET;
  if (key == "SM") return Modality::Pathology;
  if (key == "OP") return Modality::Fundus;
  if (key == "OPT" || key == "OCT") return Modality::OCT;
  if (key == "ES") return Modality::Endoscopy;
  if (key.empty()) return Modality::Unknown;
  return Modality::Other;
}

}  // namespace unibiomed
