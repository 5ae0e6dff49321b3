"""Ground truth from the open scans: named structures and tissue label maps, in RAS order.

Every volume here is a numpy array indexed [i, j, k] with i towards the subject's Right, j
Anterior and k Superior (nibabel's closest canonical orientation), with its voxel spacing.
Slicing into what the engine shows (radiological orientation) is in ``slices.py``.

The ch2 T1 template (mricron) brings the brain structures: AAL regions grouped into lobes and
nuclei, the skull-stripped ``ch2bet`` as the brain, lateral ventricles derived as CSF inside the
brain connected around the centre. The InVesalius head CT brings head and skull. Structure names
are the ones a radiologist uses and the ones the prompts ask for.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Tuple

import nibabel as nib
import numpy as np
from scipy import ndimage

#: AAL label ranges (aal.nii.txt) grouped into what the prompts name. The cingulate gyrus goes
#: with the lobe above it: anterior and middle cingulum (31-34) frontal, except the middle
#: cingulum behind world y = -20 mm (CINGULUM_SPLIT_Y), and the posterior cingulum (35, 36)
#: parietal; without it the medial frontal area in front of the ventricles was no lobe. Insula
#: and the medial temporal structures are assigned to no lobe (their lobe is a convention).
AAL_GROUPS: Dict[str, Tuple[int, ...]] = {
    "frontal lobe": tuple(range(1, 29)) + (31, 32, 33, 34, 69, 70),
    "parietal lobe": tuple(range(57, 69)) + (35, 36),
    "temporal lobe": (55, 56) + tuple(range(79, 91)),
    "occipital lobe": tuple(range(43, 55)),
    "cerebellum": tuple(range(91, 117)),
    "thalamus": (77, 78),
    "hippocampus": (37, 38),
    "basal ganglia": tuple(range(71, 77)),
}
MIDDLE_CINGULUM = (33, 34)
CINGULUM_SPLIT_Y = -20.0
LOBES = ("frontal lobe", "parietal lobe", "temporal lobe", "occipital lobe")

# Tissue classes of the synthesis label map (SynthSeg-style): each gets its own random intensity.
TISSUES = ("background", "scalp", "skull", "csf", "ventricles", "cortex", "white matter",
           "deep grey", "cerebellum", "hippocampus", "air", "bone marrow")
T = {name: i for i, name in enumerate(TISSUES)}


@dataclasses.dataclass
class Subject:
    """One scan with its ground truth. ``image`` is float32 in the scan's units (MR: arbitrary,
    CT: HU); ``structures`` maps a structure name (possibly 'left '/'right ' prefixed) to a bool
    volume; ``tissues`` is the synthesis label map (uint8, indices into TISSUES) or None;
    ``regions`` labels every brain voxel with the index of its named region (REGION_NAMES) for
    naming lesion locations, or None."""

    name: str
    modality: str  # "MR" or "CT"
    image: np.ndarray
    spacing: Tuple[float, float, float]
    structures: Dict[str, np.ndarray]
    tissues: np.ndarray | None
    regions: np.ndarray | None
    lesion_space: np.ndarray  # where synthetic lesions may be placed


REGION_NAMES = ("", "frontal lobe", "parietal lobe", "temporal lobe", "occipital lobe",
                "cerebellum", "thalamus", "basal ganglia", "hippocampus")


def _load_ras(path: str) -> Tuple[np.ndarray, np.ndarray]:
    img = nib.as_closest_canonical(nib.load(path))
    return np.asarray(img.dataobj), img.affine


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, lab, range(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """Fill holes slice by slice along k (axial), then in 3-D."""
    out = np.stack([ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], 2)
    return ndimage.binary_fill_holes(out)


def _resample_labels(path: str, affine: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resampling of a label volume onto (affine, shape) by world coordinates."""
    src = nib.load(path)
    data = np.asarray(src.dataobj)
    ijk = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    inv = np.linalg.inv(src.affine)
    v = np.rint(inv[:3, :3] @ world + inv[:3, 3:4]).astype(np.int64)
    ok = np.all((v >= 0) & (v < np.array(data.shape)[:, None]), axis=0)
    out = np.zeros(ijk.shape[1], dtype=data.dtype)
    out[ok] = data[v[0, ok], v[1, ok], v[2, ok]]
    return out.reshape(shape)


def _sides(mask: np.ndarray, midline_i: float) -> Dict[str, np.ndarray]:
    """'left '/'right ' halves of a mask split at the midline (i increases to the Right)."""
    i = np.arange(mask.shape[0])[:, None, None]
    return {"left": mask & (i < midline_i), "right": mask & (i >= midline_i)}


def ch2_subject(data_dir: str) -> Subject:
    """The ch2 T1 template with brain, head, ventricles, lobes and nuclei (1 mm, 181x217x181)."""
    mr = os.path.join(data_dir, "mricron")
    t1, affine = _load_ras(os.path.join(mr, "ch2.nii.gz"))
    bet, _ = _load_ras(os.path.join(mr, "ch2bet.nii.gz"))
    aal, _ = _load_ras(os.path.join(mr, "aal.nii.gz"))
    t1 = t1.astype(np.float32)
    midline_i = float(np.linalg.inv(affine)[0, 3])  # voxel i of world x = 0

    head = _fill_slices(_largest_component(ndimage.binary_opening(t1 > 25, iterations=2)))
    brain = _fill_slices(_largest_component(ndimage.binary_opening(bet > 0, iterations=1)))

    # Lateral ventricles: dark (CSF) voxels deep inside the brain, near the centre, in the
    # components that reach the ventricles' known core (frontal horns and bodies).
    world = np.indices(t1.shape).astype(np.float32)
    for a in range(3):
        world[a] = world[a] * affine[a, a] + affine[a, 3]
    x, y, z = world
    deep = ndimage.binary_erosion(brain, iterations=10)
    csf = (t1 < 58) & deep & (np.abs(x) < 32) & (y > -55) & (y < 35) & (z > -10) & (z < 38)
    csf = ndimage.binary_opening(csf, iterations=1)
    lab, n = ndimage.label(csf)
    core = (np.abs(x) > 3) & (np.abs(x) < 20) & (y > -20) & (y < 20) & (z > 5) & (z < 25)
    keep = np.unique(lab[core & (lab > 0)])
    ventricles = np.isin(lab, keep) & (np.abs(x) >= 1.5)
    ventricles = ndimage.binary_closing(ventricles, iterations=1) & (t1 < 70) & brain

    # Every brain voxel gets the AAL label of its nearest labelled voxel, so that lobes include
    # their white matter; ventricles are taken out afterwards.
    labelled = aal > 0
    idx = ndimage.distance_transform_edt(~labelled, return_distances=False, return_indices=True)
    filled = aal[tuple(idx)] * brain
    # the middle cingulum behind the split is parietal (posterior cingulum's label, 35)
    filled = np.where(np.isin(filled, MIDDLE_CINGULUM) & (y < CINGULUM_SPLIT_Y), 35, filled)
    regions = np.zeros(t1.shape, np.uint8)
    structures: Dict[str, np.ndarray] = {"head": head, "brain": brain,
                                         "lateral ventricles": ventricles}
    for r, name in enumerate(REGION_NAMES[1:], start=1):
        mask = np.isin(filled, AAL_GROUPS[name]) & ~ventricles
        if name in ("thalamus", "hippocampus", "basal ganglia"):
            mask = np.isin(aal, AAL_GROUPS[name])  # nuclei: the atlas outline, not the fill
        regions[mask & (regions == 0)] = r
        structures[name] = mask
    for name in ("lateral ventricles",) + LOBES + ("cerebellum", "thalamus", "hippocampus"):
        for side, half in _sides(structures[name], midline_i).items():
            key = f"{side} {name[:-1] if name == 'lateral ventricles' else name}"
            structures[key] = half

    # Tissue classes for synthesis.
    tissues = np.zeros(t1.shape, np.uint8)
    outside_brain = head & ~brain
    tissues[outside_brain & (t1 >= 55)] = T["scalp"]
    tissues[outside_brain & (t1 < 55)] = T["skull"]
    tissues[outside_brain & (t1 >= 150)] = T["bone marrow"]
    tissues[brain & (t1 < 60)] = T["csf"]
    tissues[brain & (t1 >= 60) & (t1 < 98)] = T["cortex"]
    tissues[brain & (t1 >= 98)] = T["white matter"]
    deep_grey = np.isin(aal, AAL_GROUPS["thalamus"] + AAL_GROUPS["basal ganglia"])
    tissues[deep_grey & brain & (t1 >= 60)] = T["deep grey"]
    tissues[structures["cerebellum"] & (t1 >= 60)] = T["cerebellum"]
    tissues[structures["hippocampus"] & (t1 >= 60)] = T["hippocampus"]
    tissues[ventricles] = T["ventricles"]
    # Lesions sit in the parenchyma: not in CSF (sulci, cisterns, fourth ventricle), where a
    # hypointense blob is CSF replacing CSF and a report naming a lobe would be false.
    parenchyma = ndimage.binary_opening(brain & ~ventricles & (t1 >= 60), iterations=1)
    lesion_space = ndimage.binary_erosion(brain & ~ventricles, iterations=4) & (regions > 0) \
        & parenchyma
    return Subject("ch2", "MR", t1, (1.0, 1.0, 1.0), structures, tissues, regions, lesion_space)


def _read_invesalius(data_dir: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Tuple[float, ...]]:
    """The InVesalius head CT (HU) with bone and head masks, reordered to RAS [i, j, k].

    matrix.dat is int16 (z, y, x) 108x256x256; the masks are uint8 with one padding row,
    column and slice first. ct.mhd's direction (1 0 0 / 0 -1 0 / 0 0 1, LPS) says x runs to the
    subject's Left and y to Anterior, so i = reversed x, j = y, k = z.
    """
    d = os.path.join(data_dir, "invesalius")
    ct = np.fromfile(os.path.join(d, "matrix.dat"), "<i2").reshape(108, 256, 256)
    masks = []
    for name in ("mask_0.dat", "mask_1.dat"):
        m = np.fromfile(os.path.join(d, name), np.uint8).reshape(109, 257, 257)[1:, 1:, 1:]
        masks.append(m > 127)

    def ras(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(a, (2, 1, 0))[::-1, :, :])

    return (ras(ct).astype(np.float32), ras(masks[0]), ras(masks[1]),
            (0.9570312, 0.9570312, 1.5))


def ct_subject(data_dir: str) -> Subject:
    """The InVesalius head CT with head, skull and brain (which also hosts the lesions)."""
    ct, bone, head, spacing = _read_invesalius(data_dir)
    head = _fill_slices(head | bone)
    skull = bone & head
    # Brain: soft-tissue density inside the head away from bone; an opening cuts the scalp
    # (thinner than 6 mm) off, the largest component is the intracranial content.
    soft = head & ~ndimage.binary_dilation(skull, iterations=1) & (ct > 0) & (ct < 80)
    brain = _largest_component(ndimage.binary_opening(soft, iterations=3))
    tissues = np.zeros(ct.shape, np.uint8)
    tissues[head] = T["scalp"]
    tissues[skull] = T["skull"]
    tissues[brain] = T["cortex"]
    tissues[brain & (ct < 15)] = T["csf"]
    structures = {"head": head, "skull": skull, "brain": brain}
    # in the parenchyma, as on the MR: not in CSF (below 15 HU)
    lesion_space = ndimage.binary_erosion(brain, iterations=5) & \
        ndimage.binary_opening(brain & (ct >= 15), iterations=1)
    regions = np.where(brain, 1, 0).astype(np.uint8)  # side only: no atlas on this scan
    return Subject("invesalius-ct", "CT", ct, spacing, structures, tissues, regions, lesion_space)


def summary(subject: Subject) -> List[str]:
    """One line per structure: voxels and mL (for the model card and a sanity check)."""
    voxel_ml = float(np.prod(subject.spacing)) / 1000.0
    return [f"{subject.name} {name}: {int(m.sum())} voxels, {m.sum() * voxel_ml:.1f} mL"
            for name, m in sorted(subject.structures.items())]
