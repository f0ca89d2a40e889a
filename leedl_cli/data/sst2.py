"""GLUE SST-2 binary sentiment (ch. 5, section 5.2.1 case 1): sentence -> positive / negative.

Files `<data_dir>/sst2/{train,dev}.tsv` (`sentence<TAB>label`). The labelled GLUE dev set (872) is the
test set; a fixed slice of the training sentences (`val_size`) is the validation set; `max_train_examples`
takes a fixed random subset of the rest (CPU budget). Tokenised with the backbone's own tokenizer
(`[CLS] sentence [SEP]`) for a pretrained model, or (`backbone: null`, models trained from scratch) with a
vocabulary learned from the training sentences (`vocab_kind` word | wordpiece | bpe, `vocab_size`; cached,
see data/tokenizers.py); dynamic padding per batch.

What it provides (`SST2Spec`): the classes and their names, the vocabulary (size, pad and unknown ids, the
tokenizer itself for an exported model), each split's sentences (prediction files) and how the data was split.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

from leedl_cli.contract import AtLeastOne, offered
from leedl_cli.data.files import data_reader
from leedl_cli.data.tokenized import SPLIT_SEED, TokenizedDataModule, WordFeatureSizes
from leedl_cli.data.tokenizers import VocabKind, Vocabulary, load_pretrained_tokenizer
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)
LABELS = ("negative", "positive")


@data_reader('GLUE SST-2', 'GLUE benchmark, HF datasets glue/sst2')
def read_tsv(path: str | Path) -> list[tuple[str, int]]:
    """(sentence, label) pairs of a GLUE SST-2 TSV with a header line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        s_col, l_col = header.index("sentence"), header.index("label") if "label" in header else None
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) > s_col:
                rows.append((parts[s_col].strip(), int(parts[l_col]) if l_col is not None else -1))
    return rows


@dataclass(frozen=True)
class SST2Spec:
    """What SST-2 gives a sentence classifier and the sentence-classification task."""

    num_classes: int
    label_names: tuple[str, ...]
    vocab_size: int                                  # the backbone's vocabulary, or the one learned from train
    tokenizer: Any                                   # saved beside an exported model
    texts: Callable[[str], list[str]]                # the sentence of each example of a split
    split_info: Callable[[], dict]                   # how the data was split (results.json)
    pad_token_id: int = offered()                    # read by models trained from scratch
    unk_token_id: int = offered()
    word_features: WordFeatureSizes | None = offered()   # none for SST-2: the word ids only


class SST2DataModule(TokenizedDataModule):
    num_classes = len(LABELS)

    def __init__(self, backbone: str | None = "minilm", data_dir: str | None = None,
                 max_length: Annotated[int, AtLeastOne] = 64, batch_size: Annotated[int, AtLeastOne] = 32,
                 eval_batch_size: Annotated[int, AtLeastOne] = 128,
                 max_train_examples: Annotated[int, AtLeastOne] | None = None,
                 val_size: Annotated[int, AtLeastOne] = 872, max_test_examples: Annotated[int, AtLeastOne] | None = None,
                 vocab_kind: VocabKind = "wordpiece", vocab_size: Annotated[int, AtLeastOne] = 16000,
                 lowercase: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.vocab_kind, self.vocab_size, self.lowercase = vocab_kind, int(vocab_size), bool(lowercase)
        self.vocab = None
        self.backbone, self.data_dir, self.max_length = backbone, data_dir, int(max_length)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.max_train_examples, self.val_size, self.max_test_examples = max_train_examples, int(val_size), max_test_examples
        self.seed = seed
        self.tokenizer = None
        self.rows: dict[str, list[tuple[str, int]]] = {}
        self.split_info: dict = {}
        self.features: dict[str, list[dict]] = {}

    def _encode(self, rows: list[tuple[str, int]]) -> list[dict]:
        if self.vocab is not None:
            ids = self.vocab.encode_batch([s for s, _ in rows])
            return [{"input_ids": (x[: self.max_length] or [self.vocab.unk_token_id]), "labels": y}
                    for x, (_, y) in zip(ids, rows)]
        enc = self.tokenizer([s for s, _ in rows], truncation=True, max_length=self.max_length, padding=False)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        return [{**{k: enc[k][i] for k in keys}, "labels": y} for i, (_, y) in enumerate(rows)]

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        folder = require_files(data_path(self.data_dir, "sst2"), ["train.tsv", "dev.tsv"], "SST-2",
                               "download GLUE SST-2 (HF datasets glue/sst2, or gluebenchmark.com) into that folder")
        train = read_tsv(folder / "train.tsv")
        random.Random(SPLIT_SEED).shuffle(train)
        val, train = train[: self.val_size], train[self.val_size:]
        if self.max_train_examples:
            train = train[: int(self.max_train_examples)]
        if self.backbone:
            self.tokenizer = load_pretrained_tokenizer(self.backbone)
        else:
            stat = (folder / "train.tsv").stat()
            self.vocab = self.tokenizer = Vocabulary.train(
                (s for s, _ in train), "sst2", kind=self.vocab_kind, vocab_size=self.vocab_size,
                lowercase=self.lowercase, source=f"{stat.st_size}:{self.val_size}:{self.max_train_examples}")
        test = read_tsv(folder / "dev.tsv")
        if self.max_test_examples:
            test = test[: int(self.max_test_examples)]
        self.rows = {"train": train, "val": val, "test": test}
        self.features = {name: self._encode(rows) for name, rows in self.rows.items()}
        self.split_info = {"how": f"train/val = a fixed shuffle (seed {SPLIT_SEED}) of SST-2 train.tsv, {self.val_size} "
                                  f"sentences held out for validation; test = the labelled GLUE dev set",
                           **{f"{k}_sentences": len(v) for k, v in self.rows.items()}, "labels": list(LABELS)}
        log.info("SST-2: %s sentences (test = GLUE dev)", {k: len(v) for k, v in self.features.items()})

    def provides(self) -> SST2Spec:
        self.setup()
        return SST2Spec(num_classes=self.num_classes, label_names=LABELS, vocab_size=len(self.tokenizer),
                        tokenizer=self.tokenizer, texts=self.texts, split_info=self.how_split,
                        pad_token_id=self.tokenizer.pad_token_id, unk_token_id=self.tokenizer.unk_token_id,
                        word_features=None)

    def texts(self, split: str) -> list[str]:
        return [sentence for sentence, _ in self.rows[split]]

    def how_split(self) -> dict:
        """How the data was split: files, sizes (results.json `data_split`)."""
        return self.split_info
