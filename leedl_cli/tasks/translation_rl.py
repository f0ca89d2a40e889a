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

`rl_baseline: mean` with `rl_samples: k >= 2` draws k samples per source and gives each the mean reward of the
other k - 1 as its baseline (the leave-one-out baseline of Kool et al. 2019; SCST with several samples, Luo 2020):
the advantages of one source sum to zero, so some samples are pushed up and some down even when every sample is
worse than the greedy translation (with the greedy baseline a model whose samples are all worse than its greedy
output only ever lowers the probability of what it samples). No greedy pass is decoded then.
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence, get_args

import torch

RLBaseline = Literal["greedy", "mean"]
RL_BASELINES = get_args(RLBaseline)


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


def leave_one_out(rewards: torch.Tensor, samples: int) -> torch.Tensor:
    """Each sample's baseline: the mean reward of the other samples of its source (rewards [B * k], k per source,
    consecutive)."""
    r = rewards.view(-1, samples)
    return ((r.sum(1, keepdim=True) - r) / (samples - 1)).reshape(-1)


def self_critical_loss(model, src: torch.Tensor, references: Sequence[str], detokenize: Callable[[list[int]], str],
                       bos_id: int, eos_id: int, pad_id: int, limits: Sequence[int], tokenize: str = "13a",
                       baseline: RLBaseline = "greedy", samples: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
    """(L_RL, {reward, baseline, sample_bleu}) for a source batch [B, S]; `limits`: new tokens per sentence;
    `samples` translations sampled per source; `baseline`: greedy (self-critical) or mean (leave-one-out)."""
    from leedl_cli.decoding import generate

    if baseline == "mean" and samples < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 samples a source")
    many = src.repeat_interleave(samples, 0)
    many_limits = [n for n in limits for _ in range(samples)]
    many_refs = [r for r in references for _ in range(samples)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            prefix = torch.full((many.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
            sampled = generate(model.step_fn(many), prefix, eos_id, many_limits, strategy="sampling")
            if baseline == "greedy":
                greedy = generate(model.step_fn(src), prefix[:src.shape[0]], eos_id, list(limits), strategy="greedy")
    finally:
        model.train(was)
    sample_bleu = torch.tensor(sentence_bleus([detokenize(s) for s in sampled], many_refs, tokenize))
    if baseline == "greedy":
        base = torch.tensor(sentence_bleus([detokenize(s) for s in greedy], references, tokenize))
        base = base.repeat_interleave(samples)
    else:
        base = leave_one_out(sample_bleu, samples)
    ended = [len(s) < n for s, n in zip(sampled, many_limits)]
    log_p = sequence_log_probs(model, many, sampled, ended, bos_id, eos_id, pad_id)
    loss = reinforce_loss(log_p, sample_bleu.to(log_p.device) / 100, base.to(log_p.device) / 100)
    stats = {"reward": float((sample_bleu - base).mean()), "baseline": float(base.mean()),
             "sample_bleu": float(sample_bleu.mean())}
    return loss, stats


def batch_loss(task, batch) -> torch.Tensor:
    """L_RL of a training batch of leedl_cli.tasks.translation.Translation, with its settings; logs the reward,
    the baseline and the sample BLEU."""
    if task._train_references is None:
        task._train_references = task.references("train")
    src = batch["src_ids"]
    refs = [task._train_references[i] for i in batch["feature_index"].tolist()]
    limits = [task.decoding.length_limit(int(n)) for n in (src != task.pad).sum(1).tolist()]
    v = task.tgt_vocab
    loss, stats = self_critical_loss(task.model, src, refs, v.decode, v.bos_token_id, v.eos_token_id, task.pad,
                                     limits, task.bleu_tokenize, task.rl_baseline, task.rl_samples)
    if task.logs_this_step():
        for key, value in stats.items():
            task.log(f"train/{key}", value, on_step=True, on_epoch=False)
    return loss
