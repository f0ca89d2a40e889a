"""Translation (ch. 4): training tokens/s of leedl (Lightning) vs a plain PyTorch loop, and beam-search sentences/s.

Same process, same model (model=transformer as task=translation builds it: d_model 256, 3+3 layers, 4 heads,
shared 8k BPE vocabulary, tied embeddings; same seed), same batches (the parallel data module's own train loader:
batches of at most 2,000 target tokens), same loss (label-smoothed cross-entropy 0.1), same optimizer (Adam), no
scheduler in either, no gradient clipping in either, same threads. leedl runs as a user would for speed (no
external logger, no checkpoints, no progress bar, no validation, no test). Tokens = target tokens predicted.
Alternating tries, best of each. Target: ratio >= 0.9. Then beam search (beam 5) and greedy on validation
sentences with the trained plain model: sentences/s.
Usage: bench_translation.py [--sentences N] [--tries N] [--decode-sentences N]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import Timer, build_plain, run_leedl

from leedl_cli.decoding import DecodeSettings, generate

LIMITS = DecodeSettings()   # the task's length limits: max_len_a * source length + max_len_b


def overrides(sentences: int) -> list[str]:
    return ["task=translation", "model=transformer", "seed=0", "scheduler=constant",
            f"task.data.max_train_sentences={sentences}", "task.data.max_eval_sentences=64",
            "trainer.gradient_clip_val=null", "trainer.max_time=null"]


def plain_epoch(ov: list[str]):
    _, dm, model, make_optimizer = build_plain(ov)
    model.train()
    opt = make_optimizer(model.parameters())
    pad = dm.tgt_vocab.pad_token_id
    tokens = 0
    with Timer() as t:
        for batch in dm.train_dataloader():
            src, tgt = batch["src_ids"], batch["tgt_ids"]
            labels = tgt[:, 1:].masked_fill(tgt[:, 1:] == pad, -100)
            scores, _ = model(src, tgt[:, :-1])
            loss = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), labels.reshape(-1), ignore_index=-100,
                                   label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tokens += int((labels != -100).sum())
    return tokens / t.seconds, tokens, dm, model


def leedl_epoch(ov: list[str], tokens: int) -> float:
    r = run_leedl(ov + ["logger=none", "callbacks=none", "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                        "trainer.enable_progress_bar=false", "++task.test=false"])
    assert r["status"] == "ok", r.get("error")
    return tokens / r["timings"]["per_epoch_s"]


def decode_rate(dm, model, n: int, **options) -> float:
    model.eval()
    feats = sorted(dm.features["val"][:n], key=lambda f: len(f["src_ids"]))
    bos, eos, pad = dm.tgt_vocab.bos_token_id, dm.tgt_vocab.eos_token_id, dm.tgt_vocab.pad_token_id
    with Timer() as t, torch.no_grad():
        for start in range(0, len(feats), 64):
            chunk = feats[start:start + 64]
            longest = max(len(f["src_ids"]) for f in chunk)
            src = torch.tensor([f["src_ids"] + [pad] * (longest - len(f["src_ids"])) for f in chunk])
            limits = [LIMITS.length_limit(len(f["src_ids"])) for f in chunk]   # as the test and leedl translate
            generate(model.step_fn(src), torch.full((len(chunk), 1), bos), eos, limits, **options)
    return len(feats) / t.seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=int, default=3000)
    p.add_argument("--tries", type=int, default=2)
    p.add_argument("--decode-sentences", type=int, default=128)
    args = p.parse_args()
    ov = overrides(args.sentences)
    print(f"translation training (transformer: d_model 256, 3+3 layers, shared 8k BPE, tied; Multi30k de->en, "
          f"{args.sentences} sentence pairs, batches of <= 2,000 target tokens), torch threads {torch.get_num_threads()}")
    plain, ours = [], []
    dm = model = None
    for _ in range(args.tries):
        rate, tokens, dm, model = plain_epoch(ov)
        plain.append(rate)
        ours.append(leedl_epoch(ov, tokens))
    best_plain, best_ours = max(plain), max(ours)
    print(f"  translation plain PyTorch {best_plain:8.0f} tokens/s   leedl {best_ours:8.0f} tokens/s   "
          f"ratio {best_ours / best_plain:.2f} (target >= 0.9; best of {args.tries} alternating tries)")
    n = args.decode_sentences
    greedy = decode_rate(dm, model, n, strategy="greedy")
    beam = decode_rate(dm, model, n, strategy="beam", beam_size=5)
    print(f"  decoding {n} validation sentences (batches of 64, no KV cache): greedy {greedy:6.1f} sentences/s   "
          f"beam 5 {beam:6.1f} sentences/s")


if __name__ == "__main__":
    main()
