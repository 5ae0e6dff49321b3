#!/usr/bin/python3
"""The C++ byte-level BPE tokenizer against the JS oracle on tools/tokenizer_oracle/corpus.txt.

Runs the C++ encoder (the test executable ``unibiomed_tokenizer_dump``) and the JS oracle
(``encode.mjs``: transformers.js' tokenizer code with the Qwen vocabulary) over every line of the
corpus (one JSON string per line), once with the file's own added tokens and once with the
UniBiomed tokens added, and requires identical ids and decoded text for every line (and that the
C++ StreamDecoder gives the decoded text). Installs the oracle with fetch.sh when it is not cached;
fails when node or npm is missing.

    /usr/bin/python3 tools/tokenizer_oracle/compare_cpp.py BUILD/tests/unibiomed_tokenizer_dump
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.environ.get("TOKENIZER_ORACLE_DIR", os.path.join(REPO_ROOT, ".cache", "npm-tokenizer"))
CORPUS = os.path.join(HERE, "corpus.txt")
UNIBIOMED_TOKENS = ["[SEG]", "<p>", "</p>", "<vp>", "</vp>", "<img>", "</img>", "<IMG_CONTEXT>"]


def read_corpus() -> list[str]:
    # Split on '\n' only: the corpus holds U+2028 and other line breaks inside its strings.
    with open(CORPUS, encoding="utf-8", newline="") as f:
        return [json.loads(line) for line in f.read().split("\n") if line.strip()]


def run_jsonl(command: list[str], texts: list[str]) -> list[dict]:
    data = "".join(json.dumps(t) + "\n" for t in texts).encode("utf-8")
    proc = subprocess.run(command, input=data, capture_output=True, timeout=600)
    if proc.returncode != 0:
        sys.exit(f"compare_cpp: {command[0]} failed ({proc.returncode}): "
                 f"{proc.stderr.decode('utf-8', 'replace')}")
    out = [json.loads(line) for line in proc.stdout.decode("utf-8").split("\n") if line]
    if len(out) != len(texts):
        sys.exit(f"compare_cpp: {command[0]} gave {len(out)} lines for {len(texts)}")
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dump = sys.argv[1]
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            print(f"compare_cpp: {tool} not found (the JS oracle needs Node.js and npm)",
                  file=sys.stderr)
            return 1
    fetched = subprocess.run([os.path.join(HERE, "fetch.sh")], capture_output=True, text=True,
                             timeout=900, env={**os.environ, "TOKENIZER_ORACLE_DIR": CACHE})
    if fetched.returncode != 0:
        print(f"compare_cpp: fetch.sh failed: {fetched.stderr}", file=sys.stderr)
        return 1
    json_path = fetched.stdout.strip().splitlines()[-1]
    corpus = read_corpus()

    failures: list[str] = []
    lines = tokens = 0
    for added in ([], UNIBIOMED_TOKENS):
        extra = ["--add-tokens", json.dumps(added)]
        cpp = run_jsonl([dump, json_path, *extra], corpus)
        js = run_jsonl(["node", os.path.join(HERE, "encode.mjs"), "--modules", CACHE, *extra], corpus)
        for text, got, exp in zip(corpus, cpp, js):
            lines += 1
            tokens += len(exp["ids"])
            if got["ids"] != exp["ids"] or got["decoded"] != exp["decoded"]:
                failures.append(f"added={len(added)} {text[:60]!r}: ids {got['ids'][:12]} vs "
                                f"{exp['ids'][:12]}, decoded {got['decoded'][:40]!r} vs "
                                f"{exp['decoded'][:40]!r}")
            elif got["streamed"] != got["decoded"]:
                failures.append(f"added={len(added)} {text[:60]!r}: streamed "
                                f"{got['streamed'][:40]!r} vs decoded {got['decoded'][:40]!r}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        print(f"{len(failures)} of {lines} lines differ", file=sys.stderr)
        return 1
    print(f"{lines} lines, {tokens} tokens, all identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
