"""The options of the demo model's training (tools/demo/train.py), each with why it is set so."""

from __future__ import annotations

import argparse
import dataclasses


@dataclasses.dataclass
class TrainOptions:
    steps: int = 6000
    lr: float = 6e-4
    warmup: int = 200
    weight_decay: float = 0.01
    clip: float = 1.0
    # The release weighs 2 x BCE + 0.5 x Dice; at this size that lets the masks settle on empty
    # (most targets are small), so Dice weighs as much as BCE here.
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    seed: int = 7
    # Loss on every candidate mask, not only the best one: with SAM's min-over-candidates loss
    # the three candidates settle on three prompt-independent masks (head, brain, ...) and the
    # [SEG] embedding is ignored; the release trains a single mask.
    all_candidates: bool = True
    # Segmentation turns per slice case: several distinct targets on one picture per step make
    # the prompt the only way to lower the mask loss.
    seg_turns: int = 6
    # Target codes (training only, not exported): a learned 'ideal [SEG] embedding' per target
    # name. The mask decoder is also trained on the codes of every structure of each picture
    # (up to codes_per_picture, on the slice cases and on extra_pictures more slices), and the
    # [SEG] embeddings are pulled towards their target's code (distill). The decoder so learns
    # to tell the targets apart from the first steps, without waiting for the language model:
    # with [SEG] embeddings alone the small targets settled on one prompt-free mask.
    code_weight: float = 1.0
    # Scale of the codes at initialisation. With small codes (std 0.5, a smaller norm than SAM's
    # learned tokens) the decoder's mask tokens hardly see the prompt and every small target
    # got the same blob for hundreds of steps; with std 3 the targets separate early.
    code_scale: float = 3.0
    # The mask-decoder phase (make_demo_model.py train --sam-minutes) decodes the codes of
    # this many slices a step, without the language model (a step costs a fifth).
    sam_pictures: int = 4
    codes_per_picture: int = 12
    # Codes of structures absent from the picture, decoded to an empty mask: without them the
    # object score does not learn 'absent' (on ch2 slices without lateral ventricles it was
    # positive 77% of the time), and whole volumes keep masks where the structure has ended.
    # 0 as the shipped model was trained (make_demo_model.py train --absent-codes).
    absent_per_picture: int = 0
    extra_pictures: int = 2
    distill: float = 1.0
    # The vision-language phase (make_demo_model.py train --language-minutes): slices a step
    # and the share of them with a lesion.
    language_pictures: int = 8
    language_lesion_rate: float = 0.8
    language_volumes: int = 1
    # The reading phase (make_demo_model.py train --reading-minutes): slices a step. The
    # language model alone, on image tokens computed without gradients (Trainer.reading_step).
    # In the vision-language phase the side word of held-out reports stayed at chance (the
    # image tokens moving under the language model); on frozen tokens the teacher-forced side
    # word went from 0.49 to 0.80 on held-out lesions in 250 steps of 24 text turns.
    reading_pictures: int = 8
    # Slices of the reading phase's pool (make_demo_model.py train --reading-pool; 0: fresh
    # slices every step), drawn and encoded once. The 0.80 above was on a pool of 400 lesion
    # slices; 20 minutes of fresh slices (473 steps, 30% without a lesion) taught no side at
    # all: every held-out report said 'left', its region the slice level's commonest.
    reading_pool: int = 0
    # Report, diagnose and VQA turns per slice of the vision-language phase (make_demo_model.py
    # train --text-turns; 1 as the shipped model was trained): each tells the slice's lesion
    # facts again in other words, for the price of a row of the language model (the slice's
    # vision tokens are computed once). One turn a slice gave the place words too few examples.
    language_text_turns: int = 1
    # Weight of the answer tokens that carry a report's facts in the language model's
    # cross-entropy (1: every token alike, as the shipped model was trained): the first
    # (lesion or not) and those after the first [SEG] (side and region), a few of twenty.
    fact_weight: float = 1.0
    # The vision phase (make_demo_model.py train --vision-minutes): the vision encoder and
    # projector alone on the token labels of this many slices a step (no language model, no
    # SAM2), most with a lesion, the lesion-touching term on. A step costs a fraction of a
    # language step, so the image tokens learn where the lesion is before the language model
    # must learn to read it.
    vision_pictures: int = 16
    vision_lesion_rate: float = 0.7
    vision_lesion_touch: float = 1.0
    # The share of the vision phase's lesions drawn dark (hypointense, hypodense): the bright
    # ones are found from their intensity alone, the dark ones sit among sulci and ventricles.
    vision_dark_lesions: float = 0.5
    # The tracking phase (--track-minutes): frames of its stacks (spacing 1 to 4 slices).
    track_frames: int = 6
    # Dense labels on the vision tokens (training only): a linear head must tell, for each of
    # the 8 x 8 tokens of a slice, how much of every structure and of the lesion it covers, so
    # that the language model's image tokens say where things are (the report names the lesion's
    # lobe and side from them).
    token_labels: float = 0.5
    # Weight of the lesion-touching term of the token labels (0: off, as the shipped model was
    # trained; make_demo_model.py train --lesion-touch). Tried in a 40-min vision-language
    # phase: it did not teach the lesion's place (see the model card).
    lesion_touch: float = 0.0
    # Weight of the lesion-location term of the token labels (0: off, as the shipped model was
    # trained; make_demo_model.py train --lesion-location): a linear head on the slice's image
    # tokens, read through one attention head (Trainer.location_logits), must tell the lesion's
    # location (side and region, or none). The report's place words must be read off the image
    # tokens; the term puts the place where attention, as the language model's, reads it.
    # (Asking every token for it, in a 10-min vision phase, taught nothing, nor did a head on
    # the tokens' mean in 45 min: both said 'none' on every slice.)
    lesion_location: float = 0.0
    # Weight of the lesion-attention term (0: off, as the shipped model was trained;
    # make_demo_model.py train --lesion-attention; demo/lesion_attention.py): one head of one
    # language-model layer (attention_layer, attention_head) must look, from every answer token
    # of a report, diagnose or VQA turn about a slice with a lesion, at the image tokens that
    # cover the lesion (cross-entropy against their share of it).
    lesion_attention: float = 0.0
    # Weight of the token-position term (0: off, as the shipped model was trained;
    # make_demo_model.py train --token-position): a linear head must tell each image token's
    # column and row in its tile (mean squared error). The language model's attention brings
    # back a token's value, which carries no RoPE: the report's side word ('left': the lesion
    # on the picture's right half, radiological orientation) must be in the token itself. With
    # the lesion-attention head on the lesion, side was linearly readable from the lesion's
    # token in 75% of held-out lesions, and the reports said 'right' on every one.
    token_position: float = 0.0
    attention_layer: int = 1
    attention_head: int = 0
    # The share of lesion slices that may show a synthetic contrast (make_demo_model.py train
    # --synthetic-lesions; 1 as the shipped model was trained); the others show the lesion in
    # the scan's own rendering. On synthetic contrasts every tissue has a random intensity, so a
    # blob of another grey is an anomaly only to an encoder that knows the anatomy: after 1,198
    # vision steps the patch head found 29% of held-out lesions there, 70% on the stored T1.
    synthetic_lesions: float = 1.0
    # Weight of the lesion-patch term of the vision phase (0: off; make_demo_model.py train
    # --lesion-patches): a linear head on the encoder's 16 x 16 patch features, before the pixel
    # shuffle, scores every patch, and a softmax over the patches of a lesion slice must put
    # the lesion's area share on each (cross-entropy). Per-token BCE on whether an 8 x 8 token
    # touches the lesion learned a positional prior (the centre tokens highest on every slice);
    # a softmax over one slice's patches leaves nothing to gain from position alone.
    lesion_patches: float = 0.0
    # BCE with the foreground and the background weighing half each. With the plain pixel mean
    # the small targets (ventricles, lobes) settled on empty masks: their pixels are a few per
    # cent of the picture and the sigmoid saturates, so Dice's gradient vanishes.
    balanced_bce: bool = True


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The command-line options of ``make_demo_model.py train`` (most set a field above)."""
    p.add_argument("--work", required=True)
    p.add_argument("--minutes", type=float, default=75.0,
                   help="the whole budget, the mask-decoder phase included")
    p.add_argument("--sam-minutes", type=float, default=15.0,
                   help="first phase: the mask decoder alone on the target codes")
    p.add_argument("--vision-minutes", type=float, default=0.0,
                   help="then the vision encoder alone on the token labels (lesion-heavy)")
    p.add_argument("--vision-lr", type=float, default=0.0,
                   help="peak learning rate of the vision phase (0: --lr)")
    p.add_argument("--vision-lesion-rate", type=float, default=0.7,
                   help="share of the vision phase's slices with a lesion")
    p.add_argument("--vision-dark-lesions", type=float, default=0.5,
                   help="share of the vision phase's lesions drawn dark (hypo-)")
    p.add_argument("--language-minutes", type=float, default=0.0,
                   help="then the vision encoder and language model alone on the text answers")
    p.add_argument("--language-lesion-rate", type=float, default=0.8,
                   help="share of the vision-language and reading phases' slices with a lesion")
    p.add_argument("--reading-minutes", type=float, default=0.0,
                   help="then the language model alone on frozen image tokens (text answers)")
    p.add_argument("--reading-pool", type=int, default=0,
                   help="slices of the reading phase, drawn once (0: fresh ones every step)")
    p.add_argument("--track-minutes", type=float, default=0.0,
                   help="then SAM2's memory path alone on longer stacks")
    p.add_argument("--lesion-touch", type=float, default=0.0,
                   help="weight of the token labels' lesion-touching term (0: off)")
    p.add_argument("--lesion-location", type=float, default=0.0,
                   help="weight of the token labels' lesion-location term (0: off)")
    p.add_argument("--lesion-patches", type=float, default=0.0,
                   help="weight of the vision phase's lesion-patch term (0: off)")
    p.add_argument("--lesion-attention", type=float, default=0.0,
                   help="weight of the lesion-attention term: a language-model head looks at "
                        "the lesion's image tokens from the answers about it (0: off)")
    p.add_argument("--token-position", type=float, default=0.0,
                   help="weight of the token-position term: each image token tells its column "
                        "and row (0: off)")
    p.add_argument("--synthetic-lesions", type=float, default=1.0,
                   help="share of lesion slices that may show a synthetic contrast (the others "
                        "show the scan's own rendering)")
    p.add_argument("--text-turns", type=int, default=1, choices=(1, 2, 3),
                   help="report, diagnose and VQA turns per slice of the vision-language and "
                        "reading phases")
    p.add_argument("--fact-weight", type=float, default=1.0,
                   help="cross-entropy weight of the answer tokens that carry a report's facts")
    p.add_argument("--absent-codes", type=int, default=0,
                   help="codes of absent structures decoded per picture (0: off)")
    p.add_argument("--fold-layer-scale", action="store_true",
                   help="fold the vision layers' layer scales into their projections (ls 1)")
    p.add_argument("--max-steps", type=int, default=100000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--init", help="start from this checkpoint.pt or exported bundle folder "
                   "(and its tokenizer)")
