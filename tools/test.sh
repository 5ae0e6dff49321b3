#!/usr/bin/env bash
# The test command: sets everything up (tools/setup.sh, idempotent) and runs every test,
# C++ and Python, through CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
"$root/tools/setup.sh" --no-demo
ctest --test-dir "$build_dir" --output-on-failure --parallel "$(nproc)" "$@"
