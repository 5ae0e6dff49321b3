"""`Sam2Model`: the SAM2 module tree of the release, `grounding_encoder.sam2_model.*`.

Reproduces the parameters `SAM2Base.__init__` / `_build_sam_heads` create for the 2.0
`sam2_hiera_l.yaml` (facebookresearch/sam2 `sam2/modeling/sam2_base.py`; UniBiomed's
`projects/unibiomed/hf/models/sam2.py` builds the same tree), so that
`{"grounding_encoder.sam2_model." + k for k in Sam2Model().state_dict()}` equals the SAM2
names of the released checkpoint (modulo the loader's `.gamma` -> `.g_weight` renaming in the
memory encoder). Top-level tensors at the real config:

  maskmem_tpos_enc  [7, 1, 1, 64]   temporal encoding of the 7 memory slots
  no_mem_embed      [1, 1, 256]     added to the stride-16 image feature of a frame without memory
  no_mem_pos_enc    [1, 1, 256]
  no_obj_ptr        [1, 256]        (pred_obj_scores and use_obj_ptrs_in_encoder)
  mask_downsample   Conv2d(1, 1, 4, stride 4)   (use_obj_ptrs_in_encoder)
  obj_ptr_proj      MLP 256-256-256-256, 3 layers (use_mlp_for_obj_ptr_proj)
  obj_ptr_tpos_proj Identity (proj_tpos_enc_in_obj_ptrs is False: no tensors)

This module only holds the parts; inference is done by the export wrappers
(`export_image.py` for the image side, `memory.py` for the memory side).
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import nn

from .config import Sam2Config
from .image_encoder import MLP, ImageEncoder
from .mask_decoder import MaskDecoder, PromptEncoder

try:  # written in parallel by another part of the project
    from .memory import MemoryAttention, MemoryEncoder  # type: ignore

    HAVE_MEMORY = True
except ImportError:  # pragma: no cover - only while memory.py does not exist yet
    MemoryAttention = None  # type: ignore
    MemoryEncoder = None  # type: ignore
    HAVE_MEMORY = False


class Sam2Model(nn.Module):
    """SAM2Base's parameters for `cfg` (default: the real Hiera-L 2.0 config)."""

    def __init__(self, cfg: Optional[Sam2Config] = None) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else Sam2Config()
        cfg.validate()
        self.config = cfg
        c, mem_dim = cfg.hidden_dim, cfg.mem_dim
        # Part 1: image backbone
        self.image_encoder = ImageEncoder(cfg)
        if cfg.use_obj_ptrs_in_encoder:
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        # Parts 2 and 3: memory attention and memory encoder
        if HAVE_MEMORY:
            self.memory_attention = MemoryAttention(cfg)
            self.memory_encoder = MemoryEncoder(cfg)
        else:
            warnings.warn("unibiomed_ref.sam2.memory is missing: Sam2Model has no memory side")
            self.memory_attention = nn.Module()
            self.memory_encoder = nn.Module()
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(cfg.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, c))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, c))
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(p, std=0.02)
        if cfg.pred_obj_scores and cfg.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, c))
            nn.init.trunc_normal_(self.no_obj_ptr, std=0.02)
        # Part 4: SAM heads
        self.sam_prompt_encoder = PromptEncoder(cfg)
        self.sam_mask_decoder = MaskDecoder(cfg)
        if cfg.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj: nn.Module = (
                MLP(c, c, c, 3) if cfg.use_mlp_for_obj_ptr_proj else nn.Linear(c, c)
            )
        else:
            self.obj_ptr_proj = nn.Identity()
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(c, mem_dim) if cfg.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        # Hiera's window position embeddings start at zero upstream (they come from the
        # checkpoint); give them small random values so that untrained tests exercise them.
        nn.init.trunc_normal_(self.image_encoder.trunk.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.image_encoder.trunk.pos_embed_window, std=0.02)
