"""How fast the vision encoder alone learns to find the synthetic lesions (make_demo_model.py
detection): the encoder and a linear head on its 16 x 16 patch features, a softmax over each
lesion slice's patches against the lesion's share of every patch (the vision phase's
lesion-patch term), trained on a pool of training slices drawn once, with random left-right
flips. Drawing a slice costs about 50 ms, three times a step's compute: a pool makes a step
0.4 s instead of 1.2 s, so a recipe's trend shows in minutes. The figure is the share of
held-out lesions whose top-scoring patch touches the lesion, by kind (subject, bright or dark),
on the training pool too (underfitting or overfitting)."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch

from demo.samples import Sampler
from demo.token_labels import cell_shares
from demo.vision_terms import fold_layer_scale, lesion_patch_loss, patch_features
from unibiomed_ref.pipeline import PRE, vision_tiles
from unibiomed_ref.settings import InferenceSettings
from unibiomed_ref.vision import VisionEncoder


@dataclasses.dataclass
class Pool:
    """Slices drawn once: tiles [n, 3, S, S], the lesion's share of each patch [n, side*side]
    (zeros without a lesion) and each slice's kind ('ch2 bright', 'invesalius-ct dark', '')."""

    tiles: torch.Tensor
    shares: torch.Tensor
    kinds: List[str]


def draw_pool(sampler: Sampler, settings: InferenceSettings, n: int, lesion_rate: float,
              side: int) -> Pool:
    tiles, shares, kinds = [], [], []
    for _ in range(n):
        case = sampler.image_case(seg_turns=0, lesion_rate=lesion_rate)
        tile = vision_tiles(PRE.grey_to_rgb(case.pictures[0]), settings)
        if tile.shape[0] != 1:
            raise ValueError(f"detection probe: {tile.shape[0]} tiles for one slice "
                             "(the demo model sees one tile a slice)")
        tiles.append(tile)
        lesion = case.labels.get("lesion")
        shares.append(cell_shares(lesion[0], side) if lesion is not None
                      else torch.zeros(side * side))
        facts = case.facts["lesion"]
        kinds.append("" if facts is None else
                     f"{case.facts['subject']} {'bright' if facts['bright'] else 'dark'}")
    return Pool(torch.cat(tiles), torch.stack(shares), kinds)


def flip_rows(tiles: torch.Tensor, shares: torch.Tensor, which: torch.Tensor, side: int
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Tiles and their patch shares mirrored left-right where ``which`` (bool [n]) is set."""
    tiles, grid = tiles.clone(), shares.reshape(-1, side, side).clone()
    tiles[which] = tiles[which].flip(-1)
    grid[which] = grid[which].flip(-1)
    return tiles, grid.reshape(shares.shape)


def hit_rates(scores: torch.Tensor, shares: torch.Tensor, kinds: Sequence[str]
              ) -> Dict[str, float]:
    """Share of lesion slices whose top-scoring patch touches the lesion: 'all' and by kind."""
    hits: Dict[str, List[float]] = {}
    for row, kind in enumerate(kinds):
        if not kind:
            continue
        hit = float(shares[row][int(scores[row].argmax())] > 0)
        hits.setdefault(kind, []).append(hit)
        hits.setdefault("all", []).append(hit)
    return {kind: float(np.mean(v)) for kind, v in sorted(hits.items())}


class DetectionProbe:
    """The encoder (trained in place) and its patch head."""

    def __init__(self, encoder: VisionEncoder, lr: float, seed: int) -> None:
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.vision_model.embeddings.position_embedding.shape[-1],
                                    1)
        self.params = list(encoder.vision_model.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01)
        self.lr = lr
        self.rng = np.random.default_rng(seed)
        self.steps = 0

    @property
    def side(self) -> int:
        return self.encoder.vision_model.embeddings.grid

    def scores(self, tiles: torch.Tensor) -> torch.Tensor:
        """Patch scores [n, side*side] (CLS dropped, row-major)."""
        return self.head(patch_features(self.encoder, tiles))[..., 0]

    def step(self, pool: Pool, batch: int, warmup: int = 50) -> float:
        pick = torch.from_numpy(self.rng.choice(len(pool.kinds), batch, replace=False))
        flip = torch.from_numpy(self.rng.random(batch) < 0.5)
        tiles, shares = flip_rows(pool.tiles[pick], pool.shares[pick], flip, self.side)
        loss = lesion_patch_loss(self.scores(tiles), shares)
        for group in self.opt.param_groups:
            group["lr"] = self.lr * min(1.0, (self.steps + 1) / warmup)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.steps += 1
        return float(loss)

    @torch.no_grad()
    def evaluate(self, pool: Pool, limit: int, chunk: int = 40) -> Dict[str, float]:
        self.encoder.eval()
        n = min(limit, len(pool.kinds))
        scores = torch.cat([self.scores(pool.tiles[i:min(i + chunk, n)])
                            for i in range(0, n, chunk)])
        self.encoder.train()
        return hit_rates(scores, pool.shares[:n], pool.kinds[:n])


@torch.no_grad()
def reinitialise(encoder: VisionEncoder, fresh: VisionEncoder, position_std: float) -> None:
    """``encoder`` set to ``fresh``'s weights (a newly built model's) with its position
    embedding drawn at ``position_std`` (the shipped one's std is 1.0, InternViT's init, which
    swamps the patch content)."""
    encoder.load_state_dict(fresh.state_dict())
    encoder.vision_model.embeddings.position_embedding.normal_(0.0, position_std)


def run(encoder: VisionEncoder, settings: InferenceSettings, train: Sampler, held: Sampler,
        minutes: float, pool_size: int, held_size: int, lr: float, batch: int = 16,
        every_minutes: float = 2.0, seed: int = 0,
        log: Callable[[str], None] = print) -> List[Dict[str, object]]:
    """The encoder's layer scales folded (``fold_layer_scale``), pools drawn from ``train`` (85%
    with a lesion) and ``held`` (all with one), then the probe trained for ``minutes``, evaluated at the start, every ``every_minutes`` and at the
    end. Returns the evaluations: minutes, steps, 'held' and 'train' hit rates."""
    fold_layer_scale(encoder)
    side = encoder.vision_model.embeddings.grid
    t0 = time.perf_counter()
    train_pool = draw_pool(train, settings, pool_size, 0.85, side)
    held_pool = draw_pool(held, settings, held_size, 1.0, side)
    log(f"pools of {pool_size} training and {held_size} held-out slices drawn in "
        f"{time.perf_counter() - t0:.0f} s")
    probe = DetectionProbe(encoder, lr, seed)
    rows: List[Dict[str, object]] = []

    def evaluate(elapsed: float) -> None:
        row = {"minutes": round(elapsed / 60.0, 2), "steps": probe.steps,
               "held": probe.evaluate(held_pool, held_size),
               "train": probe.evaluate(train_pool, min(pool_size, 200))}
        rows.append(row)
        log(f"{row['minutes']:5.1f} min, {probe.steps} steps: held-out "
            + ", ".join(f"{k} {v:.2f}" for k, v in row["held"].items())
            + " | training " + ", ".join(f"{k} {v:.2f}" for k, v in row["train"].items()))

    start = time.perf_counter()
    evaluate(0.0)
    last = 0.0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= minutes * 60.0:
            break
        if elapsed - last >= every_minutes * 60.0:
            evaluate(elapsed)
            last = elapsed
        probe.step(train_pool, min(batch, pool_size))
    evaluate(time.perf_counter() - start)
    return rows
