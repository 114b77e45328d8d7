// Writes tests/fixtures/tokenizer/opt-mini-gcide.json: reference token ids for varied texts,
// produced by HuggingFace's own JS tokenizer (independent of our C++ one), fully offline.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const modelDir = resolve(root, "models/pretrained/opt-mini-gcide");
const outFile = resolve(root, "tests/fixtures/tokenizer/opt-mini-gcide.json");

const tokenizerJson = JSON.parse(readFileSync(resolve(modelDir, "tokenizer.json"), "utf8"));
// The checkpoint ships no tokenizer_config.json; the defaults are what we want.
const tokenizer = new Tokenizer(tokenizerJson, {});

// Varied texts. Avoided on purpose: U+0085, U+180E and U+FEFF, where JS RegExp's \s differs
// from the Rust tokenizers' (Oniguruma) whitespace, so this reference would not be HF's answer.
const texts = [
  "",
  "a",
  " ",
  "\n",
  "Hello world",
  "Hello, world! How are you?",
  "The quick brown fox jumps over the lazy dog.",
  "dictionary definition: (n.) a word used to name a thing.",
  "I'm sure they'll say it's what we've done, and I'd've known.",
  "DON'T SHOUT: IT'S LOUD",
  "'s at the start and the end's",
  "quotes \"double\" and 'single' and `back`",
  "1234567890 and 3.14159 or 1,000,000",
  "multiple   spaces    here",
  "trailing spaces   ",
  "   leading spaces",
  "  two leading, two trailing  ",
  "line one\nline two\n\nline four",
  "ends with newline\n",
  "tab\tseparated\tvalues\t",
  "mixed \t\n whitespace \r\n end",
  "a\r\nb",
  "caf\u00e9 na\u00efve r\u00e9sum\u00e9 Z\u00fcrich",
  "U\u0308 combining e\u0301 marks",
  "\u00a0non-breaking\u00a0space",
  "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
  "\u4e2d\u6587\uff0c\u6807\u70b9\u3002",
  "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0438 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
  "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
  "emoji \u{1F600}\u{1F44D}\u{1F3FD} and \u{1F1EB}\u{1F1F7}",
  "numbers \u00bd \u00b2 \u0663 \u2166",
  "hyphen-ated words \u2014 em dash \u2013 en dash\u2026",
  "<s>start and end</s>",
  "pad<pad>between<pad><pad>",
  "unknown <unk> token",
  "</s></s>",
  "not special: <s >, </ s>, <S>, <s",
  "http://example.com/path?query=1&x=y",
  "email@example.org #hashtag $100 50% off",
  "C++ and std::vector<int> x = {1, 2};",
  "ALLCAPS and camelCase and snake_case",
  "Supercalifragilisticexpialidocious",
  "abc".repeat(300),
];

const cases = texts.map((text) => ({
  text,
  ids: tokenizer.encode(text, { add_special_tokens: false }).ids,
}));

mkdirSync(dirname(outFile), { recursive: true });
// One case per line keeps diffs readable.
writeFileSync(outFile, "[\n" + cases.map((c) => JSON.stringify(c)).join(",\n") + "\n]\n");
console.log(`wrote ${cases.length} cases to ${outFile}`);
