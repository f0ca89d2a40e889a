"""Small parallel files in the real formats of the translation data sets, written by the tests (no mirror needed).

A toy language pair: German-like words with a fixed English translation each, sentences of 3-8 words, the
English side word for word in the same order with the first word capitalised and a full stop. Learnable in a few
epochs by a tiny model; written as Multi30k's gzip files and as Tatoeba's `English<TAB>Chinese<TAB>attribution`.
"""
from __future__ import annotations

import gzip
import random

LEXICON = {"hund": "dog", "katze": "cat", "mann": "man", "frau": "woman", "kind": "child", "ball": "ball",
           "rot": "red", "blau": "blue", "gross": "big", "klein": "small", "laeuft": "runs", "springt": "jumps",
           "sieht": "sees", "hat": "has", "im": "in the", "park": "park", "schnee": "snow", "wasser": "water",
           "und": "and", "ein": "a"}
ZH = {"dog": "狗", "cat": "猫", "man": "男人", "woman": "女人", "child": "孩子", "ball": "球", "red": "红",
      "blue": "蓝", "big": "大", "small": "小", "runs": "跑", "jumps": "跳", "sees": "看", "has": "有",
      "in the": "在", "park": "公园", "snow": "雪", "water": "水", "and": "和", "a": "一"}


def toy_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = sorted(LEXICON)
    pairs = []
    for _ in range(n):
        src = [rng.choice(words) for _ in range(rng.randint(3, 8))]
        tgt = " ".join(LEXICON[w] for w in src)
        pairs.append((" ".join(src).capitalize() + ".", tgt[0].upper() + tgt[1:] + "."))
    return pairs


def write_lines(path, lines) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def write_multi30k(data_dir, n_train: int = 400, n_eval: int = 40) -> None:
    folder = data_dir / "multi30k"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 0), ("val", n_eval, 1), ("test_2016_flickr", n_eval, 2),
                          ("test_2017_flickr", n_eval, 3)):
        pairs = toy_pairs(n, seed)
        write_lines(folder / f"{name}.de.gz", [de for de, _ in pairs])
        write_lines(folder / f"{name}.en.gz", [en for _, en in pairs])


def write_tatoeba(data_dir, n: int = 300) -> None:
    folder = data_dir / "tatoeba-cmn-eng"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (_, en) in enumerate(toy_pairs(n, 5)):
        words = en.rstrip(".").lower().split(" ")
        zh, k = "", 0
        while k < len(words):
            two = " ".join(words[k:k + 2])
            zh, k = (zh + ZH[two], k + 2) if two in ZH else (zh + ZH[words[k]], k + 1)
        sep = " " if i == 3 else "\t"      # the real file has lines with a space instead of the first tab
        lines.append(f"{en}{sep}{zh}。\tCC-BY 2.0 (France) Attribution: tatoeba.org #{i} (x) & #{i + 1} (y)")
    write_lines(folder / "cmn.txt.gz", lines)
