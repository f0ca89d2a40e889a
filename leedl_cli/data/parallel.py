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
`batch_size` sentences.
"""
from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path
from typing import Literal

from leedl_cli.data.tokenized import BucketBatchSampler, FeatureDataset, PadCollator, TokenizedDataModule
from leedl_cli.data.tokenizers import CJK_CHARACTER, KINDS, Vocabulary
from leedl_cli.errors import CorruptDataError, LeedlError
from leedl_cli.paths import data_path, require_files

log = logging.getLogger(__name__)
DATASETS = {"multi30k": ("de", "en"), "tatoeba": ("en", "zh")}
FOLDERS = {"multi30k": "multi30k", "tatoeba": "tatoeba-cmn-eng"}
MULTI30K_TESTS = ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")
TATOEBA_FILE = "cmn.txt.gz"
CJK = re.compile(CJK_CHARACTER)


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
    def __init__(self, dataset: Literal["multi30k", "tatoeba"] = "multi30k", data_dir: str | None = None, src: str | None = None,
                 tgt: str | None = None, test_split: str = "test_2016_flickr",
                 vocab: Literal["word", "wordpiece", "bpe", "unigram"] = "bpe",
                 vocab_size: int = 8000, shared_vocab: bool = True, min_frequency: int = 2, max_length: int = 128,
                 batch_size: int = 128, max_tokens: int | None = 2500, eval_batch_size: int = 200,
                 max_train_sentences: int | None = None, max_eval_sentences: int | None = None,
                 split_seed: int = 0, split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
                 seed: int = 0) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise LeedlError(f"task.data.dataset={dataset!r}: one of {', '.join(DATASETS)}")
        langs = DATASETS[dataset]
        src = src or langs[0]
        tgt = tgt or next(x for x in langs if x != src)
        for key, lang in (("src", src), ("tgt", tgt)):
            if lang not in langs:
                raise LeedlError(f"task.data.{key}={lang!r}: {dataset} has {' and '.join(langs)}")
        if src == tgt:
            raise LeedlError(f"task.data.src and task.data.tgt are both {src!r}: give two different languages")
        if vocab not in KINDS or vocab == "word":
            raise LeedlError(f"task.data.vocab={vocab!r}: one of bpe, unigram, wordpiece (sub-words)")
        if dataset == "multi30k" and test_split not in MULTI30K_TESTS:
            raise LeedlError(f"task.data.test_split={test_split!r}: one of {', '.join(MULTI30K_TESTS)}")
        self.dataset, self.data_dir, self.src, self.tgt, self.test_split = dataset, data_dir, src, tgt, test_split
        self.vocab_kind, self.vocab_size, self.shared_vocab = vocab, int(vocab_size), bool(shared_vocab)
        self.min_frequency, self.max_length = int(min_frequency), int(max_length)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.max_tokens = None if max_tokens is None else int(max_tokens)
        self.limits = {"train": max_train_sentences, "val": max_eval_sentences, "test": max_eval_sentences}
        self.split_seed, self.split_fractions, self.seed = int(split_seed), tuple(split_fractions), seed
        self.texts: dict[str, list[tuple[str, str]]] = {}
        self.features: dict[str, list[dict]] = {}
        self.src_vocab = self.tgt_vocab = None
        self.source_key = ""

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
        eos = self.src_vocab.eos_token_id
        return [ids[: self.max_length - 1] + [eos] for ids in self.src_vocab.encode_batch(sentences)]

    def encode_target(self, sentences: list[str]) -> list[list[int]]:
        bos, eos = self.tgt_vocab.bos_token_id, self.tgt_vocab.eos_token_id
        return [[bos] + ids[: self.max_length - 2] + [eos] for ids in self.tgt_vocab.encode_batch(sentences)]

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

        lengths = [max(len(f["tgt_ids"]), len(f["src_ids"])) for f in self.features[split]]
        if shuffle and self.max_tokens:
            sampler = TokenBatchSampler(lengths, self.max_tokens, self.batch_size, seed=self.seed or 0)
        elif shuffle:
            sampler = BucketBatchSampler(lengths, self.batch_size, seed=self.seed or 0)
        else:   # evaluation: sorted by length (less padding, shorter searches); feature_index keeps the order
            sampler = BucketBatchSampler(lengths, self.eval_batch_size, pool=10**9, shuffle=False)
        return DataLoader(FeatureDataset(self.features[split]), batch_sampler=sampler, collate_fn=self._collator())

    def model_kwargs(self) -> dict:
        self.setup()
        return {"src_vocab_size": len(self.src_vocab), "tgt_vocab_size": len(self.tgt_vocab),
                "pad_token_id": self.tgt_vocab.pad_token_id, "shared_vocab": self.shared_vocab}

    @property
    def bleu_tokenize(self) -> str:
        """sacreBLEU's tokenizer for the target language: `zh` for Chinese, else `13a`."""
        return "zh" if self.tgt == "zh" else "13a"
