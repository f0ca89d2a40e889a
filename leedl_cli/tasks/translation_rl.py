"""Training for BLEU with reinforcement learning (ch. 4, section 4.8.5): `task.module.objective=self_critical`.

Cross-entropy trains each next token; the test scores whole sentences with BLEU, which is not differentiable.
REINFORCE (Ranzato et al. 2016) treats the decoder as a policy and the sentence's BLEU as its reward; self-critical
sequence training (Rennie et al. 2017) uses the model's own greedy translation as the baseline:

    for each source x: a translation y^s ~ p(. | x) sampled, the greedy translation y^g;
    reward r = BLEU(y^s) - BLEU(y^g)   (sacreBLEU's smoothed sentence BLEU against the reference, / 100)
    L_RL = - mean_x  r * log p(y^s | x)       (log p summed over the sample's tokens, [EOS] included)

A sample better than the greedy translation becomes more probable, a worse one less. The task mixes it with
cross-entropy: L = rl_weight L_RL + (1 - rl_weight) L_CE. Sampling and the greedy pass run in evaluation mode
without gradients (leedl_cli.decoding.generate); log p(y^s | x) is one teacher-forced pass.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def sentence_bleus(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> list[float]:
    """sacreBLEU's sentence BLEU (exponential smoothing, as sentence_bleu's default), 0-100, one per pair."""
    import sacrebleu

    return [float(sacrebleu.sentence_bleu(h, [r], tokenize=tokenize).score) for h, r in zip(hypotheses, references)]


def sequence_log_probs(model, src: torch.Tensor, sequences: Sequence[Sequence[int]], ended: Sequence[bool],
                       bos_id: int, eos_id: int, pad_id: int) -> torch.Tensor:
    """log p(y | x) [B] of whole target sequences (no [BOS]/[EOS] in `sequences`; `ended`: the sentence ended with
    [EOS], which counts as one more token) under teacher forcing, with gradients."""
    rows = [[bos_id, *seq, *([eos_id] if end else [])] for seq, end in zip(sequences, ended)]
    width = max(len(r) for r in rows)
    tgt = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=src.device)
    if width < 2:   # nothing generated and no [EOS]: log p of the empty continuation is 0
        return torch.zeros(len(rows), device=src.device)
    scores, _ = model(src, tgt[:, :-1])
    log_p = torch.log_softmax(scores.float(), -1)
    labels = tgt[:, 1:]
    picked = log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return picked.masked_fill(labels == pad_id, 0.0).sum(1)


def reinforce_loss(log_probs: torch.Tensor, rewards: torch.Tensor, baselines: torch.Tensor) -> torch.Tensor:
    """- mean (r - b) log p(y^s | x): the REINFORCE loss with a baseline (self-critical: b = BLEU of greedy)."""
    return -((rewards - baselines).detach().to(log_probs.dtype) * log_probs).mean()


def self_critical_loss(model, src: torch.Tensor, references: Sequence[str], detokenize: Callable[[list[int]], str],
                       bos_id: int, eos_id: int, pad_id: int, limits: Sequence[int],
                       tokenize: str = "13a") -> tuple[torch.Tensor, dict[str, float]]:
    """(L_RL, {reward, baseline, sample_bleu}) for a source batch [B, S]; `limits`: new tokens per sentence."""
    from leedl_cli.decoding import generate

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            step = model.step_fn(src)
            prefix = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
            greedy = generate(step, prefix, eos_id, list(limits), strategy="greedy")
            sampled = generate(step, prefix, eos_id, list(limits), strategy="sampling")
    finally:
        model.train(was)
    sample_bleu = torch.tensor(sentence_bleus([detokenize(s) for s in sampled], references, tokenize))
    greedy_bleu = torch.tensor(sentence_bleus([detokenize(s) for s in greedy], references, tokenize))
    ended = [len(s) < n for s, n in zip(sampled, limits)]
    log_p = sequence_log_probs(model, src, sampled, ended, bos_id, eos_id, pad_id)
    loss = reinforce_loss(log_p, sample_bleu.to(log_p.device) / 100, greedy_bleu.to(log_p.device) / 100)
    stats = {"reward": float((sample_bleu - greedy_bleu).mean()), "baseline": float(greedy_bleu.mean()),
             "sample_bleu": float(sample_bleu.mean())}
    return loss, stats
