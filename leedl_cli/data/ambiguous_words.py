"""Sentences of ambiguous words, grouped by sense (ch. 5, section 5.2.2, why BERT works): `task=contextual_embeddings`.

The book's example is 苹果 in 吃苹果 (eat an apple) and 苹果手机 (an Apple phone): BERT gives the same character a
different vector in each context, and the vectors of one meaning lie closer to each other than to the other
meaning's. The shipped set (`ambiguous_words.tsv`, beside this file) holds English sentences for seven such words,
two senses each, ten sentences per sense, written for leedl:

    bank (river / money), apple (fruit / company), bat (animal / sports), spring (season / coil),
    mouse (animal / computer), crane (bird / machine), pitch (sound / field)

File format (tab-separated, UTF-8, a header line `word  sense  sentence`): one sentence per line. Every sentence
holds its word exactly once, as a whole word and written exactly as in the `word` column (lower case, also for
the company Apple), so the word's pieces are the same in every sentence and only the context differs.
`path=<file>` reads another file of that format; it is checked line by line (a line that breaks a rule is named).

What it provides (`AmbiguousWordsSpec`): the sentences (word, sense, text and where the word starts) and the
backbone's tokenizer (its offsets say which pieces spell the word); the vocabulary size and no class count for the
model wrapper (a randomly initialised BERT takes the tokenizer's vocabulary).
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from leedl_cli.contract import AtLeastOne
from leedl_cli.data.tokenizers import load_pretrained_tokenizer
from leedl_cli.errors import LeedlError

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("ambiguous_words.tsv")
COLUMNS = ("word", "sense", "sentence")


class SenseSentence(NamedTuple):
    """One sentence: its ambiguous word, the word's sense here, the text, and the word's characters [start, end)."""
    index: int
    word: str
    sense: str
    sentence: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.word)


@dataclass(frozen=True)
class AmbiguousWordsSpec:
    """What the ambiguous-word sentences give BERT and the contextual-embedding analysis."""

    sentences: tuple[SenseSentence, ...]   # grouped by word, then sense (the file's order)
    tokenizer: Any                         # the backbone's fast tokenizer (offsets mapping)
    vocab_size: int                        # the tokenizer's vocabulary (a random-init model is built with it)
    num_classes: None                      # none: nothing is classified


def _occurrence(word: str, sentence: str) -> int:
    """Where the word starts in the sentence; a LeedlError text when it is not there exactly once as written."""
    found = [m for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", sentence, flags=re.IGNORECASE)]
    if len(found) != 1:
        raise ValueError(f"holds {word!r} {len(found)} times as a whole word; exactly once is needed")
    if found[0].group(0) != word:
        raise ValueError(f"writes the word as {found[0].group(0)!r}; write it exactly as {word!r} (the same "
                         f"pieces in every sentence: only the context may differ)")
    return found[0].start()


def read_sentences(path: str | Path = SHIPPED) -> list[SenseSentence]:
    """The sentences of a word/sense/sentence file, checked line by line (LeedlError naming file and line)."""
    path = Path(path)
    if not path.is_file():
        raise LeedlError(f"task.data.path={path}: no such file (a tab-separated file with the columns "
                         f"{', '.join(COLUMNS)}; null reads the shipped set)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise LeedlError(f"{path}: the header must be {' <tab> '.join(COLUMNS)}, not {reader.fieldnames}")
        out = []
        for row in reader:
            line = reader.line_num
            word, sense, sentence = ((row.get(c) or "").strip() for c in COLUMNS)
            if not (word and sense and sentence):
                raise LeedlError(f"{path}, line {line}: a word, a sense and a sentence are needed, tab-separated")
            try:
                start = _occurrence(word, sentence)
            except ValueError as err:
                raise LeedlError(f"{path}, line {line}: the sentence {err}: {sentence!r}") from None
            out.append(SenseSentence(len(out), word, sense, sentence, start))
    return out


def select(sentences: list[SenseSentence], words: list[str] | None,
           per_sense: int | None) -> list[SenseSentence]:
    """The sentences of `words` (all: None), the first `per_sense` of each sense, grouped by word then sense and
    renumbered; each word needs two senses or more, each sense two sentences or more (a within-sense pair)."""
    known = list(dict.fromkeys(s.word for s in sentences))
    chosen = known if words is None else [str(w) for w in words]
    unknown = [w for w in chosen if w not in known]
    if unknown:
        raise LeedlError(f"task.data.words: {', '.join(unknown)} not in the sentence file; it has {', '.join(known)}")
    out: list[SenseSentence] = []
    for word in chosen:
        senses = list(dict.fromkeys(s.sense for s in sentences if s.word == word))
        if len(senses) < 2:
            raise LeedlError(f"word {word!r} has one sense ({senses[0]}) in the sentence file: two or more are "
                             f"needed to compare within-sense with cross-sense similarity")
        for sense in senses:
            group = [s for s in sentences if s.word == word and s.sense == sense][:per_sense]
            if len(group) < 2:
                raise LeedlError(f"word {word!r}, sense {sense!r}: {len(group)} sentence(s); at least 2 are needed "
                                 f"(a within-sense pair)")
            out += [s._replace(index=len(out) + i) for i, s in enumerate(group)]
    return out


class AmbiguousWordsDataModule(pl.LightningDataModule):
    """The sentences of ambiguous words (test split only: nothing is trained) and the backbone's tokenizer."""

    def __init__(self, backbone: str = "minilm", path: str | None = None, words: list[str] | None = None,
                 max_sentences_per_sense: Annotated[int, AtLeastOne] | None = None,
                 batch_size: Annotated[int, AtLeastOne] = 32) -> None:
        super().__init__()
        self.backbone, self.path = backbone, path
        self.words = None if words is None else [str(w) for w in words]
        self.per_sense = None if max_sentences_per_sense is None else int(max_sentences_per_sense)
        self.batch_size = int(batch_size)
        self.sentences: list[SenseSentence] | None = None
        self.tokenizer = None

    def setup(self, stage: str | None = None) -> None:
        if self.sentences is not None:
            return
        self.sentences = select(read_sentences(self.path or SHIPPED), self.words, self.per_sense)
        self.tokenizer = load_pretrained_tokenizer(self.backbone)
        words = list(dict.fromkeys(s.word for s in self.sentences))
        log.info("ambiguous words: %d sentences of %d words (%s)", len(self.sentences), len(words), ", ".join(words))

    def provides(self) -> AmbiguousWordsSpec:
        self.setup()
        return AmbiguousWordsSpec(sentences=tuple(self.sentences), tokenizer=self.tokenizer,
                                  vocab_size=len(self.tokenizer), num_classes=None)

    def test_dataloader(self):
        """Batches of `SenseSentence`s in the file's order (the task tokenizes them with the provided tokenizer)."""
        self.setup()
        return DataLoader(self.sentences, batch_size=self.batch_size, shuffle=False, collate_fn=list)
