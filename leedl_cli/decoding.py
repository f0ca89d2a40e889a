"""Decoding an autoregressive model (ch. 4, section 4.8.3): greedy, beam search and sampling, in one place.

Used by translation (validation, test, `translate`) and by the GPT's samples. The model is seen only through
`step(tokens, rows) -> logits`:

- `tokens` LongTensor [N, t]: every live hypothesis's whole sequence so far (prefix + generated);
- `rows` LongTensor [N]: which of the B inputs each hypothesis belongs to, so an encoder-decoder indexes its
  memory with `memory[rows]`;
- it returns next-token logits or log-probabilities [N, V] (`log_softmax` leaves log-probabilities unchanged, so
  a pointer-generator may return the log of its mixture).

There is no key/value cache: each step recomputes the prefix, which is cheap for sentences.

- greedy: the most probable token at every step;
- beam: the `beam_size` best partial hypotheses per input, batched over inputs; a hypothesis ends at `eos`, and
  the answer is the finished one with the best sum(log p) / length ** length_penalty (length counts the eos);
- sampling: logits / temperature, then top-k (0 = off), then nucleus top-p (1.0 = off); `generator` makes it
  reproducible.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from leedl_cli.errors import LeedlError

STRATEGIES = ("greedy", "beam", "sampling")
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_options(strategy: str, beam_size: int = 5, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> None:
    """One clear error for a bad decoding option (the keys are task.decode, task.beam_size, ...)."""
    if strategy not in STRATEGIES:
        raise LeedlError(f"decode={strategy!r}: not a decoding strategy; choose one of {', '.join(STRATEGIES)}")
    if int(beam_size) < 1:
        raise LeedlError(f"beam_size={beam_size}: must be >= 1")
    if not temperature > 0:
        raise LeedlError(f"temperature={temperature}: must be > 0")
    if int(top_k) < 0:
        raise LeedlError(f"top_k={top_k}: must be >= 0 (0 = off)")
    if not 0 < top_p <= 1:
        raise LeedlError(f"top_p={top_p}: must be in (0, 1] (1.0 = off)")


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature, then top-k, then nucleus (top-p) filtering; removed tokens get -inf."""
    logits = logits.float() / temperature
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs          # mass of the tokens ranked above each one
        drop_sorted = before >= top_p              # the most probable token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(step: Step, prefix: torch.Tensor, eos_id: int, max_new_tokens: int, strategy: str = "greedy",
             beam_size: int = 5, length_penalty: float = 1.0, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, min_new_tokens: int = 0,
             generator: torch.Generator | None = None) -> list[list[int]]:
    """The B continuations of `prefix` [B, P], without the prefix and without eos."""
    check_options(strategy, beam_size, temperature, top_k, top_p)
    if prefix.dim() != 2 or prefix.size(1) < 1:
        raise LeedlError(f"generate: prefix must be a [batch, length>=1] tensor of token ids, got {tuple(prefix.shape)}")
    if strategy == "beam" and beam_size > 1:
        return _beam(step, prefix, eos_id, max_new_tokens, beam_size, length_penalty, min_new_tokens)
    return _one_path(step, prefix, eos_id, max_new_tokens, strategy, temperature, top_k, top_p, min_new_tokens,
                     generator)


def _one_path(step, prefix, eos_id, max_new_tokens, strategy, temperature, top_k, top_p, min_new_tokens, generator):
    """Greedy (and beam of size 1) or sampling: one hypothesis per input; finished rows leave the batch."""
    batch = prefix.size(0)
    out: list[list[int]] = [[] for _ in range(batch)]
    tokens, rows = prefix, torch.arange(batch, device=prefix.device)
    for t in range(max_new_tokens):
        logits = step(tokens, rows).float()
        if t < min_new_tokens:
            logits[:, eos_id] = float("-inf")
        if strategy == "sampling":
            probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(tokens.device)
        else:
            nxt = logits.argmax(-1)
        for r, tok in zip(rows.tolist(), nxt.tolist()):
            if tok != eos_id:
                out[r].append(tok)
        live = nxt != eos_id
        if not bool(live.any()):
            break
        tokens = torch.cat([tokens, nxt[:, None]], 1)[live]
        rows = rows[live]
    return out


def _beam(step, prefix, eos_id, max_new_tokens, beam_size, length_penalty, min_new_tokens):
    batch, k = prefix.size(0), beam_size
    device = prefix.device
    # every input starts with k copies of its prefix; only the first may expand at step 0 (the rest are -inf)
    tokens = prefix.repeat_interleave(k, 0)                                   # [B*k, P]
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    start = prefix.size(1)
    alive = torch.arange(batch, device=device)                               # inputs still searching
    for t in range(max_new_tokens):
        n = alive.numel()
        rows = alive.repeat_interleave(k)
        logp = torch.log_softmax(step(tokens, rows).float(), -1)              # [n*k, V]
        if t < min_new_tokens:
            logp[:, eos_id] = float("-inf")
        vocab = logp.size(-1)
        cand = (scores[:, :, None] + logp.view(n, k, vocab)).view(n, k * vocab)
        top_scores, top_ids = cand.topk(min(2 * k, k * vocab), dim=-1)        # [n, 2k]
        beam_of, tok_of = top_ids // vocab, top_ids % vocab
        is_eos = tok_of == eos_id
        length = t + 1                                                        # generated tokens, eos included
        # finished hypotheses: eos among the k best candidates of an input
        hits = (is_eos[:, :k] & torch.isfinite(top_scores[:, :k])).nonzero().tolist()
        for i, j in hits:
            b = alive[i].item()
            if len(finished[b]) < k:
                seq = tokens[i * k + beam_of[i, j].item(), start:].tolist()
                finished[b].append((top_scores[i, j].item() / length ** length_penalty, seq))
        # the k best candidates that did not end go on
        keep_scores = top_scores.masked_fill(is_eos, float("-inf"))
        keep_scores, order = keep_scores.topk(k, dim=-1)                      # [n, k]
        src = (torch.arange(n, device=device)[:, None] * k + beam_of.gather(1, order)).view(-1)
        tokens = torch.cat([tokens[src], tok_of.gather(1, order).view(-1, 1)], 1)
        scores = keep_scores
        still = []
        for i in range(n):
            b = alive[i].item()
            if len(finished[b]) < k and torch.isfinite(scores[i]).any():
                still.append(i)
        if not still:
            break
        if len(still) < n:
            idx = torch.tensor(still, device=device)
            alive, scores = alive[idx], scores[idx]
            tokens = tokens.view(n, k, -1)[idx].view(len(still) * k, -1)
    else:
        # out of steps: the live hypotheses count as finished, unended
        for i, b in enumerate(alive.tolist()):
            for j in range(k):
                s = scores[i, j].item()
                if s > float("-inf"):
                    seq = tokens[i * k + j, start:].tolist()
                    finished[b].append((s / max(len(seq), 1) ** length_penalty, seq))
    return [max(f, key=lambda x: x[0])[1] if f else [] for f in finished]


def distinct_n(sequences: Sequence[Sequence], n: int) -> float:
    """Distinct n-grams / all n-grams over the sequences (diversity of generated text); 0.0 when there are none."""
    grams = [tuple(s[i:i + n]) for s in sequences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
