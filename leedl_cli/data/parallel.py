"""Parallel text for translation (chapter 4, the Transformer): `task=translation`.

Two families of files (`task.data.dataset`):
- `multi30k`: `<data_dir>/multi30k/{train,val,<test_split>}.{de,en}.gz`, one sentence per line, line-aligned
  (Multi30k task 1: train 29,000, val 1,014, test_2016_flickr 1,000, test_2017_flickr 1,000). German -> English
  by default (`src: de`, `tgt: en`; swap them for English -> German). `test_split` picks the test set.
- `tatoeba`: `<data_dir>/tatoeba-cmn-eng/cmn.txt.gz` (the manythings.org export, 29,155 pairs, lines
  `English<TAB>Chinese<TAB>attribution`; two lines have a space instead of the first tab: they are cut before
  their first CJK character). Languages `en` and `zh`. It has no released split, so the pairs are split
  deterministically by `split_seed` (never the run's seed) into train/val/test by `split_fractions`
  (default 0.9/0.05/0.05), *grouped by the English sentence*: all translations of one English sentence land in
  the same part, so no test source sentence was seen in training.

A sub-word vocabulary (`vocab: bpe | unigram | wordpiece`, `vocab_size`) is learned from the *training split*
with Hugging Face `tokenizers` (data/tokenizers.py; cached in paths.cache_dir("vocab")), one shared by both
languages (`shared_vocab: true`, what tied source/target/output embeddings need) or one per language. Pieces
keep their spaces (SentencePiece-style metaspace), so `detokenize` gives back plain text that sacreBLEU scores
as it is; Chinese is pre-tokenised one character per piece before the sub-words are learned. Case is kept
(cased BLEU).

Each example: `src_ids` (source pieces + [EOS]) and `tgt_ids` ([BOS] + target pieces + [EOS]); `feature_index`
finds the raw reference text (`self.texts[split][i] = (source, target)`). Training batches are length-bucketed;
with `max_tokens` set a batch holds as many sentences as fit that many (padded) target tokens, else
`batch_size` sentences. Validation and test batches are the sentences sorted by source length, `eval_batch_size`
at a time: `leedl translate` encodes and batches new sentences the same way (data/parallel_format.py), so the test sources
given to it come back exactly as the test decoded them.

Sequence-level knowledge distillation (`distill_from: <run dir>` of a trained autoregressive translation run,
`distill_beam_size`): the training targets become that run's beam-search translations of the training sources
(leedl_cli.data.distillation, cached); the vocabulary is still learned from the references, validation and test
keep the references. `reference_targets: true` keeps the references even with `distill_from` set (a preset row
that names the teacher for other rows).

What the task and the models get (`provides()` -> `ParallelTextSpec`): the vocabulary sizes, the pad id, whether
the vocabulary is shared, both vocabularies (the target's is the detokeniser), sacreBLEU's tokenizer for the
target language, the reference translations of a split, and how sentences are cut and batched for decoding.
"""
from __future__ import annotations

import gzip
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Literal, get_args

from leedl_cli.contract import AtLeastOne, NonNegative, Range
from leedl_cli.data.parallel_format import decoding_batches, encode_sources, encode_targets
from leedl_cli.data.tokenized import BucketBatchSampler, FeatureDataset, PadCollator, TokenizedDataModule
from leedl_cli.data.tokenizers import CJK_CHARACTER, Vocabulary
from leedl_cli.errors import CorruptDataError, LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)
Dataset = Literal["multi30k", "tatoeba"]
DATASETS: tuple[str, ...] = get_args(Dataset)
LANGUAGES = {"multi30k": ("de", "en"), "tatoeba": ("en", "zh")}          # the languages of each data set
FOLDERS = {"multi30k": "multi30k", "tatoeba": "tatoeba-cmn-eng"}
SubwordKind = Literal["bpe", "unigram", "wordpiece"]
SUBWORD_KINDS: tuple[str, ...] = get_args(SubwordKind)
Multi30kTest = Literal["test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr"]
MULTI30K_TESTS: tuple[str, ...] = get_args(Multi30kTest)
TATOEBA_FILE = "cmn.txt.gz"
CJK = re.compile(CJK_CHARACTER)


@dataclass(frozen=True)
class ParallelTextSpec:
    """What a parallel-text data module provides to the seq2seq models and the translation task."""

    src_vocab_size: int                     # model: source embedding rows
    tgt_vocab_size: int                     # model: target embedding rows and output layer
    pad_token_id: int                       # model (masks) and task (loss, lengths)
    shared_vocab: bool                      # model: one vocabulary for both languages (tied embeddings, copy)
    src_vocab: Vocabulary                   # task: saved with the run (what `leedl translate` encodes with)
    tgt_vocab: Vocabulary                   # task: [BOS]/[EOS] ids, detokenisation (`decode`), saved with the run
    bleu_tokenize: str                      # task: sacreBLEU's tokenizer for the target language
    references: Callable[[str], list[str]]  # task: references(split) -> target texts, by feature_index
    max_length: int                         # task, saved with the run: source pieces kept (+ [EOS])
    eval_batch_size: int                    # task, saved with the run: sentences per decoding batch


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return [line.rstrip("\n").strip() for line in f]
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise CorruptDataError(f"{path}: cannot be read as UTF-8 text{' (gzip)' if path.suffix == '.gz' else ''}: "
                               f"{err}") from err


def read_tatoeba(path: Path) -> list[tuple[str, str]]:
    """(English, Chinese) pairs of the manythings.org export; attribution dropped."""
    pairs = []
    for n, line in enumerate(read_lines(path), 1):
        if not line:
            continue
        cols = line.split("\t")
        if len(cols) >= 3:
            en, zh = cols[0], cols[1]
        else:    # a space instead of the first tab: cut before the first CJK character
            m = CJK.search(cols[0])
            if m is None:
                raise CorruptDataError(f"{path}:{n}: neither `English<TAB>Chinese<TAB>attribution` nor a Chinese "
                                       f"sentence after the English one: {line[:80]!r}")
            en, zh = cols[0][: m.start()], cols[0][m.start():]
        pairs.append((en.strip(), zh.strip()))
    return pairs


def split_by_group(keys: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[int]]:
    """Indices of train/val/test: the distinct keys shuffled by `seed` and cut by `fractions`; every index
    follows its key (all translations of one sentence stay in one part)."""
    import random

    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val, n_test = max(1, round(n * fractions[1])), max(1, round(n * fractions[2]))
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {split: sorted(i for k in ks for i in groups[k]) for split, ks in parts.items()}


class TokenBatchSampler(BucketBatchSampler):
    """Length bucketing with batches of at most `max_tokens` padded target tokens (the Transformer's
    'batch by tokens'); `batch_size` still caps the sentences per batch."""

    def __init__(self, lengths: list[int], max_tokens: int, batch_size: int = 10**9, seed: int = 0,
                 pool: int = 50, shuffle: bool = True) -> None:
        super().__init__(lengths, batch_size, seed, pool, shuffle)
        self.max_tokens = int(max_tokens)

    def _batches(self) -> list[list[int]]:
        import random

        rng = random.Random(self.seed * 100003 + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        mean = max(1.0, sum(self.lengths) / max(1, len(self.lengths)))
        size = max(1, int(self.pool * self.max_tokens / mean))     # sentences of about `pool` batches, sorted
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start:start + size], key=lambda i: self.lengths[i])
            batch, longest = [], 0
            for i in chunk:
                longest_if = max(longest, self.lengths[i])
                if batch and (longest_if * (len(batch) + 1) > self.max_tokens or len(batch) >= self.batch_size):
                    batches.append(batch)
                    batch, longest_if = [], self.lengths[i]
                batch.append(i)
                longest = longest_if
            if batch:
                batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        return len(self._batches())


class ParallelDataModule(TokenizedDataModule):
    def __init__(self, dataset: Dataset = "multi30k", data_dir: str | None = None, src: str | None = None,
                 tgt: str | None = None, test_split: Multi30kTest = "test_2016_flickr", vocab: SubwordKind = "bpe",
                 vocab_size: Annotated[int, AtLeastOne] = 8000, shared_vocab: bool = True,
                 min_frequency: Annotated[int, NonNegative] = 2, max_length: Annotated[int, Range(3)] = 128,
                 batch_size: Annotated[int, AtLeastOne] = 128, max_tokens: Annotated[int, AtLeastOne] | None = 2500,
                 eval_batch_size: Annotated[int, AtLeastOne] = 200,
                 max_train_sentences: Annotated[int, AtLeastOne] | None = None,
                 max_eval_sentences: Annotated[int, AtLeastOne] | None = None, split_seed: int = 0,
                 split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05), seed: int | None = 0,
                 distill_from: str | None = None, distill_beam_size: Annotated[int, AtLeastOne] = 5,
                 reference_targets: bool = False) -> None:
        super().__init__()
        problems = self.config_problems(dict(dataset=dataset, src=src, tgt=tgt, split_fractions=split_fractions))
        if problems:   # what the validator refuses before a run, refused here too for direct use
            raise LeedlError("\n".join(f"task.data.{line}" for line in problems))
        src, tgt = self.languages(dataset, src, tgt)
        self.dataset, self.data_dir, self.src, self.tgt, self.test_split = dataset, data_dir, src, tgt, test_split
        self.vocab_kind, self.vocab_size, self.shared_vocab = vocab, int(vocab_size), bool(shared_vocab)
        self.min_frequency, self.max_length = int(min_frequency), int(max_length)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.limits = {"train": max_train_sentences, "val": max_eval_sentences, "test": max_eval_sentences}
        self.split_seed, self.split_fractions, self.seed = int(split_seed), tuple(split_fractions), seed
        self.distill_from = None if reference_targets else distill_from
        self.distill_beam_size = int(distill_beam_size)
        self.texts: dict[str, list[tuple[str, str]]] = {}
        self.features: dict[str, list[dict]] = {}
        self.src_vocab = self.tgt_vocab = None
        self.source_key = ""

    @staticmethod
    def languages(dataset: str, src: str | None, tgt: str | None) -> tuple[str, str]:
        """(source, target): null picks the data set's first language as the source and the other as target."""
        langs = LANGUAGES[dataset]
        src = src or (langs[0] if tgt != langs[0] else langs[1])
        return src, tgt or next(x for x in langs if x != src)

    @classmethod
    def config_problems(cls, options: dict) -> list[str]:
        """The languages belong to the data set and differ; the split fractions are three shares summing to 1."""
        dataset = options.get("dataset", "multi30k")
        if dataset not in LANGUAGES:
            return []     # the Literal check names it
        langs, problems = LANGUAGES[dataset], []
        for key in ("src", "tgt"):
            lang = options.get(key)
            if lang is not None and lang not in langs:
                problems.append(f"{key}={lang}: {dataset} has {' and '.join(langs)}")
        if not problems:
            src, tgt = cls.languages(dataset, options.get("src"), options.get("tgt"))
            if src == tgt:
                problems.append(f"tgt={tgt}: the same language as src; give two different languages")
        fractions = options.get("split_fractions") or ()
        numbers = [f for f in fractions if isinstance(f, (int, float)) and not isinstance(f, bool)]
        if len(numbers) != 3 or min(numbers) < 0 or not math.isclose(sum(numbers), 1.0, abs_tol=1e-6):
            problems.append(f"split_fractions={list(fractions)}: expected three shares >= 0 (train, val, test) "
                            f"summing to 1")
        return problems

    # ---- files ---------------------------------------------------------------------------------
    def _folder(self) -> Path:
        return data_path(self.data_dir, FOLDERS[self.dataset])

    def _read_multi30k(self) -> dict[str, list[tuple[str, str]]]:
        folder = self._folder()
        names = {"train": "train", "val": "val", "test": self.test_split}
        files = [f"{name}.{lang}.gz" for name in names.values() for lang in (self.src, self.tgt)]
        require_files(folder, files, "Multi30k", "download the task-1 files (train, val, test_2016_flickr, ...) "
                      ".de.gz/.en.gz from github.com/multi30k/dataset (data/task1/raw) into that folder")
        out = {}
        for split, name in names.items():
            src, tgt = read_lines(folder / f"{name}.{self.src}.gz"), read_lines(folder / f"{name}.{self.tgt}.gz")
            if len(src) != len(tgt):
                raise CorruptDataError(f"{folder}/{name}: {len(src)} {self.src} lines but {len(tgt)} {self.tgt} lines")
            out[split] = list(zip(src, tgt))
        stat = (folder / f"train.{self.src}.gz").stat()
        self.source_key = f"train.{self.src}.gz:{stat.st_size}"
        return out

    def _read_tatoeba(self) -> dict[str, list[tuple[str, str]]]:
        folder = self._folder()
        require_files(folder, [TATOEBA_FILE], "Tatoeba English-Chinese",
                      "download cmn-eng.zip from manythings.org/anki, and gzip its cmn.txt into that folder")
        pairs = read_tatoeba(folder / TATOEBA_FILE)
        parts = split_by_group([en for en, _ in pairs], self.split_fractions, self.split_seed)
        by_lang = [dict(en=en, zh=zh) for en, zh in pairs]
        self.source_key = f"{TATOEBA_FILE}:{(folder / TATOEBA_FILE).stat().st_size}:split{self.split_seed}"
        return {split: [(by_lang[i][self.src], by_lang[i][self.tgt]) for i in idx] for split, idx in parts.items()}

    # ---- vocabularies --------------------------------------------------------------------------
    def _pre_tokenizer(self, langs) -> str:
        return "metaspace_cjk" if "zh" in langs else "metaspace"

    def _train_vocab(self, texts, langs: tuple[str, ...]) -> Vocabulary:
        name = f"{self.dataset}-{'+'.join(langs)}"
        return Vocabulary.train(texts, name, kind=self.vocab_kind, vocab_size=self.vocab_size,
                                min_frequency=self.min_frequency, lowercase=False,
                                source=f"{self.source_key}:{self.limits['train']}",
                                pre_tokenizer=self._pre_tokenizer(langs))

    def build_vocabularies(self) -> None:
        train = self.texts["train"]
        if self.shared_vocab:
            langs = tuple(sorted((self.src, self.tgt)))
            self.src_vocab = self.tgt_vocab = self._train_vocab((t for pair in train for t in pair), langs)
        else:
            self.src_vocab = self._train_vocab((s for s, _ in train), (self.src,))
            self.tgt_vocab = self._train_vocab((t for _, t in train), (self.tgt,))

    # ---- encoding ------------------------------------------------------------------------------
    def encode_source(self, sentences: list[str]) -> list[list[int]]:
        return encode_sources(self.src_vocab, sentences, self.max_length)

    def encode_target(self, sentences: list[str]) -> list[list[int]]:
        return encode_targets(self.tgt_vocab, sentences, self.max_length)

    def detokenize(self, ids) -> str:
        """Plain target-language text of generated ids (special tokens left out)."""
        return self.tgt_vocab.decode([int(i) for i in ids])

    def setup(self, stage: str | None = None) -> None:
        if self.features:
            return
        texts = self._read_multi30k() if self.dataset == "multi30k" else self._read_tatoeba()
        for split, pairs in texts.items():
            pairs = [p for p in pairs if p[0] and p[1]] if split == "train" else pairs
            limit = self.limits[split]
            self.texts[split] = pairs[: int(limit)] if limit else pairs
        self.build_vocabularies()
        if self.distill_from:
            from leedl_cli.data.distillation import distilled_targets

            sources = [s for s, _ in self.texts["train"]]
            targets = distilled_targets(self.distill_from, sources, self.distill_beam_size)
            self.texts["train"] = [(s, t) for s, t in zip(sources, targets) if t]   # an empty output teaches nothing
        for split, pairs in self.texts.items():
            src = self.encode_source([s for s, _ in pairs])
            tgt = self.encode_target([t for _, t in pairs])
            self.features[split] = [{"src_ids": s, "tgt_ids": t} for s, t in zip(src, tgt)]
        log.info("%s %s->%s: sentence pairs %s; vocabulary %s%s", self.dataset, self.src, self.tgt,
                 {k: len(v) for k, v in self.texts.items()}, len(self.tgt_vocab),
                 " (shared)" if self.shared_vocab else f" / source {len(self.src_vocab)}")

    def _collator(self):
        return PadCollator(pads={"src_ids": self.src_vocab.pad_token_id, "tgt_ids": self.tgt_vocab.pad_token_id})

    def _loader(self, split: str, shuffle: bool):
        from torch.utils.data import DataLoader

        feats = self.features[split]
        if shuffle:
            lengths = [max(len(f["tgt_ids"]), len(f["src_ids"])) for f in feats]
            sampler = (TokenBatchSampler(lengths, self.max_tokens, self.batch_size, seed=self.seed or 0)
                       if self.max_tokens else BucketBatchSampler(lengths, self.batch_size, seed=self.seed or 0))
        else:   # evaluation: as `leedl translate` batches (by source length); feature_index keeps the order
            sampler = decoding_batches([len(f["src_ids"]) for f in feats], self.eval_batch_size)
        return DataLoader(FeatureDataset(feats), batch_sampler=sampler, collate_fn=self._collator())

    def provides(self) -> ParallelTextSpec:
        self.setup()
        return ParallelTextSpec(
            src_vocab_size=len(self.src_vocab), tgt_vocab_size=len(self.tgt_vocab),
            pad_token_id=self.tgt_vocab.pad_token_id, shared_vocab=self.shared_vocab, src_vocab=self.src_vocab,
            tgt_vocab=self.tgt_vocab, bleu_tokenize=self.bleu_tokenize, references=self.references,
            max_length=self.max_length, eval_batch_size=self.eval_batch_size)

    def references(self, split: str) -> list[str]:
        """The target sentences of a split (`val`, `test`), in feature_index order."""
        return [tgt for _, tgt in self.texts[split]]

    @property
    def bleu_tokenize(self) -> str:
        """sacreBLEU's tokenizer for the target language: `zh` for Chinese, else `13a`."""
        return "zh" if self.tgt == "zh" else "13a"
