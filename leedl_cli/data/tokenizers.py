"""Tokenizers in one place, not tied to BERT.

- `load_pretrained_tokenizer(backbone)`: a pretrained model's own fast tokenizer (offsets mapping), for
  fine-tuning a Hugging Face backbone (`model=bert`).
- `Vocabulary.train(...)`: a word-level (`kind=word`) or sub-word (`wordpiece`, `bpe`, `unigram`) vocabulary
  learned from the *training split* with Hugging Face `tokenizers`, for models trained from scratch. It is cached in
  `paths.cache_dir("vocab")` (never inside the read-only data folder) under a name keyed by the data set, the
  vocabulary size and every option, written atomically; the next run loads it instead of training it.

Pre-tokenisation (`pre_tokenizer`): `bert` (split on whitespace and punctuation; the default), `metaspace`
(SentencePiece-style: spaces become part of the pieces as `▁`, so `decode` gives back plain text — what
translation needs for sacreBLEU) and `metaspace_cjk` (the same, and every CJK character its own piece, so a
sub-word vocabulary works on Chinese, which has no spaces between words). `pretokenized=True` (word lists) uses
whitespace splitting.

Special tokens of a trained vocabulary: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, [BOS]=5, [EOS]=6.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Literal, get_args

from leedl_cli.atomic import write_text_atomic
from leedl_cli.backbones import resolve_backbone
from leedl_cli.errors import LeedlError

log = logging.getLogger(__name__)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"]
VocabKind = Literal["word", "wordpiece", "bpe", "unigram"]
KINDS: tuple[str, ...] = get_args(VocabKind)
PRE_TOKENIZERS = ("bert", "metaspace", "metaspace_cjk")
# CJK ideographs, radicals, kana, CJK punctuation and full-width forms: one piece each under metaspace_cjk
CJK_CHARACTER = "[\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"


def load_pretrained_tokenizer(backbone: str | os.PathLike):
    """The backbone's own fast tokenizer (offsets mapping needs a fast one)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    where = resolve_backbone(backbone)
    try:
        tok = AutoTokenizer.from_pretrained(where, use_fast=True)
    except OSError as err:
        raise LeedlError(f"cannot load the tokenizer of model.backbone={backbone} ({where}): {err}. "
                         f"Offline, give a local directory (default: model.backbone=minilm)") from err
    if not tok.is_fast:
        raise LeedlError(f"the tokenizer of {backbone} is not a fast tokenizer; leedl needs offsets mapping")
    return tok


def _build(kind: str, lowercase: bool, pretokenized: bool, pre_tokenizer: str = "bert"):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        trainer_cls = trainers.WordLevelTrainer
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.decoder = decoders.WordPiece()
        trainer_cls = trainers.WordPieceTrainer
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer_cls = trainers.BpeTrainer
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer_cls = trainers.UnigramTrainer
    else:
        raise LeedlError(f"vocabulary kind={kind!r}: one of {', '.join(KINDS)}")
    norms = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(norms)
    if pre_tokenizer not in PRE_TOKENIZERS:
        raise LeedlError(f"vocabulary pre_tokenizer={pre_tokenizer!r}: one of {', '.join(PRE_TOKENIZERS)}")
    if pretokenized:
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    elif pre_tokenizer == "bert":
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    else:
        steps = [pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)]
        if pre_tokenizer == "metaspace_cjk":
            steps.append(pre_tokenizers.Split(Regex(CJK_CHARACTER), behavior="isolated"))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    return tok, trainer_cls


class Vocabulary:
    """A trained `tokenizers.Tokenizer` with the few things a from-scratch model needs."""

    def __init__(self, tokenizer, kind: str, pretokenized: bool) -> None:
        self.tokenizer, self.kind, self.pretokenized = tokenizer, kind, pretokenized
        self.pad_token_id = tokenizer.token_to_id("[PAD]")
        self.unk_token_id = tokenizer.token_to_id("[UNK]")
        self.cls_token_id = tokenizer.token_to_id("[CLS]")
        self.sep_token_id = tokenizer.token_to_id("[SEP]")
        self.mask_token_id = tokenizer.token_to_id("[MASK]")
        self.bos_token_id = tokenizer.token_to_id("[BOS]")
        self.eos_token_id = tokenizer.token_to_id("[EOS]")

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    @staticmethod
    def cache_path(dataset: str, kind: str, vocab_size: int, **options) -> Path:
        from leedl_cli.paths import cache_dir

        opts = json.dumps(options, sort_keys=True, default=str)
        digest = hashlib.sha256(opts.encode()).hexdigest()[:12]
        return cache_dir("vocab") / f"{dataset}-{kind}-{vocab_size}-{digest}.json"

    @classmethod
    def train(cls, texts: Iterable, dataset: str, kind: str = "word", vocab_size: int = 20000,
              min_frequency: int = 1, lowercase: bool = True, pretokenized: bool = False,
              source: str = "", pre_tokenizer: str = "bert") -> "Vocabulary":
        """Learn a vocabulary from `texts` (strings, or word lists when `pretokenized`), or load the cached one.

        `dataset` and `source` (e.g. the training file's size and mtime) name what the texts are; with the
        kind, size and options they key the cache file.
        """
        from tokenizers import Tokenizer

        if kind not in KINDS:
            raise LeedlError(f"vocabulary kind={kind!r}: one of {', '.join(KINDS)}")
        options = dict(min_frequency=min_frequency, lowercase=lowercase, pretokenized=pretokenized, source=source)
        if pre_tokenizer != "bert":   # the key of a default-pre-tokenizer vocabulary stays what it was
            options["pre_tokenizer"] = pre_tokenizer
        path = cls.cache_path(dataset, kind, int(vocab_size), **options)
        if path.is_file():
            log.info("vocabulary %s loaded from %s", dataset, path)
            return cls(Tokenizer.from_file(str(path)), kind, pretokenized)
        tok, trainer_cls = _build(kind, lowercase, pretokenized, pre_tokenizer)
        if kind == "unigram":   # the unigram trainer has no min_frequency
            trainer = trainer_cls(vocab_size=int(vocab_size), special_tokens=SPECIALS, unk_token="[UNK]",
                                  show_progress=False)
        else:
            trainer = trainer_cls(vocab_size=int(vocab_size), min_frequency=int(min_frequency),
                                  special_tokens=SPECIALS, show_progress=False)
        lines = (" ".join(t) if pretokenized else t for t in texts)
        tok.train_from_iterator(lines, trainer=trainer)
        write_text_atomic(path, tok.to_str(pretty=True))
        log.info("vocabulary %s (%s, %d entries) trained and cached in %s", dataset, kind, tok.get_vocab_size(), path)
        return cls(tok, kind, pretokenized)

    @classmethod
    def train_on_corpus(cls, lines: list[str], corpus: str, prefix: str, **options) -> "Vocabulary":
        """A vocabulary learned from the training lines of a text corpus (`task.data.corpus`), cached under the
        corpus's name and a digest of the lines: another corpus, or the same one cut differently, gets its own."""
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        return cls.train(lines, dataset=f"{prefix}-{corpus.replace('/', '_')[-40:]}", source=digest, **options)

    def encode(self, text: str | list[str]) -> list[int]:
        """Token ids of a string, or (pretokenized) one id per word for `kind=word`."""
        return self.tokenizer.encode(text, is_pretokenized=self.pretokenized, add_special_tokens=False).ids

    def encode_batch(self, texts: list) -> list[list[int]]:
        encs = self.tokenizer.encode_batch(texts, is_pretokenized=self.pretokenized, add_special_tokens=False)
        return [e.ids for e in encs]

    def decode(self, ids: list[int]) -> str:
        """Plain text from token ids (special tokens left out); with a metaspace pre-tokenizer the original
        spacing comes back, so the text can be scored by sacreBLEU as it is."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    @classmethod
    def load(cls, path, kind: str = "bpe", pretokenized: bool = False) -> "Vocabulary":
        """A vocabulary saved with `save` (e.g. beside a run's checkpoints)."""
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), kind, pretokenized)

    def save(self, path) -> None:
        write_text_atomic(path, self.tokenizer.to_str(pretty=True))

    def as_bert_tokenizer(self):
        """This vocabulary as a transformers fast tokenizer with BERT's conventions: `[CLS] a [SEP]`, pairs
        `[CLS] a [SEP] b [SEP]` with token type 1 for the second part, [PAD]/[UNK]/[MASK]. `save_pretrained` then
        `AutoTokenizer.from_pretrained` give it back, so a BERT pretrained with it (task=mlm_pretrain
        `task.data.vocab_size=N`) is fine-tuned with its own vocabulary (`model.backbone=<run>/hf_model`)."""
        import copy

        from tokenizers import processors
        from transformers import PreTrainedTokenizerFast

        tok = copy.deepcopy(self.tokenizer)
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]",
                                       model_input_names=["input_ids", "token_type_ids", "attention_mask"])

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self.tokenizer.id_to_token(i)
