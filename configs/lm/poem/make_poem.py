#!/usr/bin/env python3
"""Builds the poem task of configs/lm/poem from Debian's fortunes-zh (standard library only).

Source: /usr/share/games/fortunes/tang300 (唐诗三百首) and song100 (宋诗一百首; shi, not ci: the
package ships no 宋词) of the Debian package fortunes-zh
(scripts/apt-packages.txt). Entries are separated by "%" lines and coloured with ANSI escapes;
each has a title line (《题》 or 题目:《题》), an author line (作者：X or 作者:X（dates）) and the
verse; an entry of several poems (二首) is split at its 其一 / 其二 headers.

Each poem gets a form from its verse alone: the clauses (split at ，。？！；：) all of 5 or all of 7
Han characters, 4 of them: 五言绝句 / 七言绝句, 8: 五言律诗 / 七言律诗; anything else is "other"
(古体诗, 乐府, 排律, poems with a preface). Poems are split train / held out by title (all poems of
one title on the same side; a title is held out when the first byte of the SHA-256 of its UTF-8 text
is below 26, about 10%), so no held-out title is seen in training.

Files (OUT defaults to this script's folder):
  corpus.jsonl, corpus_heldout.jsonl  one poem a row, for pre-training (the held-out one to measure):
      {"text": "《题》\\n作者\\nverse", "title", "author", "source" (tang300|song100), "form", "body"}
  sft.jsonl        the train poems in one of the four forms: {"prompt", "completion", "form"},
                   completion "《题》\\n" + the verse, one couplet a line
  train_prompts.jsonl, prompts.jsonl  the train / held-out titles, each asked in the four forms:
                   {"prompt", "form", "reference"?}; "reference" (the real poem, as an SFT
                   completion) only where the title's poem is in the asked form
The poem grader reads the asked form (五言/七言, 绝句/律诗) and title (以《题》为题) from the prompt;
titles that name a form (梅花绝句) or have 10+ Han characters are left out of the prompts and SFT
rows (see unfit_title).

  python3 configs/lm/poem/make_poem.py [--fortunes DIR] [--out DIR]
"""
import argparse
import hashlib
import json
import os
import re
import sys

FORMS = ["五言绝句", "七言绝句", "五言律诗", "七言律诗"]
SOURCES = ["tang300", "song100"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CLAUSE = re.compile(r"[，。？！；：,.?!;:]")
SUB_HEADER = re.compile(r"^其[一二三四五六七八九十]+$")
HAN = re.compile(r"^[\u3400-\u9fff]+$")


def parse_entries(path, source):
    """The poems of one fortune file: dicts with title, author, body (list of lines), source."""
    with open(path, encoding="utf-8") as f:
        text = ANSI.sub("", f.read())
    poems = []
    for number, entry in enumerate(re.split(r"\n%[ \t]*\n", text)):
        lines = [line.strip() for line in entry.strip("\n").split("\n")]
        lines = [line for line in lines if line and line != "%"]
        if not lines:
            continue
        head = lines[0]
        if head.startswith("题目:") or head.startswith("题目："):
            head = head[3:]
        m = re.match(r"^《(.+)》(.*)$", head)
        if not m or len(lines) < 3:
            raise ValueError(f"{path}: entry {number + 1}: expected a title line 《...》 or "
                             f"题目:《...》, an author line and verse, got {lines[:2]!r}")
        title, suffix = m.group(1).strip(), m.group(2).strip()
        if suffix.startswith("其"):
            title = f"{title}・{suffix}"
        author_line = lines[1]
        am = re.match(r"^作者[：:](.+)$", author_line)
        if not am:
            raise ValueError(f"{path}: entry {number + 1}: expected an author line 作者：X, got "
                             f"{author_line!r}")
        author = re.sub(r"[（(].*$", "", am.group(1)).strip()
        body = lines[2:]
        # Several poems under one title, each after a 其一 / 其二 header.
        parts, current, header = [], [], None
        for line in body:
            if SUB_HEADER.match(line):
                if current:
                    parts.append((header, current))
                header, current = line, []
            else:
                current.append(line)
        if current:
            parts.append((header, current))
        for header, verse in parts:
            poems.append({"title": f"{title}・{header}" if header else title, "author": author,
                          "body": verse, "source": source})
    return poems


def form_of(body):
    clauses = [c for c in CLAUSE.split("".join(body)) if c]
    if not clauses or not all(HAN.match(c) for c in clauses):
        return "other"
    sizes = {len(c) for c in clauses}
    if sizes not in ({5}, {7}):
        return "other"
    chars = "五言" if sizes == {5} else "七言"
    if len(clauses) == 4:
        return chars + "绝句"
    if len(clauses) == 8:
        return chars + "律诗"
    return "other"


def held_out(title):
    return hashlib.sha256(title.encode("utf-8")).digest()[0] < 26


def base_title(title):
    return title.split("・")[0]


def unfit_title(title):
    """Whether a title is left out of the prompts: one that names a form itself (梅花绝句; the
    grader reads the asked form from the prompt's words, so it would contradict the form asked), or
    one of 10 or more Han characters (the grader reads such a row as chat text, not a title)."""
    if any(w in title for w in ("绝句", "律诗", "五言", "七言", "五绝", "七绝", "五律", "七律")):
        return True
    return sum(1 for c in title if "\u3400" <= c <= "\u9fff") >= 10


def prompt(title, form):
    return f"请以《{title}》为题，写一首{form}。\n"


def completion(poem):
    return f"《{poem['title']}》\n" + "\n".join(poem["body"])


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fortunes", default="/usr/share/games/fortunes")
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    poems = []
    for source in SOURCES:
        path = os.path.join(args.fortunes, source)
        if not os.path.exists(path):
            sys.exit(f"{path}: not found; install the Debian package fortunes-zh "
                     f"(apt-get install fortunes-zh)")
        poems += parse_entries(path, source)
    for poem in poems:
        poem["form"] = form_of(poem["body"])
    os.makedirs(args.out, exist_ok=True)
    train = [p for p in poems if not held_out(base_title(p["title"]))]
    held = [p for p in poems if held_out(base_title(p["title"]))]

    def corpus_row(p):
        return {"text": f"《{p['title']}》\n{p['author']}\n" + "\n".join(p["body"]),
                "title": p["title"], "author": p["author"], "source": p["source"],
                "form": p["form"], "body": "\n".join(p["body"])}

    write(os.path.join(args.out, "corpus.jsonl"), [corpus_row(p) for p in train])
    write(os.path.join(args.out, "corpus_heldout.jsonl"), [corpus_row(p) for p in held])
    write(os.path.join(args.out, "sft.jsonl"),
          [{"prompt": prompt(p["title"], p["form"]), "completion": completion(p), "form": p["form"]}
           for p in train if p["form"] in FORMS and not unfit_title(p["title"])])

    def prompt_rows(group):
        rows, seen = [], set()
        for p in group:
            if p["title"] in seen or unfit_title(p["title"]):
                continue
            seen.add(p["title"])
            for form in FORMS:
                row = {"prompt": prompt(p["title"], form), "form": form}
                if p["form"] == form:
                    row["reference"] = completion(p)
                rows.append(row)
        return rows

    write(os.path.join(args.out, "train_prompts.jsonl"), prompt_rows(train))
    write(os.path.join(args.out, "prompts.jsonl"), prompt_rows(held))


if __name__ == "__main__":
    main()
