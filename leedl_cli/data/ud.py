"""Universal Dependencies treebanks in CoNLL-U (ch. 3, POS tagging: N inputs -> N labels): `task=pos_tagging`.

Files `<data_dir>/<dataset>/<prefix>-ud-{train,dev,test}.conllu[.gz]` (UD English EWT: `ud-english-ewt`,
`en_ewt`; the released split: train 12,544 / dev 2,001 / test 2,077 sentences). One example per sentence,
one label per syntactic word (the 17 UPOS tags; multi-word token lines `3-4` and empty nodes `5.1` are not
tagged). Two encodings, chosen by the model:
- from scratch (`backbone: null`): a word vocabulary learned from the training split with Hugging Face
  `tokenizers` (lower-cased; cached, see data/tokenizers.py) -> `input_ids`, plus two features that help with
  words the vocabulary has never seen: the id of the word's last `suffix_length` characters (a second
  vocabulary, also learned from the training split) -> `suffix_ids`, its shape (lower, Title, UPPER,
  digits, punctuation, hyphen) -> `shape_ids`, and its characters (case kept; a character vocabulary learned
  from the training words) -> `char_ids` [words][characters];
- a pretrained backbone (`backbone: minilm`): its own tokenizer on the words (`is_split_into_words`), the
  label on each word's first sub-word and -100 (ignored) on the others (chapter 5, case 2).

What it provides (`TaggingSpec`): the tag count and names, the vocabulary size and pad/unknown ids, the feature
vocabularies (from scratch only), and for the task the test sentences' words, a CoNLL-U writer of predicted tags
and one collated test sentence (attention heat maps).
"""
from __future__ import annotations

import gzip
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal

from leedl_cli.contract import AtLeastOne, Range, offered
from leedl_cli.data.files import data_reader
from leedl_cli.data.tokenized import (
    IGNORE_INDEX,
    SPLIT_SEED,
    PadCollator,
    TokenizedDataModule,
    WordFeatureSizes,
)
from leedl_cli.data.tokenizers import Vocabulary, load_pretrained_tokenizer
from leedl_cli.errors import CorruptDataError, LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)

UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]
DATASETS = {"ud-english-ewt": "en_ewt"}
SPLIT_FILES = {"train": "train", "val": "dev", "test": "test"}
SHAPES = ["[PAD]", "lower", "Title", "UPPER", "mixed", "digit", "punct", "other"]


def word_shape(word: str) -> int:
    """A small id for how a word looks (capitals, digits, punctuation; +len(SHAPES) when it has a hyphen)."""
    if any(c.isdigit() for c in word):
        base = 5
    elif all(unicodedata.category(c)[0] in "PS" for c in word):
        base = 6
    elif word.islower():
        base = 1
    elif word.isupper():
        base = 3
    elif word[:1].isupper() and word[1:].islower():
        base = 2
    elif any(c.isalpha() for c in word):
        base = 4
    else:
        base = 7
    return base + (len(SHAPES) if "-" in word and len(word) > 1 else 0)


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


@data_reader('Universal Dependencies', 'github.com/UniversalDependencies/UD_English-EWT')
def read_conllu(path: str | Path) -> list[dict]:
    """Sentences of a CoNLL-U file: {"words": [...], "upos": [...], "sent_id": str or None}."""
    sentences, words, tags, sent_id = [], [], [], None
    known = set(UPOS)
    with _open(Path(path)) as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not line:
                if words:
                    sentences.append({"words": words, "upos": tags, "sent_id": sent_id})
                words, tags, sent_id = [], [], None
            elif line.startswith("#"):
                if line.startswith("# sent_id"):
                    sent_id = line.split("=", 1)[1].strip()
            else:
                cols = line.split("\t")
                if len(cols) != 10:
                    raise CorruptDataError(f"{path}, line {number}: not CoNLL-U (a token line needs 10 tab-separated "
                                           f"columns): {line[:80]!r}")
                if cols[0].isdigit():
                    if cols[3] not in known:
                        raise CorruptDataError(f"{path}, line {number}: unknown UPOS tag {cols[3]!r} (the 17 tags: "
                                               f"{', '.join(UPOS)})")
                    words.append(cols[1])
                    tags.append(cols[3])
    if words:
        sentences.append({"words": words, "upos": tags, "sent_id": sent_id})
    return sentences


def write_conllu_with_upos(source: str | Path, target: str | Path, predicted: list[list[str]]) -> Path:
    """Copy CoNLL-U `source` to `target` (plain text) with the UPOS column of every word line replaced by
    `predicted[sentence][word]`: the test file with predicted tags, re-scorable by any CoNLL-U evaluator."""
    from leedl_cli.atomic import replace_atomically

    with _open(Path(source)) as f:
        lines = f.read().split("\n")
    out, s, w = [], 0, 0
    for line in lines:
        if s == len(predicted):          # predictions for the first sentences only (a limited run)
            break
        if not line:
            if w:
                s, w = s + 1, 0
            out.append(line)
            continue
        cols = line.split("\t")
        if not line.startswith("#") and len(cols) == 10 and cols[0].isdigit():
            if w >= len(predicted[s]):
                raise LeedlError(f"{source}: sentence {s + 1} has more words than its {len(predicted[s])} predictions")
            cols[3] = predicted[s][w]
            w += 1
            line = "\t".join(cols)
        out.append(line)
    if s < len(predicted) and not (w and s + 1 == len(predicted)):
        raise LeedlError(f"{source} has {s} sentences, predictions for {len(predicted)}")
    out.append("")
    return replace_atomically(target, lambda fh: fh.write("\n".join(out)))


@dataclass(frozen=True)
class TaggingSpec:
    """What UD data gives a tagger and the tagging task."""

    num_classes: int                                   # the 17 UPOS tags
    label_names: tuple[str, ...]                       # tag of each class id
    vocab_size: int                                    # the word vocabulary (from scratch) or the backbone's sub-words
    test_words: Callable[[], list[list[str]]]          # the words of every test sentence
    write_test_conllu: Callable[[list[list[str]], Path], Path]   # (tags per test sentence, target) -> the CoNLL-U file
    test_batch: Callable[[int], dict]                  # test sentence i collated as a batch of one
    pad_token_id: int = offered()                      # read by models trained from scratch
    unk_token_id: int = offered()
    word_features: WordFeatureSizes | None = offered()  # suffix / shape / character vocabularies; None with a backbone


class UDDataModule(TokenizedDataModule):
    num_classes = len(UPOS)

    def __init__(self, dataset: Literal["ud-english-ewt"] = "ud-english-ewt", data_dir: str | None = None,
                 backbone: str | None = None, vocab_size: Annotated[int, Range(3)] = 30000,
                 min_frequency: Annotated[int, AtLeastOne] = 1, lowercase: bool = True,
                 suffix_length: Annotated[int, AtLeastOne] = 3, max_length: Annotated[int, Range(3)] = 256,
                 batch_size: Annotated[int, AtLeastOne] = 32, eval_batch_size: Annotated[int, AtLeastOne] = 128,
                 max_train_sentences: Annotated[int, AtLeastOne] | None = None,
                 max_eval_sentences: Annotated[int, AtLeastOne] | None = None,
                 bucket: bool = True, max_word_chars: Annotated[int, Range(5)] = 16, seed: int = 0) -> None:
        super().__init__()
        self.dataset, self.data_dir, self.backbone = dataset, data_dir, backbone
        self.vocab_size, self.min_frequency, self.lowercase = int(vocab_size), int(min_frequency), bool(lowercase)
        self.suffix_length, self.max_length = int(suffix_length), int(max_length)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.limits = {"train": max_train_sentences, "val": max_eval_sentences, "test": max_eval_sentences}
        self.seed, self.max_word_chars = seed, int(max_word_chars)
        self.bucket_by = "input_ids" if bucket else None
        self.tokenizer = self.vocab = self.suffix_vocab = self.char_vocab = None
        self.sentences: dict[str, list[dict]] = {}
        self.features: dict[str, list[dict]] = {}
        self.files: dict[str, Path] = {}
        self.labels = UPOS

    # ---- files ---------------------------------------------------------------------------------
    def _find_files(self) -> dict[str, Path]:
        folder = data_path(self.data_dir, self.dataset)
        prefix = DATASETS.get(self.dataset)
        if prefix is None:
            stems = sorted(p.name.split("-ud-")[0] for p in folder.glob("*-ud-train.conllu*")) if folder.is_dir() else []
            if not stems:
                raise LeedlError(f"task.data.dataset={self.dataset}: one of {', '.join(DATASETS)}, or a folder under "
                                 f"data_dir holding <lang>_<treebank>-ud-{{train,dev,test}}.conllu[.gz]")
            prefix = stems[0]
        files = {}
        for split, name in SPLIT_FILES.items():
            stem = f"{prefix}-ud-{name}.conllu"
            found = next((folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()), None)
            if found is None:
                require_files(folder, [stem + ".gz"], f"UD {self.dataset}",
                              "download the treebank's CoNLL-U files from universaldependencies.org (e.g. "
                              "github.com/UniversalDependencies/UD_English-EWT) into that folder")
            files[split] = found
        return files

    # ---- encodings -----------------------------------------------------------------------------
    def _suffix(self, word: str) -> str:
        return word.lower()[-self.suffix_length:]

    def _chars(self, word: str) -> list[str]:
        """The characters of a word (case kept); a long word keeps its first 4 and its last characters."""
        n = self.max_word_chars
        chars = list(word) if len(word) <= n else list(word[:4]) + list(word[-(n - 4):])
        return [c if not c.isspace() else "_" for c in chars]

    def _word_features(self, sents: list[dict]) -> list[dict]:
        word_ids = self.vocab.encode_batch([[w.replace(" ", "_") for w in s["words"]] for s in sents])
        suffix_ids = self.suffix_vocab.encode_batch([[self._suffix(w).replace(" ", "_") or "_" for w in s["words"]]
                                                     for s in sents])
        words = [w for s in sents for w in s["words"]]
        char_ids = iter(self.char_vocab.encode_batch([self._chars(w) for w in words]))
        out = []
        for s, ids, sfx in zip(sents, word_ids, suffix_ids):
            if len(ids) != len(s["words"]):
                raise LeedlError(f"sentence {s['sent_id']}: {len(ids)} ids for {len(s['words'])} words")
            out.append({"input_ids": ids, "suffix_ids": sfx, "shape_ids": [word_shape(w) for w in s["words"]],
                        "char_ids": [next(char_ids) for _ in s["words"]],
                        "labels": [self.tag_index.get(t, IGNORE_INDEX) for t in s["upos"]]})
        return out

    def _subword_features(self, sents: list[dict]) -> list[dict]:
        enc = self.tokenizer([s["words"] for s in sents], is_split_into_words=True, truncation=True,
                             max_length=self.max_length)
        out = []
        for i, s in enumerate(sents):
            labels, previous = [], None
            for w in enc.word_ids(i):
                labels.append(self.tag_index.get(s["upos"][w], IGNORE_INDEX) if w is not None and w != previous
                              else IGNORE_INDEX)
                previous = w
            feat = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i], "labels": labels}
            if "token_type_ids" in enc:
                feat["token_type_ids"] = enc["token_type_ids"][i]
            out.append(feat)
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        self.files = self._find_files()
        self.tag_index = {t: i for i, t in enumerate(UPOS)}
        for split, path in self.files.items():
            sents = read_conllu(path)
            limit = self.limits[split]
            self.sentences[split] = sents[: int(limit)] if limit else sents
        if self.backbone:
            self.tokenizer = load_pretrained_tokenizer(self.backbone)
            encode = self._subword_features
        else:
            train_file = self.files["train"]
            stat = train_file.stat()
            source = f"{train_file.name}:{stat.st_size}:{self.limits['train']}"
            train_words = [s["words"] for s in self.sentences["train"]]
            self.vocab = Vocabulary.train(([w.replace(" ", "_") for w in ws] for ws in train_words), self.dataset,
                                          kind="word", vocab_size=self.vocab_size, min_frequency=self.min_frequency,
                                          lowercase=self.lowercase, pretokenized=True, source=source)
            self.suffix_vocab = Vocabulary.train(([self._suffix(w).replace(" ", "_") or "_" for w in ws]
                                                  for ws in train_words), f"{self.dataset}-suffix{self.suffix_length}",
                                                 kind="word", vocab_size=5000, min_frequency=2, lowercase=True,
                                                 pretokenized=True, source=source)
            self.char_vocab = Vocabulary.train((self._chars(w) for ws in train_words for w in ws),
                                               f"{self.dataset}-chars{self.max_word_chars}", kind="word", vocab_size=500,
                                               min_frequency=2, lowercase=False, pretokenized=True, source=source)
            self.tokenizer = self.vocab
            encode = self._word_features
        self.features = {split: encode(sents) for split, sents in self.sentences.items()}
        log.info("UD %s: sentences %s (split seed %d unused: released split)", self.dataset,
                 {k: len(v) for k, v in self.sentences.items()}, SPLIT_SEED)

    def _collator(self):
        pads = {"input_ids": 0, "labels": IGNORE_INDEX}
        if self.backbone:
            pads.update(attention_mask=0, token_type_ids=0)
        else:
            pads.update(suffix_ids=0, shape_ids=0, char_ids=0)
        return PadCollator(self.tokenizer.pad_token_id, pads=pads)

    def provides(self) -> TaggingSpec:
        self.setup()
        features = None
        if self.vocab is not None:
            features = WordFeatureSizes(suffix_vocab_size=len(self.suffix_vocab), shape_vocab_size=2 * len(SHAPES),
                                        char_vocab_size=len(self.char_vocab))
        return TaggingSpec(num_classes=self.num_classes, label_names=tuple(self.labels),
                           vocab_size=len(self.tokenizer), test_words=self.test_words,
                           write_test_conllu=self.write_test_conllu, test_batch=self.test_batch,
                           pad_token_id=self.tokenizer.pad_token_id, unk_token_id=self.tokenizer.unk_token_id,
                           word_features=features)

    def test_words(self) -> list[list[str]]:
        return [s["words"] for s in self.sentences["test"]]

    def write_test_conllu(self, predicted: list[list[str]], target: Path) -> Path:
        """The test file with the UPOS column replaced by `predicted` (tags per sentence), written to `target`."""
        return write_conllu_with_upos(self.files["test"], target, predicted)

    def test_batch(self, index: int) -> dict:
        return self._collator()([self.features["test"][index]])
