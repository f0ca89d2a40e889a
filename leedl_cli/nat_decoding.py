"""Decoding the non-autoregressive Transformer (ch. 4, section 4.5.2): one pass, or mask-predict.

- one pass (`iterations=1`, Gu et al. 2018): the length predictor picks each sentence's length T, the decoder
  scores all T positions at once from [MASK] inputs, and every position takes its argmax;
- mask-predict (`iterations=K > 1`, Ghazvininejad et al. 2019): after that first pass, iteration k = 1 .. K-1
  re-masks the n = floor(T (K - k) / K) tokens of lowest probability (linearly fewer each iteration) and predicts
  them again given the rest; a re-predicted token takes its new probability, the others keep theirs. K decoder
  passes in all, whatever the sentence's length.

`mask_predict(predict, lengths, iterations)` is the loop for any `predict(tokens, masked) -> logits [B, T, V]`;
`decode_nat(model, src, ...)` runs it with a leedl_cli.models.nat.NATransformer (evaluation mode while it
decodes). `banned` token ids (padding, [BOS], [EOS], [MASK]) are never written. `repeat_rate` is the share of
consecutive identical tokens, the symptom of a decoder that mixes several translations (multi-modality);
`sentences_per_second` times any decoder (autoregressive or not) on the same sentences. Both are measured for
every translation run's test.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from leedl_cli.data.parallel_format import decoding_batches

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _fill(predict: Predict, tokens, masked, probs, banned: Sequence[int]):
    """Predict the masked positions; the others keep their token and probability."""
    logits = predict(tokens, masked).float()
    if banned:
        logits[..., list(banned)] = float("-inf")
    p, guess = logits.softmax(-1).max(-1)
    return torch.where(masked, guess, tokens), torch.where(masked, p, probs)


@torch.no_grad()
def mask_predict(predict: Predict, lengths: torch.Tensor, iterations: int = 1, banned: Sequence[int] = (),
                 pad_id: int = 0) -> torch.Tensor:
    """Tokens [B, max(lengths)] (positions past a sentence's length hold `pad_id`) after `iterations` passes."""
    width = int(lengths.max()) if lengths.numel() else 0
    positions = torch.arange(width, device=lengths.device).unsqueeze(0)
    real = positions < lengths.unsqueeze(1)
    tokens = torch.full(real.shape, pad_id, dtype=torch.long, device=lengths.device)
    probs = torch.zeros(real.shape, device=lengths.device)
    tokens, probs = _fill(predict, tokens, real, probs, banned)
    for k in range(1, iterations):
        n = torch.div(lengths * (iterations - k), iterations, rounding_mode="floor")          # [B]
        confidence = probs.masked_fill(~real, float("inf"))
        rank = confidence.argsort(1).argsort(1)                       # 0 = the least confident position
        masked = (rank < n.unsqueeze(1)) & real
        if not masked.any():
            continue
        tokens, probs = _fill(predict, tokens, masked, probs, banned)
    return tokens.masked_fill(~real, pad_id)


@torch.no_grad()
def decode_nat(model, src: torch.Tensor, pad_id: int, iterations: int = 1,
               banned: Sequence[int] = ()) -> list[list[int]]:
    """Target ids of a right-padded source batch [B, S]: each sentence's predicted length, `iterations` passes."""
    was = model.training
    model.eval()
    try:
        src_mask = src == pad_id
        memory = model.encode(src, src_mask)
        lengths = model.predict_lengths(memory, src_mask)

        def predict(tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
            return model.decode(tokens, masked, memory, src_mask, lengths)

        tokens = mask_predict(predict, lengths, iterations, banned, pad_id)
        return [row[:n] for row, n in zip(tokens.tolist(), lengths.tolist())]
    finally:
        model.train(was)


def repeat_rate(sequences: Sequence[Sequence]) -> float:
    """Consecutive equal tokens / consecutive pairs over the sequences (0.0 when there are none)."""
    pairs = sum(max(len(s) - 1, 0) for s in sequences)
    repeats = sum(1 for s in sequences for a, b in zip(s, s[1:]) if a == b)
    return repeats / pairs if pairs else 0.0


def sentences_per_second(translate: Callable[[torch.Tensor], list], sources: Sequence[Sequence[int]],
                         batch_size: int, pad_id: int, device=None) -> float:
    """Sentences per second of `translate(src [b, S])` on the source ids, `batch_size` at a time (batched by
    source length, as the test); one untimed warm-up sentence first (first-call allocations are not decoding)."""
    batches = []
    for rows in decoding_batches([len(s) for s in sources], batch_size):
        longest = max(len(sources[i]) for i in rows)
        batches.append(torch.tensor([list(sources[i]) + [pad_id] * (longest - len(sources[i])) for i in rows],
                                    device=device))
    translate(batches[0][:1])
    start = time.perf_counter()
    for src in batches:
        translate(src)
    return len(sources) / max(time.perf_counter() - start, 1e-9)
