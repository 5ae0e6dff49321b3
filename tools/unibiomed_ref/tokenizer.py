"""Reference tokenizers: SentencePiece and Qwen2-style byte-level BPE.

Used by the reference pipeline and the bundle exporter (never at run time). Two implementations
behind one small interface, :class:`Tokenizer`:

* :class:`ByteLevelBpeTokenizer` reads a Hugging Face ``tokenizer.json`` of the Qwen2 kind (the
  UniBiomed language model's tokenizer) and reproduces the ``tokenizers`` library's encoding:
  added tokens split out first (leftmost, longest), NFC, the ``Split`` regex (``Isolated``), the
  byte-to-unicode mapping, BPE by merge rank, and the ``ByteLevel`` decoder.
* :class:`SentencePieceTokenizer` wraps the ``sentencepiece`` module (the InternLM2 siblings use
  SentencePiece; tests train a tiny model with :func:`train_sentencepiece`).

Semantics shared by both:

* ``encode`` never adds BOS/EOS. Every string in ``special_tokens`` that occurs in the text is
  matched before normal tokenisation (leftmost match, longest first) and becomes its own id.
* ``decode(ids, skip_special=True)`` drops the tokens flagged special; unknown ids are skipped
  (as ``tokenizers`` does). Invalid UTF-8 becomes U+FFFD, only at the end of decoding.
* :class:`StreamDecoder` turns ids into text one id at a time, holding back an incomplete
  multi-byte UTF-8 tail so that streamed output never shows U+FFFD in the middle of a character.
"""

from __future__ import annotations

import abc
import codecs
import functools
import heapq
import json
import os
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

import regex

__all__ = [
    "Tokenizer",
    "StreamDecoder",
    "AddedToken",
    "SentencePieceTokenizer",
    "ByteLevelBpeTokenizer",
    "bytes_to_unicode",
    "train_sentencepiece",
    "load_tokenizer",
]


# --------------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------------
class Tokenizer(abc.ABC):
    """What the reference pipeline and the exporter need from a tokenizer."""

    kind: str  # 'sentencepiece' | 'bpe'

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special/added tokens in the text are matched first. No BOS/EOS."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of ``ids``; invalid UTF-8 is replaced (U+FFFD) at the end."""

    @abc.abstractmethod
    def token_to_id(self, token: str) -> int:
        """Id of a vocabulary token (in the model's own spelling); KeyError when absent."""

    @abc.abstractmethod
    def id_to_token(self, id: int) -> str:
        """Vocabulary token (model spelling, e.g. 'Ġthe' or '▁the') of an id; KeyError if none."""

    @abc.abstractmethod
    def token_bytes(self, id: int) -> bytes:
        """The UTF-8 bytes one id contributes to decoded text (b'' for control tokens)."""

    @abc.abstractmethod
    def is_special(self, id: int) -> bool:
        """Whether ``decode(..., skip_special=True)`` drops this id."""

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids: one more than the largest id, added tokens included."""

    @property
    @abc.abstractmethod
    def special_tokens(self) -> dict[str, int]:
        """Text -> id of every token matched verbatim in the text before tokenisation."""

    def stream_decoder(self, skip_special: bool = False) -> "StreamDecoder":
        return StreamDecoder(self, skip_special=skip_special)


class StreamDecoder:
    """Incremental decoding for streamed generation.

    ``push(id)`` returns the text that became complete with this id (possibly ''), holding back
    an incomplete UTF-8 sequence at the end; ``flush()`` returns what is left (an incomplete tail
    becomes U+FFFD). The concatenation of all returned pieces equals ``tokenizer.decode(ids)``
    for byte-level BPE.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = False):
        self._tok = tokenizer
        self._skip = skip_special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, id: int) -> str:
        if self._skip and self._tok.is_special(id):
            return ""
        try:
            data = self._tok.token_bytes(id)
        except KeyError:
            return ""
        return self._dec.decode(data, final=False)

    def push_many(self, ids: Iterable[int]) -> str:
        return "".join(self.push(i) for i in ids)

    def flush(self) -> str:
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out

    @property
    def pending(self) -> bool:
        """Whether bytes of an incomplete character are held back."""
        return bool(self._dec.getstate()[0])


# --------------------------------------------------------------------------------------------
# Added tokens (shared)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddedToken:
    id: int
    content: str
    special: bool = True
    normalized: bool = False
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


class _AddedTokenSplitter:
    """Leftmost-longest matching of added tokens (what ``tokenizers`` does with Aho-Corasick).

    ``split(text)`` returns a list of ``(piece, token_or_None)``; pieces that are tokens drop the
    whitespace their ``lstrip``/``rstrip`` flags swallow.
    """

    def __init__(self, tokens: Sequence[AddedToken]):
        self.tokens = {t.content: t for t in tokens if t.content}
        if self.tokens:
            # Longest first: the regex alternation is leftmost-first, so this is leftmost-longest.
            alts = sorted(self.tokens, key=lambda s: (-len(s), s))
            self.pattern = regex.compile("|".join(regex.escape(s) for s in alts))
        else:
            self.pattern = None

    def split(self, text: str) -> list[tuple[str, AddedToken | None]]:
        if self.pattern is None or not text:
            return [(text, None)] if text else []
        spans: list[tuple[int, int, AddedToken]] = []
        prev_stop = 0
        for m in self.pattern.finditer(text):
            tok = self.tokens[m.group(0)]
            start, stop = m.span()
            if tok.single_word:
                if start > 0 and _is_word_char(text[start - 1]):
                    continue
                if stop < len(text) and _is_word_char(text[stop]):
                    continue
            if tok.lstrip:
                while start > prev_stop and text[start - 1].isspace():
                    start -= 1
            if tok.rstrip:
                while stop < len(text) and text[stop].isspace():
                    stop += 1
            if spans and start < spans[-1][1]:  # rstrip of the previous one overlapped
                start = spans[-1][1]
            spans.append((start, stop, tok))
            prev_stop = stop
        out: list[tuple[str, AddedToken | None]] = []
        pos = 0
        for start, stop, tok in spans:
            if start > pos:
                out.append((text[pos:start], None))
            out.append((tok.content, tok))
            pos = max(pos, stop)
        if pos < len(text):
            out.append((text[pos:], None))
        return out


# --------------------------------------------------------------------------------------------
# Byte-level BPE (Qwen2 tokenizer.json)
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (256 entries)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD"}


def _normalizer_forms(cfg) -> list[str]:
    if cfg is None:
        return []
    t = cfg.get("type")
    if t in _NORMALIZERS:
        return [t]
    if t == "Sequence":
        return [f for c in cfg.get("normalizers", []) for f in _normalizer_forms(c)]
    raise ValueError(f"unsupported normalizer {t!r}")


class ByteLevelBpeTokenizer(Tokenizer):
    """Byte-level BPE with the semantics of Hugging Face ``tokenizers`` (Qwen2 configuration)."""

    kind = "bpe"
    _CACHE_MAX_WORD = 256  # longer words are rare and not worth caching

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Sequence[tuple[str, str]],
        added_tokens: Sequence[AddedToken] = (),
        split_pattern: str | None = None,
        split_behavior: str = "Isolated",
        normalizer_forms: Sequence[str] = ("NFC",),
        ignore_merges: bool = False,
        cache_size: int = 10000,
    ):
        self.vocab = dict(vocab)
        self.ranks: dict[tuple[str, str], int] = {}
        for i, (a, b) in enumerate(merges):
            self.ranks[(a, b)] = i  # a later duplicate wins, as in tokenizers
        self.ignore_merges = ignore_merges
        self.normalizer_forms = tuple(normalizer_forms)
        if split_behavior not in ("Isolated", "Removed"):
            raise ValueError(f"unsupported Split behavior {split_behavior!r}")
        self.split_behavior = split_behavior
        self.split_pattern = split_pattern
        self._split_re = regex.compile(split_pattern) if split_pattern is not None else None

        self.added = list(added_tokens)
        self._added_by_id = {t.id: t for t in self.added}
        self._added_by_content = {t.content: t for t in self.added}
        self._split_raw = _AddedTokenSplitter([t for t in self.added if not t.normalized])
        self._split_norm = _AddedTokenSplitter([t for t in self.added if t.normalized])

        self.id_to_vocab = {i: t for t, i in self.vocab.items()}
        self._b2u = bytes_to_unicode()
        self._u2b = {u: b for b, u in self._b2u.items()}
        self._bpe_cached = functools.lru_cache(maxsize=cache_size)(self._bpe_ids)

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_tokenizer_json(
        cls, path: str, added_tokens: Sequence[str] | None = None
    ) -> "ByteLevelBpeTokenizer":
        """Load a Qwen2-type ``tokenizer.json``.

        ``added_tokens`` (e.g. ``[SEG]``, ``<img>``): each must be an added token of the file or
        a vocabulary token; ones that are neither are appended with the next free ids, special and
        not normalised, as ``tokenizer.add_tokens(..., special_tokens=True)`` does.
        """
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        model = cfg["model"]
        if model.get("type", "BPE") != "BPE":
            raise ValueError(f"model type {model.get('type')!r} is not BPE")
        for key in ("continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(key):
                raise ValueError(f"unsupported BPE option {key}={model[key]!r}")
        if model.get("dropout"):
            raise ValueError("BPE dropout is not supported")
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]

        split_pattern, behavior = None, "Isolated"
        pre = cfg.get("pre_tokenizer")
        pres = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
        saw_byte_level = False
        for p in pres:
            if p["type"] == "Split":
                if split_pattern is not None:
                    raise ValueError("only one Split pre-tokenizer is supported")
                pat = p["pattern"]
                split_pattern = pat["Regex"] if "Regex" in pat else regex.escape(pat["String"])
                behavior = p.get("behavior", "Isolated")
                if p.get("invert"):
                    raise ValueError("inverted Split is not supported")
            elif p["type"] == "ByteLevel":
                saw_byte_level = True
                if p.get("add_prefix_space"):
                    raise ValueError("ByteLevel add_prefix_space is not supported")
                if p.get("use_regex", True):
                    if split_pattern is not None:
                        raise ValueError("Split followed by ByteLevel(use_regex) is not supported")
                    split_pattern = _GPT2_PATTERN
            else:
                raise ValueError(f"unsupported pre-tokenizer {p['type']!r}")
        if not saw_byte_level:
            raise ValueError("not a byte-level tokenizer (no ByteLevel pre-tokenizer)")
        dec = cfg.get("decoder")
        if dec is None or dec.get("type") != "ByteLevel":
            raise ValueError(f"unsupported decoder {dec!r}")

        vocab = model["vocab"]
        added = [
            AddedToken(
                id=int(t["id"]),
                content=t["content"],
                special=bool(t.get("special", False)),
                normalized=bool(t.get("normalized", not t.get("special", False))),
                lstrip=bool(t.get("lstrip", False)),
                rstrip=bool(t.get("rstrip", False)),
                single_word=bool(t.get("single_word", False)),
            )
            for t in cfg.get("added_tokens", [])
        ]
        present = {t.content for t in added}
        next_id = max([*vocab.values(), *(t.id for t in added), -1]) + 1
        for s in added_tokens or ():
            if s in present:
                continue
            tid = vocab.get(s)
            if tid is None:
                tid, next_id = next_id, next_id + 1
            added.append(AddedToken(id=tid, content=s, special=True, normalized=False))
            present.add(s)
        return cls(
            vocab=vocab,
            merges=merges,
            added_tokens=added,
            split_pattern=split_pattern,
            split_behavior=behavior,
            normalizer_forms=_normalizer_forms(cfg.get("normalizer")),
            ignore_merges=bool(model.get("ignore_merges", False)),
        )

    # ---- interface ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return max([*self.vocab.values(), *self._added_by_id, -1]) + 1

    @property
    def special_tokens(self) -> dict[str, int]:
        return {t.content: t.id for t in self.added}

    def token_to_id(self, token: str) -> int:
        t = self._added_by_content.get(token)
        if t is not None:
            return t.id
        return self.vocab[token]

    def id_to_token(self, id: int) -> str:
        t = self._added_by_id.get(id)
        if t is not None:
            return t.content
        return self.id_to_vocab[id]

    def is_special(self, id: int) -> bool:
        t = self._added_by_id.get(id)
        return t is not None and t.special

    def token_bytes(self, id: int) -> bytes:
        t = self._added_by_id.get(id)
        if t is not None:
            return t.content.encode("utf-8")
        return self._piece_bytes(self.id_to_vocab[id])

    def _piece_bytes(self, piece: str) -> bytes:
        try:
            return bytes(self._u2b[c] for c in piece)
        except KeyError:  # not a byte-level piece: its own UTF-8 (as the ByteLevel decoder does)
            return piece.encode("utf-8")

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece, tok in self._split_raw.split(text):
            if tok is not None:
                ids.append(tok.id)
                continue
            for form in self.normalizer_forms:
                piece = unicodedata.normalize(form, piece)
            for sub, tok2 in self._split_norm.split(piece):
                if tok2 is not None:
                    ids.append(tok2.id)
                else:
                    for word in self.pre_tokenize(sub):
                        ids.extend(self._bpe_word(word))
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        # Added tokens are emitted verbatim; the byte runs between them go through the ByteLevel
        # decoder (tokenizers >= 0.20 and transformers.js both do this).
        out: list[str] = []
        buf = bytearray()
        for i in ids:
            i = int(i)
            t = self._added_by_id.get(i)
            if t is not None:
                if skip_special and t.special:
                    continue
                if buf:
                    out.append(buf.decode("utf-8", errors="replace"))
                    buf.clear()
                out.append(t.content)
                continue
            piece = self.id_to_vocab.get(i)
            if piece is None:
                continue  # unknown id: skipped, as tokenizers does
            buf += self._piece_bytes(piece)
        if buf:
            out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    # ---- pipeline stages (public for tests and the exporter) ------------------------------------
    def pre_tokenize(self, text: str) -> list[str]:
        """Normalised text -> byte-level words (after the Split regex and the byte mapping)."""
        if not text:
            return []
        if self._split_re is None:
            parts = [text]
        else:
            parts = []
            pos = 0
            for m in self._split_re.finditer(text):
                s, e = m.span()
                if s > pos:
                    parts.append(text[pos:s])
                if e > s and self.split_behavior == "Isolated":
                    parts.append(text[s:e])
                pos = max(pos, e)
            if pos < len(text):
                parts.append(text[pos:])
        b2u = self._b2u
        return ["".join(b2u[b] for b in p.encode("utf-8")) for p in parts if p]

    def _bpe_word(self, word: str) -> list[int]:
        if self.ignore_merges:
            i = self.vocab.get(word)
            if i is not None:
                return [i]
        if len(word) <= self._CACHE_MAX_WORD:
            return list(self._bpe_cached(word))
        return list(self._bpe_ids(word))

    def _bpe_ids(self, word: str) -> tuple[int, ...]:
        out = []
        for p in self.bpe(word):
            i = self.vocab.get(p)
            if i is None:
                # Byte-level vocabularies hold all 256 byte characters; anything else is an error
                # in the file rather than unknown text.
                raise KeyError(f"BPE piece {p!r} not in the vocabulary")
            out.append(i)
        return tuple(out)

    def bpe(self, word: str) -> list[str]:
        """Merge a byte-level word by rank: lowest rank first, leftmost on ties (heap based)."""
        syms: list[str | None] = list(word)
        n = len(syms)
        if n <= 1:
            return list(word)
        ranks = self.ranks
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prv = list(range(-1, n - 1))
        heap = []
        for i in range(n - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None:
                heap.append((r, i, syms[i], syms[i + 1]))
        heapq.heapify(heap)
        while heap:
            r, i, a, b = heapq.heappop(heap)
            j = nxt[i]
            if j < 0 or syms[i] != a or syms[j] != b:
                continue  # stale entry
            merged = a + b
            syms[i] = merged
            syms[j] = None
            k = nxt[j]
            nxt[i] = k
            if k >= 0:
                prv[k] = i
                r2 = ranks.get((merged, syms[k]))
                if r2 is not None:
                    heapq.heappush(heap, (r2, i, merged, syms[k]))
            p = prv[i]
            if p >= 0:
                r2 = ranks.get((syms[p], merged))
                if r2 is not None:
                    heapq.heappush(heap, (r2, p, syms[p], merged))
        out = []
        i = 0
        while i >= 0:
            out.append(syms[i])
            i = nxt[i]
        return out


# --------------------------------------------------------------------------------------------
# SentencePiece
# --------------------------------------------------------------------------------------------
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model whose ``added_tokens`` are user-defined symbols of the model.

    The added tokens and the BOS/EOS control pieces are matched in the text before encoding;
    the rest is encoded by ``sentencepiece`` with no BOS/EOS. Decoding is ``sentencepiece``'s own.
    """

    kind = "sentencepiece"

    def __init__(self, model_path: str, added_tokens: Sequence[str] = ()):
        import sentencepiece as spm

        self.model_path = model_path
        self.sp = spm.SentencePieceProcessor(model_file=model_path)
        n = self.sp.get_piece_size()
        self._added: dict[str, int] = {}
        for s in added_tokens:
            i = self.sp.piece_to_id(s)
            if (
                i < 0
                or i >= n
                or self.sp.id_to_piece(i) != s
                or self.sp.is_control(i)
                or self.sp.is_unknown(i)
                or self.sp.is_byte(i)
                or self.sp.encode(s) != [i]
            ):
                raise ValueError(f"added token {s!r} is not a user-defined symbol of {model_path}")
            self._added[s] = i
        self._control = {
            self.sp.id_to_piece(i): i for i in range(n) if self.sp.is_control(i)
        }
        self._special = {**self._control, **self._added}
        self._special_ids = set(self._special.values())
        self._splitter = _AddedTokenSplitter(
            [AddedToken(id=i, content=s) for s, i in self._special.items()]
        )

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special)

    def token_to_id(self, token: str) -> int:
        i = self.sp.piece_to_id(token)
        if self.sp.id_to_piece(i) != token:
            raise KeyError(token)
        return i

    def id_to_token(self, id: int) -> str:
        if not 0 <= id < self.sp.get_piece_size():
            raise KeyError(id)
        return self.sp.id_to_piece(id)

    def is_special(self, id: int) -> bool:
        return id in self._special_ids

    def token_bytes(self, id: int) -> bytes:
        piece = self.id_to_token(id)
        if self.sp.is_control(id):
            return b""
        if self.sp.is_byte(id):
            return bytes([int(piece[3:5], 16)])
        if self.sp.is_unknown(id):
            return " \u2047 ".encode("utf-8")
        if id in self._special_ids:
            return piece.encode("utf-8")
        return piece.replace("\u2581", " ").encode("utf-8")

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece, tok in self._splitter.split(text):
            if tok is not None:
                ids.append(tok.id)
            else:
                ids.extend(self.sp.encode(piece, out_type=int))
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        n = self.sp.get_piece_size()
        keep = [int(i) for i in ids if 0 <= int(i) < n and not (skip_special and int(i) in self._special_ids)]
        return self.sp.decode(keep)


def train_sentencepiece(
    corpus_lines: Iterable[str],
    out_prefix: str,
    vocab_size: int,
    user_symbols: Sequence[str] = (),
    model_type: str = "bpe",
) -> str:
    """Train a small SentencePiece model; returns the ``.model`` path (``.vocab`` beside it).

    Deterministic (one thread, no sampling or shuffling). ``byte_fallback`` so any text encodes;
    identity normalisation with no dummy prefix and no whitespace folding, so a plain
    libsentencepiece decode gives the text back exactly (except a literal U+2581, which decodes
    as a space). Ids: 0 ``<unk>``, 1 ``<s>``, 2 ``</s>``, then ``user_symbols`` in order, then the
    256 byte pieces, then the learned pieces.
    """
    import sentencepiece as spm

    lines = [ln for text in corpus_lines for ln in text.split("\n") if ln]
    if not lines:
        raise ValueError("empty corpus")
    d = os.path.dirname(os.path.abspath(out_prefix))
    os.makedirs(d, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=out_prefix,
        model_type=model_type,
        vocab_size=vocab_size,
        user_defined_symbols=list(user_symbols),
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    path = out_prefix + ".model"
    sp = spm.SentencePieceProcessor(model_file=path)
    for k, s in enumerate(user_symbols):
        if sp.piece_to_id(s) != 3 + k:
            raise RuntimeError(f"user symbol {s!r} got id {sp.piece_to_id(s)}, expected {3 + k}")
    return path


def load_tokenizer(kind: str | None, path: str, added_tokens: Sequence[str] = ()) -> Tokenizer:
    """``kind`` 'sentencepiece' (a ``.model``) or 'bpe' (a ``tokenizer.json``); None guesses from
    the file name."""
    if kind is None:
        kind = "sentencepiece" if path.endswith(".model") else "bpe"
    if kind == "sentencepiece":
        return SentencePieceTokenizer(path, added_tokens)
    if kind == "bpe":
        return ByteLevelBpeTokenizer.from_tokenizer_json(path, added_tokens)
    raise ValueError(f"unknown tokenizer kind {kind!r}")
