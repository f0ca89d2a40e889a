"""Fine-tuning throughput (tokens/s) of BERT extractive QA: leedl (Lightning) vs a plain PyTorch + transformers loop.

Same process, same model (MiniLM, same seed), same batches (the data module's own train loader: same shuffle,
dynamic padding), same optimizer (AdamW), no scheduler in either, same threads. leedl runs as a user would
for speed (no external logger, no checkpoints, no progress bar, no validation, no test, no export).
Tokens = real (non-padding) tokens of the batches. Target: ratio >= 0.9.
Usage: bench_bert.py [--bf16] [--questions N]   (--bf16: torch.autocast bf16 vs trainer.precision=bf16-mixed)
"""
from __future__ import annotations

import argparse
import os

import torch
from common import Timer, build_plain, run_leedl

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def overrides(questions: int, bf16: bool) -> list[str]:
    out = ["task=bert_squad", "seed=0", "scheduler=constant", f"task.data.max_train_examples={questions}",
           "task.data.max_val_examples=8", "task.data.max_test_examples=8", "task.data.max_length=192",
           "task.data.batch_size=16"]
    return out + (["trainer.precision=bf16-mixed"] if bf16 else [])


def plain_epoch(ov: list[str], bf16: bool) -> tuple[float, int]:
    _, dm, model, make_optimizer = build_plain(ov)
    model.train()
    opt = make_optimizer(model.parameters())
    tokens = 0
    with Timer() as t:
        for batch in dm.train_dataloader():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"], start_positions=batch["start_positions"],
                            end_positions=batch["end_positions"])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            tokens += int(batch["attention_mask"].sum())
    return tokens / t.seconds, tokens


def leedl_epoch(ov: list[str], tokens: int) -> float:
    r = run_leedl(ov + ["logger=none", "callbacks=none", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                        "trainer.enable_progress_bar=false", "++task.test=false", "task.module.export=false"])
    assert r["status"] == "ok", r.get("error")
    return tokens / r["timings"]["per_epoch_s"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--questions", type=int, default=160)
    args = p.parse_args()
    ov = overrides(args.questions, args.bf16)
    print(f"BERT QA fine-tuning (MiniLM, SQuAD windows of <= 192 tokens, batch 16, {args.questions} questions, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}), torch threads {torch.get_num_threads()}")
    plain, tokens = plain_epoch(ov, args.bf16)
    ours = leedl_epoch(ov, tokens)
    print(f"  bert_squad plain PyTorch {plain:8.0f} tokens/s   leedl {ours:8.0f} tokens/s   "
          f"ratio {ours / plain:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
