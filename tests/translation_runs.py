"""A translation run directory made by hand (no training): what `weights_from` and `distill_from` read.

`untrained_run(root, data_dir)` writes the toy Multi30k files, builds the data module and a small Transformer with
seed 0, and saves what a `task=translation` run leaves for leedl_cli.translate: translation_model.json, the
vocabularies and checkpoints/last.ckpt (the model's weights under `model.`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from translation_files import write_multi30k

SMALL = dict(d_model=32, num_encoder_layers=1, num_decoder_layers=1, num_heads=2, d_ff=64, dropout=0.0)


def untrained_run(root: Path, data_dir: Path, n_train: int = 64, n_eval: int = 16) -> Path:
    from leedl_cli.data.parallel import ParallelDataModule
    from leedl_cli.decoding import DecodeSettings
    from leedl_cli.models.seq2seq import Seq2SeqTransformer
    from leedl_cli.translate import write_spec

    write_multi30k(data_dir, n_train=n_train, n_eval=n_eval)
    dm = ParallelDataModule(data_dir=str(data_dir), vocab_size=300, min_frequency=1, max_tokens=400,
                            max_train_sentences=64, max_eval_sentences=16)
    spec = dm.provides()
    torch.manual_seed(0)
    model = Seq2SeqTransformer(spec.src_vocab_size, spec.tgt_vocab_size, spec.pad_token_id, spec.shared_vocab,
                               **SMALL)
    run = Path(root)
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_spec(run, model, spec.src_vocab, spec.tgt_vocab, DecodeSettings(strategy="greedy", max_len_b=4), 128, 256)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, run / "checkpoints" / "last.ckpt")
    return run
