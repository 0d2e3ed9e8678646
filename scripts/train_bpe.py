#!/usr/bin/env python3
"""Trains a small byte-level BPE tokenizer on JSONL text and writes it as a Hugging Face
tokenizer.json (plus tokenizer_config.json) that prefengine reads with `tokenizer: {kind: hf_bpe}`.

    python3 scripts/train_bpe.py --input runs/data/math-base/sft.jsonl --fields prompt,completion \
        --vocab-size 512 --out runs/data/math-base/tokenizer

The tokenizer is GPT-2's scheme with numbers split into single digits (as Llama's and Qwen's are):
  pre-tokenizer  Digits(individual_digits) then ByteLevel (GPT-2's regex, no prefix space);
  model          BPE over GPT-2's byte alphabet: all 256 bytes, then the merges learnt here;
  decoder        ByteLevel, so decode(encode(text)) == text for any UTF-8 text;
  special        <|bos|>, <|eos|>, <|pad|> after the merges (tokenizer_config.json names them).
Training is the standard greedy one: count the pre-tokenized words, then repeatedly merge the most
frequent adjacent pair (ties: the pair (left, right) that sorts first, so the result depends on
the data alone) until the vocabulary has --vocab-size entries or no pair occurs --min-frequency
times. Python's `re` has no \\p{L}; letters are [^\\W\\d_] and numbers \\d, which is what GPT-2's
regex matches on the ASCII and CJK text of this project's tasks. Only the standard library is used.
"""
import argparse
import collections
import json
import os
import re
import sys

SPECIAL = ["<|bos|>", "<|eos|>", "<|pad|>"]
# GPT-2's pre-tokenizer regex, with \p{L} as [^\W\d_] and \p{N} as \d.
GPT2 = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
DIGIT = re.compile(r"(\d)")


def byte_alphabet():
    """GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256 + n."""
    direct = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in direct:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def pre_tokenize(text, alphabet):
    """Digits(individual_digits=True), then ByteLevel(add_prefix_space=False) on each piece."""
    words = []
    for piece in DIGIT.split(text):
        if not piece:
            continue
        for word in GPT2.findall(piece):
            words.append("".join(alphabet[b] for b in word.encode("utf-8")))
    return words


def train(word_counts, vocab_size, min_frequency):
    """Greedy BPE: returns the merges, each a pair of token strings, in rank order."""
    words = [[list(w), c] for w, c in word_counts.items()]
    pairs = collections.Counter()
    where = collections.defaultdict(set)  # pair -> indices of the words holding it
    for i, (symbols, count) in enumerate(words):
        for a, b in zip(symbols, symbols[1:]):
            pairs[(a, b)] += count
            where[(a, b)].add(i)
    merges = []
    budget = vocab_size - 256 - len(SPECIAL)
    while len(merges) < budget and pairs:
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        (a, b), count = best
        if count < min_frequency:
            break
        merges.append((a, b))
        joined = a + b
        for i in sorted(where.pop((a, b), ())):
            symbols, c = words[i]
            for x, y in zip(symbols, symbols[1:]):
                pairs[(x, y)] -= c
                if pairs[(x, y)] <= 0:
                    del pairs[(x, y)]
            merged, k = [], 0
            while k < len(symbols):
                if k + 1 < len(symbols) and symbols[k] == a and symbols[k + 1] == b:
                    merged.append(joined)
                    k += 2
                else:
                    merged.append(symbols[k])
                    k += 1
            words[i][0] = merged
            for x, y in zip(merged, merged[1:]):
                pairs[(x, y)] += c
                where[(x, y)].add(i)
    return merges


def tokenizer_json(alphabet, merges):
    vocab = {}
    for b in range(256):
        vocab[alphabet[b]] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    added = []
    for token in SPECIAL:
        added.append({"id": len(vocab), "content": token, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
        vocab[token] = len(vocab)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, action="append",
                    help="a JSONL file (repeat for more); every row must hold the --fields as strings")
    ap.add_argument("--fields", default="prompt,completion", help="comma-separated fields to train on")
    ap.add_argument("--vocab-size", type=int, default=512,
                    help="entries in all: 256 bytes + merges + 3 special tokens (at least 259)")
    ap.add_argument("--min-frequency", type=int, default=2, help="stop when the best pair occurs fewer times")
    ap.add_argument("--out", required=True, help="a directory; tokenizer.json and tokenizer_config.json go there")
    args = ap.parse_args()
    if args.vocab_size < 256 + len(SPECIAL):
        sys.exit(f"train_bpe.py: --vocab-size {args.vocab_size}: expected at least {256 + len(SPECIAL)} "
                 "(256 bytes and 3 special tokens)")
    fields = [f for f in args.fields.split(",") if f]
    alphabet = byte_alphabet()
    counts = collections.Counter()
    for path in args.input:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"train_bpe.py: {path}:{line_no}: not JSON ({e.msg})")
                for field in fields:
                    value = row.get(field) if isinstance(row, dict) else None
                    if not isinstance(value, str):
                        sys.exit(f"train_bpe.py: {path}:{line_no}: expected a string field '{field}'")
                    counts.update(pre_tokenize(value, alphabet))
    merges = train(counts, args.vocab_size, args.min_frequency)
    os.makedirs(args.out, exist_ok=True)
    tokenizer = tokenizer_json(alphabet, merges)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": SPECIAL[0], "eos_token": SPECIAL[1], "pad_token": SPECIAL[2]}, f, indent=1)
        f.write("\n")
    print(f"train_bpe.py: {len(merges)} merges, vocabulary {len(tokenizer['model']['vocab'])}, "
          f"{sum(counts.values())} words ({len(counts)} distinct) -> {args.out}")


if __name__ == "__main__":
    main()
