"""Natural language inference, sentence pairs -> 3 classes (ch. 5, section 5.2.1 case 3): SNLI, MNLI, your own files.

Each pair goes through the backbone's own tokenizer as `[CLS] premise [SEP] hypothesis [SEP]` (segment ids 0/1
where the backbone has them); the [CLS] output -> linear -> entailment / neutral / contradiction (label ids 0, 1,
2, the order of HF `snli` and `multi_nli`). The task module is the same as SST-2's (`tasks/sentiment.py`,
"one label per sentence or per pair").

Mirrored data (`<data_dir>/snli/{s1,s2,labels}.{dev,test}`: SNLI 1.0 dev 9,842 and test 9,824 pairs,
InferSent/e-SNLI tokenised text, line-aligned). The SNLI *training* set (550k pairs) is not mirrored, so:
train = SNLI dev minus a held-out validation slice, test = SNLI test. The validation slice is `val_size`
pairs chosen by whole premises (the 3 hypotheses of one premise never straddle train and validation),
deterministically by `split_seed` (not the run's seed: every seed trains on the same pairs).

Your own files (`train_file=`, `validation_file=`, `test_file=`): the standard releases of SNLI and MNLI,
`.jsonl` (one JSON object per line with `sentence1`, `sentence2`, `gold_label`) or `.txt`/`.tsv` (tab-separated
with a header naming `gold_label`, `sentence1`, `sentence2`). Pairs whose gold label is `-` (no annotator
majority) are dropped, and counted in the log. With only `train_file`, validation is a held-out slice of it;
without `test_file` the mirrored SNLI test is the test set.

What it provides (`NLISpec`): the 3 classes and their names, the backbone's vocabulary size and tokenizer, the
pair of each example (prediction files) and how the data was split.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

from leedl_cli.contract import AtLeastOne
from leedl_cli.data.files import data_reader
from leedl_cli.data.tokenized import TokenizedDataModule
from leedl_cli.data.tokenizers import load_pretrained_tokenizer
from leedl_cli.errors import LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)

LABELS = ("entailment", "neutral", "contradiction")
LABEL_IDS = {name: i for i, name in enumerate(LABELS)}
HOW_TO_GET = ("copy SNLI 1.0 dev/test as s1/s2/labels.{dev,test} (github.com/OanaMariaCamburu/e-SNLI dataset/eSNLI/) "
              "into that folder, or give your own files: task.data.train_file= / validation_file= / test_file= "
              "(SNLI/MNLI .jsonl or .txt from nlp.stanford.edu/projects/snli, cims.nyu.edu/~sbowman/multinli)")

Pair = tuple[str, str, int]


def _label(value, where: str) -> int | None:
    """Label id of a gold label (name or 0/1/2); None for '-' (no gold label)."""
    v = str(value).strip().lower()
    if v in ("-", "", "none", "-1"):
        return None
    if v in LABEL_IDS:
        return LABEL_IDS[v]
    if v in ("0", "1", "2"):
        return int(v)
    raise LeedlError(f"{where}: gold label {value!r} is not one of {', '.join(LABELS)} (or '-')")


@data_reader("SNLI (mirrored s1/s2/labels)", "SNLI 1.0: nlp.stanford.edu/projects/snli; e-SNLI copy: github.com/OanaMariaCamburu/e-SNLI")
def read_mirror(folder: str | Path, split: str) -> tuple[list[Pair], int]:
    """(pairs, number dropped) of the line-aligned `s1.<split>`, `s2.<split>`, `labels.<split>` files."""
    folder = Path(folder)
    s1, s2, labels = ((folder / f"{k}.{split}").read_text(encoding="utf-8").splitlines()
                      for k in ("s1", "s2", "labels"))
    if not len(s1) == len(s2) == len(labels):
        raise LeedlError(f"{folder}: s1/s2/labels.{split} have {len(s1)}/{len(s2)}/{len(labels)} lines (must be equal)")
    pairs, dropped = [], 0
    for i, (a, b, y) in enumerate(zip(s1, s2, labels)):
        label = _label(y, f"{folder}/labels.{split} line {i + 1}")
        if label is None:
            dropped += 1
            continue
        pairs.append((a.strip(), b.strip(), label))
    return pairs, dropped


@data_reader("SNLI/MNLI file", "SNLI: nlp.stanford.edu/projects/snli; MNLI: cims.nyu.edu/~sbowman/multinli")
def read_pairs(path: str | Path) -> tuple[list[Pair], int]:
    """(pairs, number dropped) of an SNLI/MNLI release file: `.jsonl` or tab-separated `.txt`/`.tsv` with a header."""
    path = Path(path)
    pairs, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        if first.lstrip().startswith("{"):
            lines = [first, *f]
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not {"sentence1", "sentence2", "gold_label"} <= set(row):
                    raise LeedlError(f"{path} line {n}: a .jsonl NLI row needs sentence1, sentence2, gold_label")
                label = _label(row["gold_label"], f"{path} line {n}")
                if label is None:
                    dropped += 1
                    continue
                pairs.append((row["sentence1"].strip(), row["sentence2"].strip(), label))
            return pairs, dropped
        header = first.rstrip("\n").split("\t")
        if not {"sentence1", "sentence2", "gold_label"} <= set(header):
            raise LeedlError(f"{path}: neither .jsonl nor a tab-separated file whose header names gold_label, "
                             f"sentence1, sentence2 (SNLI/MNLI .txt)")
        c1, c2, cl = header.index("sentence1"), header.index("sentence2"), header.index("gold_label")
        for n, line in enumerate(f, 2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) <= max(c1, c2, cl):
                continue
            label = _label(parts[cl], f"{path} line {n}")
            if label is None:
                dropped += 1
                continue
            pairs.append((parts[c1].strip(), parts[c2].strip(), label))
    return pairs, dropped


def held_out_by_premise(pairs: list[Pair], val_size: int, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, validation): whole premises (all their hypotheses) go to validation until it has >= val_size pairs."""
    premises = sorted({p for p, _, _ in pairs})
    random.Random(seed).shuffle(premises)
    chosen, count = set(), 0
    counts: dict[str, int] = {}
    for p, _, _ in pairs:
        counts[p] = counts.get(p, 0) + 1
    for p in premises:
        if count >= val_size:
            break
        chosen.add(p)
        count += counts[p]
    return [x for x in pairs if x[0] not in chosen], [x for x in pairs if x[0] in chosen]


@dataclass(frozen=True)
class NLISpec:
    """What NLI data gives BERT and the sentence-classification task."""

    num_classes: int
    label_names: tuple[str, ...]
    vocab_size: int                          # the backbone's tokenizer
    tokenizer: Any                           # saved beside an exported model
    texts: Callable[[str], list[str]]        # `premise ||| hypothesis` of each example of a split
    split_info: Callable[[], dict]           # how the data was split (results.json)


class NLIDataModule(TokenizedDataModule):
    """SNLI (mirrored dev/test) or your SNLI/MNLI files, as `[CLS] premise [SEP] hypothesis [SEP]` features."""

    num_classes = len(LABELS)
    bucket_by = "input_ids"     # length bucketing of training batches (pairs of similar length: less padding)

    def __init__(self, backbone: str = "minilm", data_dir: str | None = None, train_file: str | None = None,
                 validation_file: str | None = None, test_file: str | None = None,
                 max_length: Annotated[int, AtLeastOne] = 128, batch_size: Annotated[int, AtLeastOne] = 32,
                 eval_batch_size: Annotated[int, AtLeastOne] = 128, val_size: Annotated[int, AtLeastOne] = 1000,
                 max_train_examples: Annotated[int, AtLeastOne] | None = None,
                 max_test_examples: Annotated[int, AtLeastOne] | None = None,
                 split_seed: int = 0, seed: int = 0) -> None:
        super().__init__()
        if not backbone:
            raise LeedlError("task=nli needs a pretrained tokenizer: model.backbone=<minilm | dir | hub name>")
        self.backbone, self.data_dir, self.max_length = backbone, data_dir, int(max_length)
        self.files = {"train": train_file, "val": validation_file, "test": test_file}
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.val_size, self.split_seed, self.seed = int(val_size), int(split_seed), seed
        self.max_train_examples, self.max_test_examples = max_train_examples, max_test_examples
        self.tokenizer = None
        self.pairs: dict[str, list[Pair]] = {}
        self.features: dict[str, list[dict]] = {}
        self.split_info: dict = {}

    def _own(self, key: str) -> tuple[list[Pair], int] | None:
        name = self.files[key]
        if not name:
            return None
        path = Path(name).expanduser()
        if not path.is_file():
            option = {"train": "train_file", "val": "validation_file", "test": "test_file"}[key]
            raise LeedlError(f"task.data.{option}={name} does not exist")
        return read_pairs(path)

    def _mirror(self, split: str) -> tuple[list[Pair], int]:
        folder = require_files(data_path(self.data_dir, "snli"), [f"{k}.{split}" for k in ("s1", "s2", "labels")],
                               "SNLI", HOW_TO_GET)
        return read_mirror(folder, split)

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        dropped = {}
        own_train = self._own("train")
        if own_train is None:
            train, dropped["train"] = self._mirror("dev")
            how = f"train = SNLI dev minus a validation slice of >= {self.val_size} pairs (whole premises, split_seed {self.split_seed})"
        else:
            train, dropped["train"] = own_train
            how = f"train = {Path(self.files['train']).name}"
        own_val = self._own("val")
        if own_val is None:
            train, val = held_out_by_premise(train, self.val_size, self.split_seed)
            if own_train is not None:
                how += f" minus a validation slice of >= {self.val_size} pairs (whole premises, split_seed {self.split_seed})"
        else:
            val, dropped["val"] = own_val
            how += f", validation = {Path(self.files['val']).name}"
        own_test = self._own("test")
        if own_test is None:
            test, dropped["test"] = self._mirror("test")
            how += ", test = SNLI test"
        else:
            test, dropped["test"] = own_test
            how += f", test = {Path(self.files['test']).name}"
        if self.max_train_examples and len(train) > int(self.max_train_examples):
            order = list(range(len(train)))
            random.Random(self.split_seed).shuffle(order)
            train = [train[i] for i in sorted(order[: int(self.max_train_examples)])]
        if self.max_test_examples:
            test = test[: int(self.max_test_examples)]
        if not train or not val or not test:
            raise LeedlError(f"NLI data: {len(train)} train / {len(val)} validation / {len(test)} test pairs "
                             f"(each needs at least one; task.data.val_size={self.val_size})")
        self.tokenizer = load_pretrained_tokenizer(self.backbone)
        self.pairs = {"train": train, "val": val, "test": test}
        self.features = {k: self._encode(v) for k, v in self.pairs.items()}
        self.split_info = {"how": how, **{f"{k}_pairs": len(v) for k, v in self.pairs.items()},
                           "dropped_no_gold_label": dropped, "labels": list(LABELS)}
        log.info("NLI: %s; pairs %s; dropped (gold label '-') %s", how,
                 {k: len(v) for k, v in self.pairs.items()}, dropped)

    def _encode(self, pairs: list[Pair]) -> list[dict]:
        enc = self.tokenizer([a for a, _, _ in pairs], [b for _, b, _ in pairs], truncation=True,
                             max_length=self.max_length, padding=False)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        return [{**{k: enc[k][i] for k in keys}, "labels": y} for i, (_, _, y) in enumerate(pairs)]

    def texts(self, split: str) -> list[str]:
        """The pair of each example of a split as one string (premise ||| hypothesis), for prediction files."""
        return [f"{a} ||| {b}" for a, b, _ in self.pairs[split]]

    def provides(self) -> NLISpec:
        self.setup()
        return NLISpec(num_classes=self.num_classes, label_names=LABELS, vocab_size=len(self.tokenizer),
                       tokenizer=self.tokenizer, texts=self.texts, split_info=self.how_split)

    def how_split(self) -> dict:
        """How the data was split: files, sizes (results.json `data_split`)."""
        return self.split_info
