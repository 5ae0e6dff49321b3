#!/usr/bin/python3
"""The shipped demonstration model (models/default): train, export, evaluate, write its card.

    tools/make_demo_model.py train --work DIR [--minutes 75]
        Tokenizer (SentencePiece on the prompts, answers and medical vocabulary), then the model
        (UniBiomed architecture at demo sizes) trained on the open scans for a time budget;
        checkpoints to DIR/checkpoint.pt, log in DIR/train.log.
    tools/make_demo_model.py export --work DIR [-o models/default]
        The checkpoint as a bundle, through the same writer as a converted release (bf16).
    tools/make_demo_model.py benchmark [-o benchmarks/data]
        The project's benchmark datasets for `unibiomed eval` from the held-out data.
    tools/make_demo_model.py reading --work DIR [--cases 10]
        How the checkpoint reads held-out lesions' sides: where the lesion-attention head looks
        from the side word, the teacher-forced side word, the side in the lesion's token.
    tools/make_demo_model.py detection [-m models/default] [--minutes 8] [--reinit]
        How fast the bundle's vision encoder alone learns to find the synthetic lesions
        (demo/vision_probe.py): held-out hit rates by kind as it trains on a pool of slices.
    tools/make_demo_model.py evaluate [-m models/default] [--json FILE] [--card]
        Held-out figures of a bundle (slices never trained on, an unseen subject, synthetic
        lesions), computed through the reference pipeline on the exported TorchScript files;
        --card rewrites the bundle's MODEL_CARD.md with them.

Data come from the sample cache (tools/fetch_data.sh). Training is not bit-reproducible across
machines (two threads); evaluation of a given bundle is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Dict, List

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from demo import anatomy, texts  # noqa: E402
from demo.samples import Sampler  # noqa: E402
from demo.train import Trainer, TrainOptions  # noqa: E402
from demo.train_options import add_train_arguments  # noqa: E402
from demo.train_probes import location_probe, mask_probe  # noqa: E402
from unibiomed_ref import bundle as B  # noqa: E402
from unibiomed_ref import prompt as P  # noqa: E402
from unibiomed_ref.config import ModelConfig, demo_config  # noqa: E402
from unibiomed_ref.model import UniBiomedModel, build_model  # noqa: E402
from unibiomed_ref.prompt import ChatSettings  # noqa: E402
from unibiomed_ref.settings import InferenceSettings, settings_for_config  # noqa: E402
from unibiomed_ref.tokenizer import load_tokenizer, train_sentencepiece  # noqa: E402

DATA = os.environ.get("UNIBIOMED_DATA", os.path.join(ROOT, ".cache", "data"))
VOCAB = 3000
SEED = 20261123
CHAT = ChatSettings(max_new_tokens=64)


def demo_settings(config: ModelConfig, eos_id: int) -> InferenceSettings:
    """One tile per image (the model is trained on one), short answers; in video mode the [SEG]
    prompts every frame (its memory path loses small structures within a few slices)."""
    return settings_for_config(config, [eos_id], chat=CHAT, max_tiles=1,
                               video_prompt_frames="every")


def subjects() -> List[anatomy.Subject]:
    for rel in ("mricron/ch2.nii.gz", "invesalius/matrix.dat", "text/data.noun"):
        if not os.path.exists(os.path.join(DATA, rel)):
            raise FileNotFoundError(f"{os.path.join(DATA, rel)}: sample missing; run "
                                    "tools/fetch_data.sh first")
    return [anatomy.ch2_subject(DATA), anatomy.ct_subject(DATA)]


def make_tokenizer(work: str) -> str:
    """Train the SentencePiece model in ``work`` (under a fixed relative name, which the
    .model file records); returns its path."""
    cwd = os.getcwd()
    try:
        os.chdir(work)
        lines = texts.corpus(CHAT, os.path.join(DATA, "text"), np.random.default_rng(SEED))
        train_sentencepiece(lines, "tokenizer", VOCAB, P.ADDED_TOKENS)
    finally:
        os.chdir(cwd)
    return os.path.join(work, "tokenizer.model")


#: Held-out slices and targets on which training reports its Dice as it goes.
PROBES = (("ch2", 92, ("head", "brain", "lateral ventricles", "left frontal lobe",
                       "right occipital lobe", "thalamus")),
          ("invesalius-ct", 62, ("head", "skull", "brain")))


def _probe_cases(subs: List[anatomy.Subject]):
    """The probe slices as stored (MR) or in the brain window (CT), one turn per target."""
    from demo.samples import Case, Turn

    by_name = {s.name: s for s in subs}
    sampler = Sampler(subs, CHAT, True, SEED)
    out = []
    for name, k, targets in PROBES:
        subject = by_name[name]
        mode = "window" if subject.modality == "CT" else "stored"
        pics = sampler._slab(subject, [k], None, mode).astype(np.uint8)
        turns = [Turn("segment", texts.user_text(CHAT, "segment", t), texts.SEGMENT_ANSWER,
                      [sampler._structure(subject, t, [k])], t) for t in targets]
        out.append((f"{name}:{k}", Case(pics, turns, {"subject": name, "slices": [k]})))
    return out


def _save(path: str, obj) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def run_record(command: str, phase_steps: Dict[str, int], full_steps: int,
               minutes: float) -> Dict[str, object]:
    """One training run of a checkpoint's history: its command and what it did."""
    done = [f"{n} {name} steps" for name, n in phase_steps.items() if n]
    return {"command": command, "steps": ", ".join(done + [f"{full_steps} full steps"]),
            "minutes": round(minutes, 1)}


def checkpoint_history(ck: Dict[str, object]) -> List[Dict[str, object]]:
    """The runs that made a checkpoint, oldest first (a checkpoint written before runs kept a
    history describes its one run by its budget fields)."""
    if "history" in ck:
        return list(ck["history"])
    sam = f" --sam-minutes {ck['sam_minutes']:g}" if ck.get("sam_steps") else ""
    phases = dict(ck.get("phase_steps") or {"mask-decoder": ck.get("sam_steps", 0)})
    return [run_record(f"tools/make_demo_model.py train --work DIR --minutes "
                       f"{ck.get('budget_minutes', round(float(ck['minutes']))):g}{sam}",
                       phases, int(ck["step"]), float(ck["minutes"]))]


def _card_history(bundle_dir: str) -> List[Dict[str, object]]:
    """The runs a bundle's MODEL_CARD.md lists in its training section (bundles exported
    before the manifest kept the history)."""
    import re

    path = os.path.join(bundle_dir, "MODEL_CARD.md")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    block = text.split("<!-- training:start -->", 1)[-1].split("<!-- training:end -->", 1)[0]
    return [{"command": c, "steps": st, "minutes": float(m)} for c, st, m in
            re.findall(r"`(tools/make_demo_model\.py train[^`]*)`: (.*?) in ([\d.]+) min", block)]


def bundle_checkpoint(bundle_dir: str) -> Dict[str, object]:
    """A checkpoint made from an exported bundle: its weights (bf16, as shipped, in fp32), its
    config, and the history its model card's source records; no training-only state (codes,
    token head), which the bundle does not keep."""
    manifest = B.read_manifest(bundle_dir)
    config = ModelConfig.from_dict(manifest["architecture"])
    model = UniBiomedModel(config)
    for key, part in model.export_parts().items():
        scripted = torch.jit.load(os.path.join(bundle_dir, manifest["files"][key]["path"]))
        part.load_state_dict({n: v.float() if v.is_floating_point() else v
                              for n, v in scripted.state_dict().items()})
    source = manifest.get("source", {})
    history = source.get("history") or _card_history(bundle_dir) or [
        {"command": f"{source.get('recipe', 'unknown recipe')} (the bundle in {bundle_dir})",
         "steps": f"{source.get('steps', '?')} full steps",
         "minutes": float(source.get("minutes", 0.0))}]
    return {"model": model.state_dict(), "config": config.to_dict(), "history": history}


def cmd_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    # Subnormal floats (tiny gradients and moments) make the steps slower as the weights train:
    # a vision step of 8 slices on one thread took 4.2 s on trained weights, 1.8 s with them
    # flushed to zero (the steps of a 20-min vision phase slowed from 2.1 to 3.5 s).
    torch.set_flush_denormal(True)
    os.makedirs(args.work, exist_ok=True)
    log_path = os.path.join(args.work, "train.log")
    log = open(log_path, "a", encoding="utf-8")

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    from_bundle = bool(args.init) and os.path.isdir(args.init)
    if args.init:  # continue from a checkpoint or a bundle: its tokenizer, its weights, a fresh
        import shutil  # optimiser

        src = os.path.abspath(args.init) if from_bundle else \
            os.path.dirname(os.path.abspath(args.init))
        if os.path.abspath(args.work) != src:
            shutil.copyfile(os.path.join(src, "tokenizer.model"),
                            os.path.join(args.work, "tokenizer.model"))
        tok_path = os.path.join(args.work, "tokenizer.model")
    else:
        tok_path = make_tokenizer(args.work)
    tokenizer = load_tokenizer("sentencepiece", tok_path, list(P.ADDED_TOKENS))
    config = demo_config(tokenizer.vocab_size)
    settings = demo_settings(config, tokenizer.token_to_id("</s>"))
    t0 = time.perf_counter()
    subs = subjects()
    say(f"tokenizer {tokenizer.vocab_size} pieces; subjects ready in "
        f"{time.perf_counter() - t0:.1f} s")
    model = build_model(config, SEED)
    init = bundle_checkpoint(args.init) if from_bundle else \
        (torch.load(args.init) if args.init else {})
    if init:
        model.load_state_dict(init["model"])
        say(f"weights from {args.init}")
    if args.fold_layer_scale:
        from demo.vision_terms import fold_layer_scale

        fold_layer_scale(model.export_parts()["vision_encoder"])
        say("vision layer scales folded into their projections")
    model.train()
    budget = args.minutes * 60.0
    opts = TrainOptions(steps=args.max_steps, seed=SEED, lr=args.lr,
                        warmup=50 if args.init else 200, lesion_touch=args.lesion_touch,
                        lesion_location=args.lesion_location,
                        lesion_patches=args.lesion_patches,
                        lesion_attention=args.lesion_attention,
                        token_position=args.token_position,
                        absent_per_picture=args.absent_codes,
                        language_lesion_rate=args.language_lesion_rate,
                        fact_weight=args.fact_weight, vision_lesion_rate=args.vision_lesion_rate,
                        vision_dark_lesions=args.vision_dark_lesions,
                        synthetic_lesions=args.synthetic_lesions,
                        language_text_turns=args.text_turns, reading_pool=args.reading_pool)
    runs_before = len(init.get("history", [])) if init else 0
    sampler = Sampler(subs, CHAT, False, SEED + runs_before + (1 if init else 0))
    sampler.synthetic_lesions = opts.synthetic_lesions
    trainer = Trainer(model, tokenizer, settings, sampler, opts)
    if "training" in init:
        trainer.load_training_state(init["training"])
    elif init:  # a bundle keeps no codes: each is its target's mean [SEG] embedding
        model.eval()
        counts = trainer.estimate_codes()
        model.train()
        few = ", ".join(f"{n} {c}" for n, c in counts.items() if c < 3)
        say("codes from the [SEG] embeddings" +
            (f"; from fewer than 3: {few}" if few else " (3 or more each)"))
    probes = _probe_cases(subs)

    command = (f"tools/make_demo_model.py train --work DIR --minutes {args.minutes:g} "
               f"--sam-minutes {args.sam_minutes:g}"
               + (f" --vision-minutes {args.vision_minutes:g}" if args.vision_minutes else "")
               + (f" --vision-lr {args.vision_lr:g}" if args.vision_minutes and args.vision_lr
                  else "")
               + (f" --vision-lesion-rate {args.vision_lesion_rate:g}"
                  if args.vision_minutes and args.vision_lesion_rate != 0.7 else "")
               + (f" --vision-dark-lesions {args.vision_dark_lesions:g}"
                  if args.vision_minutes and args.vision_dark_lesions != 0.5 else "")
               + (f" --language-minutes {args.language_minutes:g}" if args.language_minutes
                  else "")
               + (f" --language-lesion-rate {args.language_lesion_rate:g}"
                  if (args.language_minutes or args.reading_minutes) and
                  args.language_lesion_rate != 0.8 else "")
               + (f" --reading-minutes {args.reading_minutes:g}" if args.reading_minutes
                  else "")
               + (f" --reading-pool {args.reading_pool}" if args.reading_minutes and
                  args.reading_pool else "")
               + (f" --track-minutes {args.track_minutes:g}" if args.track_minutes else "")
               + (f" --lr {args.lr:g}" if args.lr != 6e-4 else "")
               + (f" --lesion-touch {args.lesion_touch:g}" if args.lesion_touch else "")
               + (f" --lesion-location {args.lesion_location:g}" if args.lesion_location
                  else "")
               + (f" --lesion-patches {args.lesion_patches:g}" if args.lesion_patches else "")
               + (f" --lesion-attention {args.lesion_attention:g}" if args.lesion_attention
                  else "")
               + (f" --token-position {args.token_position:g}" if args.token_position else "")
               + (f" --synthetic-lesions {args.synthetic_lesions:g}"
                  if args.synthetic_lesions != 1.0 else "")
               + (f" --text-turns {args.text_turns}" if args.text_turns != 1 else "")
               + (f" --fact-weight {args.fact_weight:g}" if args.fact_weight != 1.0 else "")
               + (f" --absent-codes {args.absent_codes}" if args.absent_codes else "")
               + (" --fold-layer-scale" if args.fold_layer_scale else "")
               + ((f" --init {args.init}" if from_bundle else " --init PREVIOUS/checkpoint.pt")
                  if init else ""))
    earlier = checkpoint_history(init) if init else []

    def save_checkpoint() -> None:
        minutes = (time.perf_counter() - origin) / 60
        _save(os.path.join(args.work, "checkpoint.pt"),
              {"model": model.state_dict(), "config": config.to_dict(),
               "training": trainer.training_state(), "step": trainer.step_no,
               "sam_steps": phase_steps.get("mask-decoder", 0),
               "sam_minutes": args.sam_minutes,
               "phase_steps": dict(phase_steps), "minutes": minutes,
               "budget_minutes": args.minutes,
               "history": earlier + [run_record(command, phase_steps, trainer.step_no,
                                                minutes)]})

    def held_out(seed: int) -> Sampler:
        """Held-out slices, their lesions in the scans' own rendering (as the bar counts)."""
        sampler = Sampler(subs, CHAT, True, seed)
        sampler.synthetic_lesions = 0.0
        return sampler

    def probe(reports: bool = False, tokens: bool = False) -> None:
        model.eval()
        if tokens:  # what the image tokens tell of held-out lesions (a fixed draw)
            with torch.no_grad():
                told = location_probe(trainer, held_out(SEED + 11))
            say("probe tokens: " + ", ".join(f"{k} {v:.2f}" for k, v in told.items()))
        for name, case in probes:
            dice = mask_probe(trainer, case)
            say(f"probe {name} (from [SEG] / from code): " +
                ", ".join(f"{t} {d:.2f}/{c:.2f}" for t, (d, c) in dice.items()))
        if reports:  # greedy reports on held-out lesion and normal slices (a fixed draw)
            from demo.evaluate import lesion_reports

            with torch.no_grad():
                les = lesion_reports(model.parts(), tokenizer, settings, held_out(SEED + 7), 16)
            say(f"probe reports: lesion place {les['location_rate']:.2f}, side "
                f"{les['side_rate']:.2f}, lesion claimed on normal slices "
                f"{les['false_positive_rate']:.2f}")
        model.train()

    # Phases before the full steps, each one part of the model on its own cheaper step:
    # the mask decoder on the target codes (no language model, a fifth of a full step's cost),
    # the vision encoder and language model on the text answers (no SAM2), SAM2's memory path
    # on longer stacks. The full steps then train everything together.
    origin = start = time.perf_counter()
    phases = (("mask-decoder", args.sam_minutes, trainer.sam_step, False),
              ("vision", args.vision_minutes, trainer.vision_step, True),
              ("vision-language", args.language_minutes, trainer.language_step, True),
              ("reading", args.reading_minutes, trainer.reading_step, True),
              ("tracking", args.track_minutes, trainer.track_step, True))
    phase_steps: Dict[str, int] = {}
    for name, minutes, step_fn, decay in phases:
        reports = name in ("vision-language", "reading")
        tokens = name in ("vision", "vision-language")
        peak = args.vision_lr if name == "vision" and args.vision_lr else args.lr
        steps, running, begin = 0, {}, time.perf_counter()
        while time.perf_counter() - begin < minutes * 60.0:
            steps += 1
            q = (time.perf_counter() - begin) / (minutes * 60.0)
            lr = peak * min(1.0, steps / 50) * \
                ((0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * q))) if decay else 1.0)
            stats = step_fn(lr)
            for k, v in stats.items():
                running[k] = 0.98 * running.get(k, v) + 0.02 * v
            if steps % 100 == 0:
                say(f"{name} step {steps} lr {lr:.2e} " +
                    " ".join(f"{k} {v:.3f}" for k, v in running.items()))
            if steps % 500 == 0:
                probe(reports, tokens)
        phase_steps[name] = steps
        if steps:
            say(f"{name} phase: {steps} steps in {(time.perf_counter() - begin) / 60:.1f} min")
            probe(reports, tokens)
            save_checkpoint()
    budget -= time.perf_counter() - start
    start = time.perf_counter()
    # The learning rate follows the time budget: its schedule runs over the steps that fit.
    running = {}
    while trainer.step_no < args.max_steps:
        elapsed = time.perf_counter() - start
        if elapsed > budget:
            break
        if trainer.step_no > 20:
            per_step = elapsed / trainer.step_no
            trainer.opts.steps = min(args.max_steps, int(budget / per_step))
        stats = trainer.step()
        for k, v in stats.items():
            if k != "skipped":
                running[k] = 0.98 * running.get(k, v) + 0.02 * v
        if "skipped" in stats:
            say(f"step {trainer.step_no}: non-finite loss, update skipped: "
                f"{trainer.skipped[-1]}")
        if trainer.step_no % 25 == 0:
            say(f"step {trainer.step_no}/{trainer.opts.steps} lr {trainer.lr_at(trainer.step_no):.2e} "
                + " ".join(f"{k} {v:.3f}" for k, v in running.items()))
        if trainer.step_no % 100 == 0:
            probe(trainer.step_no % 500 == 0)
        if trainer.step_no % 200 == 0:
            save_checkpoint()
    save_checkpoint()
    minutes = (time.perf_counter() - origin) / 60
    say(f"done: {run_record('', phase_steps, trainer.step_no, 0)['steps']} in "
        f"{minutes:.1f} min")
    return 0


def _load_work(work: str):
    """(checkpoint, model in eval mode, its tokenizer's path, tokenizer, settings) of a
    training folder's checkpoint.pt."""
    ck = torch.load(os.path.join(work, "checkpoint.pt"))
    config = ModelConfig.from_dict(ck["config"])
    model = UniBiomedModel(config)
    model.load_state_dict(ck["model"])
    model.eval()
    tok_path = os.path.join(work, "tokenizer.model")
    tokenizer = load_tokenizer("sentencepiece", tok_path, list(P.ADDED_TOKENS))
    return ck, model, tok_path, tokenizer, demo_settings(config, tokenizer.token_to_id("</s>"))


def cmd_export(args: argparse.Namespace) -> int:
    ck, model, tok_path, tokenizer, settings = _load_work(args.work)
    config = model.config
    special = {t: tokenizer.token_to_id(t) for t in P.ADDED_TOKENS}
    card = os.path.join(args.out, "MODEL_CARD.md")
    template = os.path.join(TOOLS, "demo", "model_card_template.md")
    kept = open(card if os.path.exists(card) else template, encoding="utf-8").read()
    B.write_bundle(
        args.out, model.export_parts(), settings, "sentencepiece", [tok_path], special,
        config.to_dict(), torch.bfloat16, name="unibiomed-demo",
        description=("Demonstration model of the UniBiomed architecture trained on one template "
                     "subject (ch2 T1 MRI, synthetic contrasts and lesions) and one head CT; "
                     "not for clinical use. See MODEL_CARD.md."),
        source={"kind": "trained", "recipe": "tools/make_demo_model.py", "seed": SEED,
                "steps": int(ck["step"]), "minutes": round(float(ck["minutes"]), 1),
                "history": checkpoint_history(ck)},
        demo=True)
    start, end = "<!-- training:start -->", "<!-- training:end -->"
    if start in kept and end in kept:
        head, rest = kept.split(start, 1)
        tail = rest.split(end, 1)[1]
        runs = checkpoint_history(ck)
        lines = [f"`{r['command']}`: {r['steps']} in {r['minutes']:.1f} min" for r in runs]
        text = ("Trained by " + lines[0] if len(runs) == 1 else
                f"Trained in {len(runs)} runs, each continuing from the checkpoint of the one "
                "before:\n\n" + "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))
                + "\n\nAll")
        kept = (head + start + "\n" + text + (" on two CPU cores" if len(runs) > 1 else
                                              ", on two CPU cores")
                + f" (seed {SEED}; training is not bit-reproducible across machines).\n"
                + end + tail)
    with open(card, "w", encoding="utf-8") as f:  # the figures come from `evaluate --card`
        f.write(kept)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"exported step {ck['step']} to {args.out}: {size / 2**20:.1f} MiB")
    return 0


def cmd_reading(args: argparse.Namespace) -> int:
    from demo.lesion_reading import lesion_detection, lesion_reading

    ck, model, _, tokenizer, settings = _load_work(args.work)
    torch.set_num_threads(args.threads)
    subs = subjects()
    figures = lesion_reading(model, tokenizer, settings, subs, CHAT, cases=args.cases)
    if "patch_head" in ck.get("training", {}):  # the vision phase's lesion-patch head
        figures.update(lesion_detection(model, ck["training"]["patch_head"], settings, subs,
                                        CHAT))
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")
    return 0


def cmd_detection(args: argparse.Namespace) -> int:
    from demo import vision_probe

    torch.set_num_threads(args.threads)
    ck = bundle_checkpoint(args.model)
    model = UniBiomedModel(ModelConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    tokenizer = load_tokenizer("sentencepiece", os.path.join(args.model, "tokenizer.model"),
                               list(P.ADDED_TOKENS))
    settings = demo_settings(model.config, tokenizer.token_to_id("</s>"))
    encoder = model.export_parts()["vision_encoder"]
    if args.reinit:
        fresh = build_model(model.config, SEED + 1).export_parts()["vision_encoder"]
        vision_probe.reinitialise(encoder, fresh, position_std=0.02)
    subs = subjects()
    train, held = Sampler(subs, CHAT, False, SEED + 11), Sampler(subs, CHAT, True, SEED + 99)
    train.synthetic_lesions = held.synthetic_lesions = args.synthetic_lesions
    rows = vision_probe.run(encoder, settings, train, held, args.minutes, args.pool, args.held,
                            args.lr, log=lambda m: print(m, flush=True))
    if args.json:
        with open(args.json + ".tmp", "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from demo import evaluate, model_card

    engine = args.engine if args.engine and os.path.exists(args.engine) else None
    report = evaluate.run(args.model, DATA, subjects(), engine, args.lesions,
                          log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(report, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(model_card.figures(report))
    if args.card:
        model_card.write(args.model, report)
    return 0


#: The engine's parity cases on the demo bundle (tests/data/demo-golden): an unseen scan.
DEMO_CASES = (
    ("pd_ventricles_segment", "itk/BrainProtonDensitySlice.png", None, "segment",
     "lateral ventricles", ""),
    ("t1_diagnose", "itk/BrainT1Slice.png", None, "diagnose", "", ""),
    ("pd_report", "itk/BrainProtonDensitySlice.png", None, "report", "", ""),
    ("t1_vqa", "itk/BrainT1Slice.png", None, "vqa", "", "Where is the lesion?"),
)


def cmd_goldens(args: argparse.Namespace) -> int:
    """Goldens of the reference pipeline on the exported bundle, for the engine's parity tests;
    the eager reference runs on the checkpoint's weights rounded to the bundle's bf16."""
    from unibiomed_ref.goldens import write_goldens

    torch.set_num_threads(1)
    ck = torch.load(os.path.join(args.work, "checkpoint.pt"))
    model = UniBiomedModel(ModelConfig.from_dict(ck["config"]))
    model.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in ck["model"].items()})
    model.eval()
    ref = os.path.relpath(os.path.abspath(args.model), os.path.abspath(args.out))
    write_goldens(args.model, args.out, model.parts(), DATA, cases_2d=DEMO_CASES,
                  bundle_ref=ref)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """The project's benchmark datasets for `unibiomed eval` (benchmarks/data)."""
    from demo.benchmark import write_benchmarks

    for folder in write_benchmarks(args.out, DATA, subjects(), CHAT):
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder)
                   for f in fs)
        print(f"{folder}: {size / 1024:.0f} KiB")
    return 0


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help="train the demo model into --work")
    add_train_arguments(p)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("export", help="export --work's checkpoint as a bundle")
    p.add_argument("--work", required=True)
    p.add_argument("-o", "--out", default=os.path.join(ROOT, "models", "default"))
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("goldens", help="reference goldens of the exported bundle")
    p.add_argument("--work", required=True)
    p.add_argument("-m", "--model", default=os.path.join(ROOT, "models", "default"))
    p.add_argument("-o", "--out", default=os.path.join(ROOT, "tests", "data", "demo-golden"))
    p.set_defaults(fn=cmd_goldens)
    p = sub.add_parser("evaluate", help="held-out figures of a bundle")
    p.add_argument("-m", "--model", default=os.path.join(ROOT, "models", "default"))
    p.add_argument("--engine", default=os.path.join(ROOT, "build", "src", "unibiomed"),
                   help="the unibiomed binary for the whole-volume runs (skipped if absent)")
    p.add_argument("--lesions", type=int, default=60, help="synthetic lesion cases")
    p.add_argument("--json", help="write the full report here")
    p.add_argument("--card", action="store_true", help="rewrite the bundle's MODEL_CARD.md")
    p.set_defaults(fn=cmd_evaluate)
    p = sub.add_parser("reading", help="how --work's checkpoint reads held-out lesions' sides")
    p.add_argument("--work", required=True)
    p.add_argument("--cases", type=int, default=10, help="held-out lesion reports")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(fn=cmd_reading)
    p = sub.add_parser("detection", help="how fast the vision encoder learns to find lesions")
    p.add_argument("-m", "--model", default=os.path.join(ROOT, "models", "default"))
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--pool", type=int, default=1200, help="training slices, drawn once")
    p.add_argument("--held", type=int, default=240, help="held-out lesion slices")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--reinit", action="store_true", help="start from a fresh vision encoder")
    p.add_argument("--synthetic-lesions", type=float, default=0.0,
                   help="share of lesion slices that may show a synthetic contrast")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the evaluations here")
    p.set_defaults(fn=cmd_detection)
    p = sub.add_parser("benchmark", help="the project's benchmark datasets for unibiomed eval")
    p.add_argument("-o", "--out", default=os.path.join(ROOT, "benchmarks", "data"))
    p.set_defaults(fn=cmd_benchmark)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
