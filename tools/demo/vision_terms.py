"""The vision encoder's training-only pieces of the demo training: its patch features before
the pixel shuffle, the lesion-patch term on them, and the folding of its layer scales."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from unibiomed_ref.vision import VisionEncoder, pixel_shuffle


def patch_features(encoder: VisionEncoder, tiles: torch.Tensor) -> torch.Tensor:
    """The encoder's patch features [N, side*side, C] of ``tiles`` (CLS dropped, row-major)."""
    return encoder.vision_model(tiles)[:, 1:, :]


def lesion_patch_loss(scores: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """The lesion-patch term: cross-entropy of the softmax over each lesion slice's patch scores
    [n, P] against the lesion's share of each patch [n, P], normalised; slices without a lesion
    (all shares 0) are left out, and a batch without one gives 0."""
    lesion = shares.sum(1) > 0
    if not lesion.any():
        return scores.sum() * 0
    target = shares[lesion] / shares[lesion].sum(1, keepdim=True)
    return -(target * F.log_softmax(scores[lesion], 1)).sum(1).mean()


def patches_and_tokens(encoder: VisionEncoder, tiles: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """One pass of the exported vision encoder kept open where the pixel shuffle starts: the
    patch features [N, side*side, C] (CLS dropped, row-major), the vision tokens [N, T, D] (as
    ``encoder(tiles)``) and ``side``, the patches per side of a tile."""
    side = tiles.shape[2] // encoder.patch_size
    patches = patch_features(encoder, tiles)
    grid = pixel_shuffle(patches.reshape(patches.shape[0], side, side, patches.shape[2]),
                         encoder.r)
    return patches, encoder.mlp1(grid.reshape(grid.shape[0], -1, grid.shape[3])), side


@torch.no_grad()
def fold_layer_scale(encoder: VisionEncoder) -> None:
    """Fold each vision layer's layer scale into the projection before it and set it to 1: the
    same function (x + (W a + b) * ls == x + (ls W) a + ls b), but the output projections'
    updates are no longer damped by the scale. The demo encoder was trained from ls 0.1
    (InternViT's initial value): after ~2,000 steps it was still 0.10-0.12, every block adding a
    tenth of its output to a residual stream held by the position embedding (std 1), an almost
    linear encoder whose location head named 41% of held-out lesions after 1,200 vision steps."""
    for layer in encoder.vision_model.encoder.layers:
        for scale, proj in ((layer.ls1, layer.attn.proj), (layer.ls2, layer.mlp.fc2)):
            proj.weight.mul_(scale[:, None])
            proj.bias.mul_(scale)
            scale.fill_(1.0)
