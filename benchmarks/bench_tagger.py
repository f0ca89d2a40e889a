"""Training throughput (tokens/s) of the self-attention POS tagger: leedl (Lightning) vs a plain PyTorch loop.

Same process, same model (model=self_attention, same seed), same batches (the UD data module's own train
loader: length bucketing, dynamic padding), same optimizer (AdamW), no scheduler in either, same threads.
leedl runs as a user would for speed (no external logger, no checkpoints, no progress bar, no validation,
no test). Tokens = labelled words of the batches. Alternating tries, best of each. Target: ratio >= 0.9.
Usage: bench_tagger.py [--sentences N] [--tries N]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import Timer, build_plain, run_leedl

IGNORE_INDEX = -100


def overrides(sentences: int) -> list[str]:
    return ["task=pos_tagging", "model=self_attention", "seed=0", "scheduler=constant",
            f"task.data.max_train_sentences={sentences}", "task.data.max_eval_sentences=64", "task.data.batch_size=32",
            "trainer.gradient_clip_val=null"]


def plain_epoch(ov: list[str]) -> tuple[float, int]:
    _, dm, model, make_optimizer = build_plain(ov)
    model.train()
    opt = make_optimizer(model.parameters())
    tokens = 0
    with Timer() as t:
        for batch in dm.train_dataloader():
            logits = model(input_ids=batch["input_ids"], suffix_ids=batch["suffix_ids"], shape_ids=batch["shape_ids"],
                           char_ids=batch["char_ids"])
            labels = batch["labels"]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tokens += int((labels != IGNORE_INDEX).sum())
    return tokens / t.seconds, tokens


def leedl_epoch(ov: list[str], tokens: int) -> float:
    r = run_leedl(ov + ["logger=none", "callbacks=none", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                        "trainer.enable_progress_bar=false", "++task.test=false"])
    assert r["status"] == "ok", r.get("error")
    return tokens / r["timings"]["per_epoch_s"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=int, default=2000)
    p.add_argument("--tries", type=int, default=2)
    args = p.parse_args()
    ov = overrides(args.sentences)
    print(f"POS tagger training (self_attention: d_model 128, 2 layers, 4 heads; UD EWT, {args.sentences} sentences, "
          f"batch 32), torch threads {torch.get_num_threads()}")
    plain, ours = [], []
    for _ in range(args.tries):
        rate, tokens = plain_epoch(ov)
        plain.append(rate)
        ours.append(leedl_epoch(ov, tokens))
    best_plain, best_ours = max(plain), max(ours)
    print(f"  pos_tagging plain PyTorch {best_plain:8.0f} tokens/s   leedl {best_ours:8.0f} tokens/s   "
          f"ratio {best_ours / best_plain:.2f} (target >= 0.9; best of {args.tries} alternating tries)")


if __name__ == "__main__":
    main()
