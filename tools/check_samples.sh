#!/usr/bin/env bash
# Runs `unibiomed info` on every image of the sample cache (tools/data_manifest.txt) and prints
# one line per file: "read" with what was read, or "refused" with the reason. Companion files
# (raw data of .mhd/.nhdr headers, label lists, plists) are not images and are skipped.
# Usage: tools/check_samples.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exe="${1:-$root/build}/src/unibiomed"
cache="${UNIBIOMED_DATA:-$root/.cache/data}"
read_count=0
refused_count=0
while IFS=$'\t' read -r path format _; do
  [[ -z "$path" || $path == \#* ]] && continue
  case "$path" in
    *.raw | *.zraw | *.dat | *.txt | *.lut | *.plist | *README* | text/*) continue ;;
  esac
  [[ -e "$cache/$path" ]] || continue
  if out=$("$exe" info --json "$cache/$path" 2>/tmp/check_samples.err); then
    summary=$(/usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
size = "x".join(str(n) for n in d["size"])
syntax = d.get("dicom", {}).get("transfer_syntax", "").split(" (")[-1].rstrip(")")
fields = (d["format"], size, str(d["channels"]) + "ch", d["pixel_type"], d["modality"], syntax)
print("{:<13} {:<14} {:<4} {:<8} {:<10} {}".format(*fields))' <<<"$out")
    printf 'read     %-58s %s\n' "$path" "$summary"
    read_count=$((read_count + 1))
  else
    printf 'refused  %-58s %s\n' "$path" "$(tail -n 1 /tmp/check_samples.err | sed "s|$cache/||g")"
    refused_count=$((refused_count + 1))
  fi
done <"$root/tools/data_manifest.txt"
echo "$read_count read, $refused_count refused"
