"""The demo model's training data: ground truth from the open scans, slices as the engine shows
them, answers that are true to their masks, held-out slices never drawn for training.

    /usr/bin/python3 -m unittest tools.tests.test_demo_data
"""

from __future__ import annotations

import os
import sys
import unittest

import numpy as np
from scipy import ndimage

TOOLS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from demo import anatomy, slices, synth, texts  # noqa: E402
from demo.samples import HOLDOUT, Sampler, _swap_sides  # noqa: E402
from unibiomed_ref import prompt as P  # noqa: E402

DATA = os.environ.get("UNIBIOMED_DATA", os.path.join(ROOT, ".cache", "data"))
HAVE_DATA = os.path.exists(os.path.join(DATA, "mricron", "aal.nii.gz")) and \
    os.path.exists(os.path.join(DATA, "invesalius", "matrix.dat"))


@unittest.skipUnless(HAVE_DATA, "sample cache missing (tools/fetch_data.sh)")
class DemoData(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ch2 = anatomy.ch2_subject(DATA)
        cls.ct = anatomy.ct_subject(DATA)

    def ml(self, subject: anatomy.Subject, name: str) -> float:
        return float(subject.structures[name].sum() * np.prod(subject.spacing) / 1000.0)

    def test_structure_volumes_are_anatomical(self) -> None:
        self.assertTrue(1200 < self.ml(self.ch2, "brain") < 1900)
        self.assertTrue(10 < self.ml(self.ch2, "lateral ventricles") < 60)
        self.assertTrue(5 < self.ml(self.ch2, "left hippocampus") < 12)
        self.assertTrue(1000 < self.ml(self.ct, "brain") < 1700)
        self.assertTrue(300 < self.ml(self.ct, "skull") < 1000)
        s = self.ch2.structures
        self.assertFalse((s["lateral ventricles"] & s["frontal lobe"]).any())
        self.assertTrue((s["lateral ventricles"] <= s["brain"]).all())
        self.assertFalse((self.ct.structures["brain"] & self.ct.structures["skull"]).any())
        both = s["left frontal lobe"] | s["right frontal lobe"]
        self.assertTrue((both == s["frontal lobe"]).all())
        self.assertFalse((s["left frontal lobe"] & s["right frontal lobe"]).any())

    def test_left_is_low_i_in_ras_order(self) -> None:
        # AAL's Hippocampus_L lies at world x < 0, which is i < 90 on ch2's grid.
        i_left = np.argwhere(self.ch2.structures["left hippocampus"])[:, 0].mean()
        i_right = np.argwhere(self.ch2.structures["right hippocampus"])[:, 0].mean()
        self.assertLess(i_left, 90)
        self.assertGreater(i_right, 90)

    def test_axial_slices_are_radiological(self) -> None:
        k = 62  # through the hippocampi
        left = slices.take(self.ch2.structures["left hippocampus"], "axial", k)
        frontal = slices.take(self.ch2.structures["frontal lobe"], "axial", 100)
        self.assertEqual(left.shape, (217, 181))
        cols = np.argwhere(left)[:, 1]
        self.assertGreater(cols.mean(), 181 / 2)  # the subject's left on the image's right
        rows = np.argwhere(frontal)[:, 0]
        self.assertLess(rows.mean(), 217 / 2)  # anterior at the top
        cerebellum = slices.take(self.ch2.structures["cerebellum"], "coronal", 150)
        self.assertGreater(np.argwhere(cerebellum)[:, 0].mean(), 181 / 2)  # inferior below

    def test_cingulate_gyrus_goes_with_its_lobe(self) -> None:
        # world (x, y, z) mm -> voxel on ch2's 1 mm grid; anterior cingulate above the genu of
        # the corpus callosum is frontal, posterior cingulate parietal, insula no lobe
        import nibabel as nib

        img = nib.as_closest_canonical(nib.load(os.path.join(DATA, "mricron", "ch2.nii.gz")))
        inv = np.linalg.inv(img.affine)

        def at(name: str, x: float, y: float, z: float) -> bool:
            i, j, k = np.rint(inv[:3, :3] @ np.array([x, y, z]) + inv[:3, 3]).astype(int)
            return bool(self.ch2.structures[name][i, j, k])

        self.assertTrue(at("left frontal lobe", -6, 34, 20))
        self.assertTrue(at("right frontal lobe", 6, 34, 20))
        self.assertTrue(at("left parietal lobe", -6, -46, 28))
        self.assertFalse(any(at(f"{side} {lobe}", x, 4, 4) for side, x in (("left", -38),
                                                                            ("right", 40))
                             for lobe in anatomy.LOBES))

    def test_labels_follow_flips_and_crops(self) -> None:
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 11)
        for _ in range(20):
            case = sampler.image_case(seg_turns=4)
            for turn in case.turns:
                if turn.task == "segment" and turn.target in case.labels:
                    np.testing.assert_array_equal(turn.masks[0], case.labels[turn.target])
            for m in case.labels.values():
                self.assertEqual(m.shape[1:], case.pictures.shape[1:])
            # absent structures: none labelled, and each truly empty on the slice, under its
            # own name or (flipped case) the other side's
            absent = case.facts["absent"]
            self.assertFalse(set(absent) & set(case.labels))
            subject = self.ch2 if case.facts["subject"] == "ch2" else self.ct
            k = case.facts["slices"][0]
            for t in absent:
                empty = [not subject.structures[n][:, :, k].any() for n in (t, _swap_sides(t))]
                self.assertTrue(any(empty), (t, k))

    def test_flip_swaps_the_sides_of_absent_structures(self) -> None:
        from demo.samples import Case

        sampler = Sampler([self.ch2], P.ChatSettings(), False, 0)
        seed = next(n for n in range(100) if np.random.default_rng(n).random() < 0.5)
        sampler.rng = np.random.default_rng(seed)  # its first draw flips
        case = Case(np.zeros((1, 8, 8), np.uint8), [], {"absent": ["left thalamus", "brain"]})
        case = sampler._geometry(case)
        self.assertEqual(case.facts["absent"], ["right thalamus", "brain"])

    def test_training_never_draws_held_out_slices(self) -> None:
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 3)
        for name, ranges in HOLDOUT.items():
            for k in sampler.slices[name]:
                self.assertFalse(any(a - 2 <= k < b + 2 for a, b in ranges), (name, k))
        for _ in range(40):
            case = sampler.image_case()
            ranges = HOLDOUT[case.facts["subject"]]
            for k in case.facts["slices"]:
                self.assertFalse(any(a <= k < b for a, b in ranges))
        held = Sampler([self.ch2, self.ct], P.ChatSettings(), True, 3)
        self.assertEqual(len(held.slices["ch2"]), 24)

    def test_long_stacks_stay_in_training_and_run_past_their_target(self) -> None:
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 13)
        ended = 0
        for _ in range(30):
            case = sampler.stack_case(frames=6, max_step=4)
            ks = case.facts["slices"]
            steps = set(np.diff(ks).tolist())
            self.assertEqual(len(steps), 1)
            self.assertTrue(1 <= abs(steps.pop()) <= 4, ks)
            ranges = HOLDOUT[case.facts["subject"]]
            self.assertFalse(any(a <= k < b for k in ks for a, b in ranges), ks)
            mask = case.turns[0].masks[0]
            self.assertEqual(mask.shape, case.pictures.shape)
            self.assertGreater(int(mask[0].sum()), 0)
            ended += int(mask[-1].sum() == 0)
        # the tracking phase must see the target end, or the object score never learns 'absent'
        self.assertGreater(ended, 2)

    def test_answers_are_true_to_their_masks(self) -> None:
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 5)
        seen_lesions = 0
        for _ in range(60):
            case = sampler.image_case(lesion_rate=0.8)
            picture = case.pictures[0]
            self.assertEqual(picture.dtype, np.uint8)
            for turn in case.turns:
                self.assertEqual(turn.answer.count(P.SEG), len(turn.masks), turn.answer)
                for m in turn.masks:
                    self.assertEqual(m.shape[1:], picture.shape)
            lesion = case.facts["lesion"]
            if lesion is None:
                continue
            carriers = [t.masks[0][0] for t in case.turns
                        if t.target == "lesion" or "<p>lesion</p>" in t.answer]
            if not carriers:  # e.g. asked for the modality only
                continue
            seen_lesions += 1
            mask = carriers[0]
            head = picture > 20
            centre = np.argwhere(mask)[:, 1].mean()
            middle = np.argwhere(head)[:, 1].mean()
            if abs(centre - middle) > 8:  # clear of the midline
                # radiological: the subject's left is on the image's right
                self.assertEqual(lesion["side"], "left" if centre > middle else "right")
            for turn in case.turns:
                if "<p>lesion</p>" in turn.answer and "side" not in turn.answer \
                        and "lesion</p> [SEG]." not in turn.answer:
                    self.assertIn(f"{lesion['side']} {lesion['region']}", turn.answer)
        self.assertGreater(seen_lesions, 10)

    def test_location_labels_name_the_place_the_answers_name(self) -> None:
        from demo.token_labels import LOCATIONS, location_index

        self.assertEqual(len(set(LOCATIONS)), len(LOCATIONS))
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 13)
        named = 0
        for _ in range(40):
            case = sampler.image_case(lesion_rate=0.7)
            place = LOCATIONS[location_index(case)]
            if case.facts["lesion"] is None:
                self.assertEqual(place, "none")
                continue
            self.assertNotEqual(place, "none")
            for turn in case.turns:  # flipped cases included: the label follows the words
                if " in the " in turn.answer and "<p>lesion</p>" in turn.answer:
                    self.assertIn(f"in the {place}.", turn.answer)
                    named += 1
        self.assertGreater(named, 5)

    def test_text_turns_tell_one_slice_the_same_facts(self) -> None:
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 17)
        for _ in range(12):
            case = sampler.image_case(seg_turns=1, lesion_rate=1.0, text_turns=3)
            tasks = [t.task for t in case.turns]
            self.assertEqual(tasks[0], "segment")
            self.assertEqual(sorted(tasks[1:]), ["diagnose", "report", "vqa"])
            self.assertEqual(tasks[1], "report")
            lesion = case.facts["lesion"]
            for turn in case.turns[1:]:
                self.assertEqual(len(turn.masks), turn.answer.count(P.SEG))
                if lesion and " in the " in turn.answer:
                    self.assertIn(f"{lesion['side']} {lesion['region']}", turn.answer)
        two = sampler.image_case(seg_turns=0, lesion_rate=0.0, text_turns=2)
        self.assertEqual([t.task for t in two.turns][0], "report")
        self.assertEqual(len(two.turns), 2)

    def test_lesions_can_be_kept_to_the_scans_own_rendering(self) -> None:
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 19)
        sampler.synthetic_lesions = 0.0
        modes = {"lesion": set(), "normal": set()}
        for _ in range(40):
            case = sampler.image_case(seg_turns=0, lesion_rate=0.5)
            modes["lesion" if case.facts["lesion"] else "normal"].add(case.facts["mode"])
        self.assertNotIn("synth", modes["lesion"])
        self.assertTrue(modes["lesion"] >= {"stored", "window"})
        self.assertIn("synth", modes["normal"])  # slices without a lesion keep every rendering

    def test_share_of_bright_lesions(self) -> None:
        """Held-out draws are half bright; the vision phase may draw more dark ones, for one draw
        (image_case's bright_rate) or as the sampler's default (bright_lesions)."""
        counts = {}
        for rate, default in ((None, 0.5), (0.0, 0.5), (1.0, 0.5), (None, 0.0)):
            sampler = Sampler([self.ch2], P.ChatSettings(), False, 23)
            sampler.synthetic_lesions = 0.0
            sampler.bright_lesions = default
            lesions = [c.facts["lesion"] for c in
                       (sampler.image_case(seg_turns=0, lesion_rate=1.0, bright_rate=rate)
                        for _ in range(30))
                       if c.facts["lesion"]]
            self.assertGreater(len(lesions), 15)
            self.assertEqual(sampler.bright_lesions, default)  # a draw's rate is not kept
            counts[rate, default] = sum(bool(les["bright"]) for les in lesions) / len(lesions)
        self.assertEqual(counts[0.0, 0.5], 0.0)
        self.assertEqual(counts[1.0, 0.5], 1.0)
        self.assertEqual(counts[None, 0.0], 0.0)
        self.assertTrue(0.2 < counts[None, 0.5] < 0.8)

    def test_lesions_stand_out_from_the_parenchyma(self) -> None:
        """A hyperintense lesion is brighter than the tissue around it, a hypointense one darker,
        in every rendering (a lesion scaled from dark CSF under it was invisible)."""
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 11)
        seen, visible = 0, 0
        for _ in range(40):
            case = sampler.image_case(lesion_rate=1.0, seg_turns=0)
            if "lesion" not in case.labels:
                continue
            pic = case.pictures[0].astype(np.float32)
            mask = case.labels["lesion"][0]
            core = ndimage.binary_erosion(mask)
            ring = ndimage.binary_dilation(mask, iterations=4) & \
                ~ndimage.binary_dilation(mask, iterations=1)
            if core.sum() < 5:
                continue
            seen += 1
            step = pic[core].mean() - np.median(pic[ring])
            bright = case.facts["lesion"]["bright"]
            visible += int(step > 12 if bright else step < -12)
        self.assertGreater(seen, 15)
        self.assertGreaterEqual(visible / seen, 0.85)

    def test_lesions_lie_in_the_parenchyma(self) -> None:
        """No lesion voxel in CSF (sulci, cisterns, fourth ventricle; CT below 15 HU): a
        hypointense blob there is CSF replacing CSF, and its report would name a lobe falsely."""
        csf = {"ch2": self.ch2.structures["brain"] & (self.ch2.image < 60),
               "invesalius-ct": self.ct.structures["brain"] & (self.ct.image < 15)}
        sampler = Sampler([self.ch2, self.ct], P.ChatSettings(), False, 5)
        drawn = 0
        for subject in (self.ch2, self.ct):
            self.assertFalse((subject.lesion_space & csf[subject.name]).any(), subject.name)
            self.assertGreater(subject.lesion_space.sum(), 0.3 * subject.structures["brain"].sum()
                               if subject.modality == "MR" else 1000)
            for k in sampler.slices[subject.name][::12]:
                lesion = sampler._lesion(subject, k)
                if lesion is None:
                    continue
                inside = synth.lesion_volume_mask(subject.image.shape, lesion)
                drawn += 1
                self.assertGreater(inside.sum(), 0)
                self.assertFalse((inside & csf[subject.name]).any(), f"{subject.name} z{k}")
        self.assertGreater(drawn, 10)

    def test_parenchyma_levels_and_mr_lesion_contrast(self) -> None:
        lo, hi = synth.parenchyma_levels(np.arange(101, dtype=np.float32))
        self.assertAlmostEqual(lo, 10.0)
        self.assertAlmostEqual(hi, 90.0)
        volume = np.full((15, 15, 3), 80.0, np.float32)
        mask = np.zeros((9, 9, 1), bool)
        mask[1:8, 1:8] = True
        for bright in (True, False):
            lesion = synth.Lesion(mask, (2, 2, 1), np.zeros(mask.shape, np.float32), bright)
            v = volume.copy()
            synth.paint_lesion(v, lesion, np.random.default_rng(0), "MR", (40.0, 100.0))
            centre = v[6, 6, 1]
            if bright:  # at least 1.2 x the parenchyma's high level
                self.assertGreater(centre, 100.0)
            else:  # at most 0.6 x its low level
                self.assertLess(centre, 40.0)
            self.assertEqual(v[0, 0, 1], 80.0)  # outside the blob: untouched
        with self.assertRaises(ValueError):
            synth.paint_lesion(volume.copy(), lesion, np.random.default_rng(0), "MR")

    def test_synthesis_keeps_shape_and_range(self) -> None:
        rng = np.random.default_rng(0)
        labels = np.stack([slices.take(self.ch2.tissues, "axial", k) for k in (80, 81)])
        pics = synth.synthesize(labels, rng)
        self.assertEqual(pics.shape, labels.shape)
        self.assertGreaterEqual(pics.min(), 0.0)
        self.assertLessEqual(pics.max(), 255.0)
        again = synth.synthesize(labels, np.random.default_rng(0))
        np.testing.assert_array_equal(pics, again)
        # white and grey matter get different intensities in most draws
        wm = labels == anatomy.T["white matter"]
        gm = labels == anatomy.T["cortex"]
        self.assertGreater(abs(pics[wm].mean() - pics[gm].mean()), 1.0)


class DemoTexts(unittest.TestCase):
    def test_sides_and_contrast_words(self) -> None:
        rng = np.random.default_rng(1)
        lesion = {"side": "left", "region": "frontal lobe", "bright": True}
        self.assertIn("left frontal lobe", texts.report_answer(rng, "MR", lesion, False))
        self.assertIn("hyperintense", texts.report_answer(rng, "MR", lesion, False))
        self.assertIn("hypodense", texts.report_answer(rng, "CT", {**lesion, "bright": False},
                                                       False))
        self.assertEqual(texts.report_answer(rng, "CT", None, False), "No focal lesion is seen.")
        for _ in range(20):
            q, a = texts.vqa(rng, "MR", lesion)
            self.assertTrue(a.count(P.SEG) <= 1)
            if "Which side" in q or "left or the right" in q:
                self.assertIn("left side", a)


if __name__ == "__main__":
    unittest.main()
