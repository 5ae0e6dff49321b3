# Every dependency is a Debian package (tools/setup.sh installs them). Another LibTorch, for
# example the CUDA build that GPU users have, is picked up with -DCMAKE_PREFIX_PATH=/path/to/libtorch.

find_package(Torch REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
# The byte-level BPE tokenizer: PCRE2 for its Split regex, utf8proc for NFC.
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)

# LibTorch's config exports its include directories as non-system; wrap them so that its
# headers do not trip our warning flags.
add_library(unibiomed_torch INTERFACE)
target_link_libraries(unibiomed_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(unibiomed_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})

if(UNIBIOMED_WITH_IMAGING)
  find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
  find_package(ITK REQUIRED COMPONENTS ITKCommon ITKIOImageBase ITKIOGDCM ITKIONIFTI ITKIONRRD
                                       ITKIOMeta ITKImageIntensity)
  # GDCM directly for what ITK does not expose (the transfer syntax, its log).
  find_package(GDCM REQUIRED)
  add_library(unibiomed_imaging_deps INTERFACE)
  target_link_libraries(unibiomed_imaging_deps INTERFACE ${ITK_LIBRARIES} ${OpenCV_LIBS} gdcmMSFF)
  target_include_directories(unibiomed_imaging_deps SYSTEM INTERFACE ${ITK_INCLUDE_DIRS}
                                                                     ${OpenCV_INCLUDE_DIRS}
                                                                     ${GDCM_INCLUDE_DIRS})
  # Register the ITK image IO factories (NIfTI, NRRD, MetaImage, GDCM) in this build.
  set(ITK_IO_MODULES_USED ITKIOGDCM ITKIONIFTI ITKIONRRD ITKIOMeta)
endif()
