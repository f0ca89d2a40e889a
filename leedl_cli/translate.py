"""Translating with a trained `task=translation` run: the model rebuilt from what the run persisted.

A run writes `translation_model.json` (SPEC_FILE) when it starts fitting or testing, beside its checkpoints:

- `model`: the model's class and constructor arguments (`target`, `kwargs`);
- `vocabularies`: the files (in the run directory) of the source and target vocabularies;
- `source_max_length`: source pieces kept before [EOS] (longer sentences are cut, as in training);
- `batch_size`: sentences per decoding batch (the test's `eval_batch_size`);
- `decoding`: the test's decoding settings (leedl_cli.decoding.DecodeSettings: strategy and its options, the
  length limit `max_len_a * source length + max_len_b`, the sampling seed);
- `weights_from`: the checkpoint a test-only run (`task.fit=false`) tested, when it has none of its own;
- `nat`: for the non-autoregressive Transformer (model=nat_transformer), its decoding: `iterations` decoder passes
  (1: one pass; more: mask-predict), with no search options (null for autoregressive models).

`Translator.from_run(RUN)` rebuilds all of it and translates as the test did: sources encoded the same way,
batched by source length `batch_size` at a time, decoded by `leedl_cli.decoding.decode_sources` with the same
settings unless the caller changes some (a non-autoregressive run: leedl_cli.nat_decoding.decode_nat with the
run's `nat_iterations`, which is the one thing a caller may change). So the run's test sources, given in test-file order, come back as the
lines of its `predictions_test.txt`. `leedl translate` and `translate()` are the command and the Python call.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from leedl_cli.atomic import write_json_atomic
from leedl_cli.checkpoints import CheckpointNotFoundError, checkpoint_file, load_model_weights, run_dir_of
from leedl_cli.data.parallel_format import decoding_batches, encode_sources
from leedl_cli.decoding import DecodeSettings, decode_sources
from leedl_cli.errors import LeedlError
from leedl_cli.nat_decoding import decode_nat

SPEC_FILE = "translation_model.json"
SPEC_FORMAT = 2
VOCAB_FILES = {"source": "vocab_src.json", "target": "vocab_tgt.json"}
# what a run persisted before the decoding settings were part of the spec (format 1) is decoded this way
FORMAT1_DECODING = DecodeSettings(strategy="beam", beam_size=5)
FORMAT1_BATCH_SIZE = 64


def write_spec(run_dir: Path, model, src_vocab, tgt_vocab, decoding: DecodeSettings, source_max_length: int,
               batch_size: int, weights_from: str | None = None, nat: dict | None = None) -> Path:
    """The run's vocabularies and SPEC_FILE: everything `Translator.from_run` needs besides the weights."""
    run_dir = Path(run_dir)
    src_vocab.save(run_dir / VOCAB_FILES["source"])
    tgt_vocab.save(run_dir / VOCAB_FILES["target"])
    cls = type(model)
    return write_json_atomic(run_dir / SPEC_FILE, {
        "format": SPEC_FORMAT,
        "model": {"target": f"{cls.__module__}.{cls.__qualname__}", "kwargs": dict(model.config)},
        "vocabularies": {**VOCAB_FILES, "kind": getattr(src_vocab, "kind", "bpe")},
        "source_max_length": int(source_max_length),
        "batch_size": int(batch_size),
        "decoding": decoding.as_dict(),
        "weights_from": weights_from,
        "nat": nat,
    })


@dataclass(frozen=True)
class TranslationSpec:
    """SPEC_FILE as read back (a format-1 file: the model and the length cut only; the rest as FORMAT1_*)."""

    run_dir: Path
    model_target: str
    model_kwargs: dict
    source_vocab: Path
    target_vocab: Path
    vocab_kind: str
    source_max_length: int
    batch_size: int
    decoding: DecodeSettings
    weights_from: str | None
    nat: dict | None = None

    @classmethod
    def read(cls, run_dir: Path) -> "TranslationSpec":
        run_dir = Path(run_dir)
        path = run_dir / SPEC_FILE
        if not path.is_file():
            raise LeedlError(f"{run_dir}: not a task=translation run directory (no {SPEC_FILE}); give the directory "
                             f"of a `leedl run task=translation` run, or a .ckpt inside one")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LeedlError(f"{path}: cannot be read as JSON ({err}); the run directory is damaged") from err
        if spec.get("format", 1) == 1:
            model, vocabs = {"target": spec["target"], "kwargs": spec["kwargs"]}, VOCAB_FILES
            decoding, batch_size, max_length = FORMAT1_DECODING, FORMAT1_BATCH_SIZE, spec.get("max_length", 128)
        else:
            model, vocabs, max_length = spec["model"], spec["vocabularies"], spec["source_max_length"]
            decoding, batch_size = DecodeSettings(**spec["decoding"]), spec["batch_size"]
        files = {side: run_dir / vocabs[side] for side in ("source", "target")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise LeedlError(f"{run_dir}: {', '.join(missing)} missing (the run's vocabularies); the run directory "
                             f"is incomplete")
        return cls(run_dir, model["target"], dict(model["kwargs"]), files["source"], files["target"],
                   vocabs.get("kind", "bpe"), int(max_length), int(batch_size), decoding, spec.get("weights_from"),
                   spec.get("nat"))


class Translator:
    """A trained seq2seq model with its vocabularies and decoding settings; `translate(sentences)`."""

    def __init__(self, model, src_vocab, tgt_vocab, decoding: DecodeSettings, source_max_length: int,
                 batch_size: int, checkpoint: Path | None = None, nat_iterations: int | None = None) -> None:
        self.model, self.src_vocab, self.tgt_vocab = model.eval(), src_vocab, tgt_vocab
        self.decoding, self.source_max_length, self.batch_size = decoding, int(source_max_length), int(batch_size)
        self.checkpoint, self.nat_iterations = checkpoint, nat_iterations

    @classmethod
    def from_run(cls, run_dir_or_ckpt) -> "Translator":
        """A run directory (its best validation-BLEU checkpoint, else its last; a test-only run: the checkpoint
        it tested) or a .ckpt inside one."""
        import hydra

        from leedl_cli.data.tokenizers import Vocabulary

        given = Path(run_dir_or_ckpt).expanduser()
        run_dir = run_dir_of(given) if given.is_file() else given
        spec = TranslationSpec.read(run_dir)
        try:
            ckpt = checkpoint_file(given)
        except CheckpointNotFoundError:
            if not spec.weights_from:
                raise
            ckpt = checkpoint_file(spec.weights_from)
        model = hydra.utils.get_object(spec.model_target)(**spec.model_kwargs)
        load_model_weights(model, ckpt)
        return cls(model, Vocabulary.load(spec.source_vocab, spec.vocab_kind),
                   Vocabulary.load(spec.target_vocab, spec.vocab_kind), spec.decoding, spec.source_max_length,
                   spec.batch_size, ckpt, int(spec.nat["iterations"]) if spec.nat else None)

    def translate(self, sentences: list[str], **changes) -> list[str]:
        """One translation per sentence, in order. `changes`: decoding options to use instead of the run's
        (`strategy`, `beam_size`, `length_penalty`, `temperature`, `top_k`, `top_p`, `max_len_a`, `max_len_b`,
        `seed`; None keeps the run's). A non-autoregressive run takes `nat_iterations` only (decoder passes)."""
        iterations = changes.pop("nat_iterations", None)
        if self.nat_iterations is None and iterations is not None:
            raise LeedlError("nat_iterations: this run's model is autoregressive; the decoder-pass count is for a "
                             "model=nat_transformer run (give --decode/--beam-size/... instead)")
        if self.nat_iterations is not None:
            given = sorted(k for k, v in changes.items() if v is not None)
            if given:
                raise LeedlError(f"{', '.join(given)}: a non-autoregressive run (model=nat_transformer) decodes "
                                 f"every position at once, with no search or sampling options; give nat_iterations "
                                 f"(--iterations: 1 = one pass, more = mask-predict) or nothing")
            if iterations is not None and int(iterations) < 1:
                raise LeedlError(f"nat_iterations={iterations}: give 1 or more decoder passes")
        settings = self.decoding.replace(**changes)
        ids = encode_sources(self.src_vocab, list(sentences), self.source_max_length)
        pad, out = self.src_vocab.pad_token_id, [""] * len(ids)
        for batch in decoding_batches([len(x) for x in ids], self.batch_size):
            longest = max(len(ids[i]) for i in batch)
            src = torch.tensor([ids[i] + [pad] * (longest - len(ids[i])) for i in batch])
            if self.nat_iterations is not None:
                v = self.tgt_vocab
                hyps = decode_nat(self.model, src, pad, int(iterations or self.nat_iterations),
                                  banned=(pad, v.bos_token_id, v.eos_token_id, v.mask_token_id))
            else:
                hyps = decode_sources(self.model, src, pad, self.tgt_vocab.bos_token_id,
                                      self.tgt_vocab.eos_token_id, settings)
            for i, hyp in zip(batch, hyps):
                out[i] = self.tgt_vocab.decode(hyp)
        return out


def translate(run_dir_or_ckpt, sentences: list[str], **changes) -> list[str]:
    """Translate `sentences` with a trained `task=translation` run, decoding as its test did unless `changes`
    says otherwise (`strategy="greedy"`, `beam_size=2`, ...)."""
    return Translator.from_run(run_dir_or_ckpt).translate(sentences, **changes)
