"""Next-token prediction data for a GPT trained from scratch (ch. 5, section 5.3): `task=lm_pretrain`.

The lines of a corpus (`read_corpus` of `data/text.py`: SQuAD dev paragraphs, SST-2 training sentences, XQuAD
English, or a text file) are split by line into train/val/test (a fixed split, never the run's seed), a
sub-word vocabulary is learned from the training lines (`data/tokenizers.py`, cached), and each split becomes
one stream of tokens, every line followed by [EOS], cut into blocks of `block_size` + 1 tokens: the model reads
the first `block_size` and predicts each next one (inputs and labels shifted by one position).

Default corpus `squad`: the 2,067 paragraphs of SQuAD v1.1 dev (running Wikipedia prose). SST-2's training
"sentences" are mostly sub-phrases of the same 6,920 sentences, so a split by line shares text between
training and validation: use it only for a quick run.

What it provides (`LMTextSpec`): the vocabulary size and the block size (the model's context), and for the task's
samples the vocabulary's encode / decode and its [EOS] id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Callable

import torch

from leedl_cli.contract import AtLeastOne, Range
from leedl_cli.data.sst2 import VocabKind
from leedl_cli.data.text import Fraction, fraction_problems, read_corpus, split_corpus
from leedl_cli.data.tokenized import TokenizedDataModule
from leedl_cli.data.tokenizers import Vocabulary

log = logging.getLogger(__name__)


def blocks_of(ids: list[int], block_size: int) -> list[dict]:
    """Non-overlapping blocks of block_size + 1 tokens: {input_ids: the first block_size, labels: shifted by 1}."""
    out = []
    for start in range(0, len(ids) - 1, block_size):
        chunk = ids[start:start + block_size + 1]
        if len(chunk) < 2:
            break
        out.append({"input_ids": chunk[:-1], "labels": chunk[1:]})
    return out


class LMCollator:
    """Blocks of a split have the same length except maybe the last: pad inputs with [PAD], labels with -100."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict]) -> dict:
        n = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), n), -100, dtype=torch.long)
        for i, it in enumerate(items):
            ids[i, : len(it["input_ids"])] = torch.tensor(it["input_ids"])
            labels[i, : len(it["labels"])] = torch.tensor(it["labels"])
        return {"input_ids": ids, "labels": labels}


@dataclass(frozen=True)
class LMTextSpec:
    """What the corpus gives a GPT and the next-token task."""

    vocab_size: int
    block_size: int                          # tokens a block holds: the model's context
    encode: Callable[[str], list[int]]       # text -> token ids (the prompts of the samples)
    decode: Callable[[list[int]], str]
    eos_id: int                              # [EOS]: ends every line of the corpus


class LMTextDataModule(TokenizedDataModule):
    """A corpus as blocks of tokens for next-token prediction, with a vocabulary learned from its training lines."""

    def __init__(self, corpus: str = "squad", data_dir: str | None = None, block_size: Annotated[int, Range(2)] = 64,
                 batch_size: Annotated[int, AtLeastOne] = 32, eval_batch_size: Annotated[int, AtLeastOne] = 64,
                 vocab_kind: VocabKind = "wordpiece", vocab_size: Annotated[int, AtLeastOne] = 8000,
                 lowercase: bool = True, max_lines: Annotated[int, AtLeastOne] | None = None,
                 val_fraction: Fraction = 0.05, test_fraction: Fraction = 0.05, seed: int = 0) -> None:
        super().__init__()
        self.corpus, self.data_dir, self.block_size = corpus, data_dir, int(block_size)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.vocab_kind, self.vocab_size, self.lowercase = vocab_kind, int(vocab_size), bool(lowercase)
        self.max_lines, self.seed = max_lines, int(seed or 0)
        self.fractions = (1 - val_fraction - test_fraction, val_fraction, test_fraction)
        self.vocab: Vocabulary | None = None
        self.tokenizer = None
        self.splits: dict[str, list[dict]] | None = None
        self.token_counts: dict[str, int] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        text = split_corpus(read_corpus(self.corpus, self.data_dir), self.corpus, self.max_lines, self.fractions)
        self.vocab = Vocabulary.train_on_corpus(text["train"], self.corpus, "lm", kind=self.vocab_kind,
                                                vocab_size=self.vocab_size, lowercase=self.lowercase)
        self.tokenizer = self.vocab
        self.eos_id = self.vocab.token_to_id("[EOS]")
        self.splits = {}
        for name, part in text.items():
            ids: list[int] = []
            for enc in self.vocab.encode_batch(part):
                ids.extend(enc + [self.eos_id])
            self.token_counts[name] = len(ids)
            self.splits[name] = blocks_of(ids, self.block_size)
        log.info("language-model corpus %s: %s tokens (%s blocks of %d), vocabulary %d (%s)", self.corpus,
                 self.token_counts, {k: len(v) for k, v in self.splits.items()}, self.block_size, len(self.vocab),
                 self.vocab_kind)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        return fraction_problems(options)

    def provides(self) -> LMTextSpec:
        self.setup()
        return LMTextSpec(vocab_size=len(self.vocab), block_size=self.block_size, encode=self.encode,
                          decode=self.decode, eos_id=self.eos_id)

    @property
    def features(self) -> dict[str, list[dict]]:
        return self.splits or {}

    def _collator(self):
        return LMCollator(self.vocab.pad_token_id)

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.vocab.tokenizer.decode(ids)
