"""Prompts for open-ended text completion (ch. 4, sections 4.8.3-4.8.4): `task=text_completion`.

Each prompt comes with the human text that followed it, the reference a model's continuation is compared with:

- `source: squad` (the default): the first sentence of each SQuAD v1.1 dev paragraph (running Wikipedia prose)
  is the prompt, the rest of the paragraph the human continuation;
- `source: sst2`: the first half (by words) of each GLUE SST-2 dev sentence is the prompt, its second half the
  human continuation.

`max_prompts` keeps a fixed random subset (never dependent on the run's seed), in file order. No tokenizer here:
the task module encodes prompts with its model's tokenizer (SmolLM2's own for `model=causal_lm`).

`model=gpt` (leedl's GPT trained by `task=lm_pretrain`) reads text through the vocabulary its run learned:
`lm_corpus` (and `lm_vocab_kind`, `lm_vocab_size`, `lm_block_size`, `lm_max_lines`, set as in that run) rebuilds
it (cached), and the prompts are then the paragraphs of that corpus's own test split, which the GPT never saw.

What it provides (`CompletionSpec`), all offered (read by `model=gpt` only): the vocabulary size, the block size,
the vocabulary's text -> ids and ids -> text and its [EOS] id.
"""
from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import Annotated, Callable, Literal, get_args

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from leedl_cli.contract import AtLeastOne, Range, offered
from leedl_cli.data.sst2 import VocabKind, read_tsv
from leedl_cli.data.text import read_corpus, split_corpus
from leedl_cli.errors import LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)
Source = Literal["squad", "sst2"]
SOURCES: tuple[str, ...] = get_args(Source)
SST2_HOW = "the GLUE SST-2 dev.tsv (gluebenchmark.com, or HF datasets glue/sst2)"
# a sentence ends at . ! or ? (closing quotes/brackets included) before a space and a capital letter or a quote
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(])")


@dataclass(frozen=True)
class CompletionSpec:
    """What the prompts give the text-completion task and a GPT trained by leedl (all offered)."""

    vocab_size: int | None = offered(default=None)
    block_size: int | None = offered(default=None)
    to_ids: Callable[[str], list[int]] | None = offered(default=None)
    to_text: Callable[[list[int]], str] | None = offered(default=None)
    eos_id: int | None = offered(default=None)


def first_sentence_split(paragraph: str) -> tuple[str, str] | None:
    """(first sentence, the rest) of a paragraph; None when it has one sentence only."""
    text = " ".join(paragraph.split())
    m = _SENTENCE_END.search(text)
    if m is None or not text[m.end():].strip():
        return None
    return text[:m.start() + len(m.group(0).rstrip())].strip(), text[m.end():].strip()


def half_split(sentence: str) -> tuple[str, str] | None:
    """(first half, second half) of a sentence by words (the prompt gets the shorter half of an odd count);
    None for fewer than 4 words."""
    ws = sentence.split()
    if len(ws) < 4:
        return None
    return " ".join(ws[: len(ws) // 2]), " ".join(ws[len(ws) // 2:])


def prompts_of(lines: list[str], rule: Callable[[str], tuple[str, str] | None]) -> list[dict]:
    """{index, prompt, continuation} of every line the rule splits (index: the line's place among those)."""
    pairs = [split for split in map(rule, lines) if split is not None]
    return [{"index": i, "prompt": p, "continuation": c} for i, (p, c) in enumerate(pairs)]


def _collate(items: list[dict]) -> dict:
    return {k: [it[k] for it in items] for k in ("index", "prompt", "continuation")}


class CompletionPromptsDataModule(pl.LightningDataModule):
    """Prompts and their human continuations; test split only (nothing is trained)."""

    def __init__(self, source: Source = "squad", data_dir: str | None = None,
                 max_prompts: Annotated[int, AtLeastOne] | None = None,
                 batch_size: Annotated[int, AtLeastOne] = 16, lm_corpus: str | None = None,
                 lm_vocab_kind: VocabKind = "wordpiece", lm_vocab_size: Annotated[int, AtLeastOne] = 4000,
                 lm_block_size: Annotated[int, Range(2)] = 64,
                 lm_max_lines: Annotated[int, AtLeastOne] | None = None) -> None:
        super().__init__()
        self.source, self.data_dir, self.max_prompts, self.batch_size = source, data_dir, max_prompts, int(batch_size)
        self.lm = None
        if lm_corpus is not None:
            from leedl_cli.data.lm_text import LMTextDataModule

            self.lm = LMTextDataModule(corpus=lm_corpus, data_dir=data_dir, block_size=lm_block_size,
                                       vocab_kind=lm_vocab_kind, vocab_size=lm_vocab_size, max_lines=lm_max_lines)
        self.examples: list[dict] | None = None

    def _read(self) -> list[dict]:
        if self.lm is not None:   # the GPT's own corpus: its test lines (the split lm_pretrain used)
            lines = split_corpus(read_corpus(self.lm.corpus, self.data_dir), self.lm.corpus, self.lm.max_lines,
                                 self.lm.fractions)["test"]
            return prompts_of(lines, lambda t: first_sentence_split(t) or half_split(t))
        if self.source == "sst2":
            folder = require_files(data_path(self.data_dir, "sst2"), ["dev.tsv"], "GLUE SST-2", SST2_HOW)
            return prompts_of([s for s, _ in read_tsv(folder / "dev.tsv")], half_split)
        return prompts_of(read_corpus("squad", self.data_dir), first_sentence_split)

    def setup(self, stage: str | None = None) -> None:
        if self.examples is not None:
            return
        examples = self._read()
        if not examples:
            raise LeedlError(f"task.data.source={self.source}: no line splits into a prompt and a continuation")
        if self.max_prompts and self.max_prompts < len(examples):   # a fixed random subset, in file order
            order = list(range(len(examples)))
            random.Random(0).shuffle(order)
            examples = [examples[i] for i in sorted(order[: int(self.max_prompts)])]
        self.examples = examples
        log.info("text completion: %d prompts from %s", len(examples),
                 f"the test split of {self.lm.corpus}" if self.lm is not None else self.source)

    def provides(self) -> CompletionSpec:
        if self.lm is None:
            return CompletionSpec()
        lm = self.lm.provides()
        return CompletionSpec(vocab_size=lm.vocab_size, block_size=lm.block_size, to_ids=lm.encode,
                              to_text=lm.decode, eos_id=lm.eos_id)

    def test_dataloader(self):
        """Prompts ordered by length (a batch is left-padded to its longest prompt: similar lengths waste little)."""
        self.setup()
        ordered = sorted(self.examples, key=lambda ex: (len(ex["prompt"]), ex["index"]))
        return DataLoader(ordered, batch_size=self.batch_size, shuffle=False, collate_fn=_collate)
