"""Decoding an autoregressive model (ch. 4, sections 4.8.3-4.8.4): greedy, beam search and sampling, in one place.

Used by translation (validation, test, `leedl translate`), by the GPT's samples and by text completion
(`task=text_completion`: a decoder-only causal LM continues prompts). Models know nothing of
search; a model is seen only through `step(tokens, rows) -> logits`:

- `tokens` LongTensor [N, t]: every live hypothesis's whole sequence so far (prefix + generated);
- `rows` LongTensor [N]: which of the B inputs each hypothesis belongs to, so an encoder-decoder indexes its
  memory with `memory[rows]`;
- it returns next-token logits or log-probabilities [N, V] (`log_softmax` leaves log-probabilities unchanged, so
  a pointer-generator may return the log of its mixture).

A step may keep state per hypothesis (a key/value cache): when it has a `reorder(index)` method, `generate` calls
it whenever the hypotheses change (beam search reorders and prunes them, finished rows leave), row i then
continuing old row index[i]. The encoder-decoder and leedl's GPT keep no cache (each step recomputes the prefix,
cheap for sentences); `CausalLMStep` is the cached step of a Hugging Face causal LM (SmolLM2), and
`decode_prompts` continues a batch of prompts with it: beam search for a decoder-only model is the same `_beam`
as for translation.

- greedy: the most probable token at every step;
- beam: the `beam_size` best partial hypotheses per input, batched over inputs; a hypothesis ends at `eos`, and
  the answer is the finished one with the best sum(log p) / length ** length_penalty (length counts the eos);
- sampling: logits / temperature, then top-k (0 = off), then nucleus top-p (1.0 = off); `generator` (one, or
  one per input) makes it reproducible.

`max_new_tokens` is one limit for every input or one per input. `DecodeSettings` is a whole test-time decoding
configuration (strategy, its options, the length limit max_len_a * source length + max_len_b per sentence and
the sampling seed); `decode_sources` runs it on a batch of source sentences for an encoder-decoder with
`step_fn(src)`. Each sentence's limit and (sampling) random generator depend on that sentence alone, so a
sentence gets the same translation in any batch: what the test pass wrote is what `leedl translate` prints.
"""
from __future__ import annotations

import dataclasses
import typing
import zlib
from dataclasses import dataclass
from typing import Annotated, Callable, Literal, Sequence, get_args

import torch

from leedl_cli.analysis.text_metrics import distinct_n  # noqa: F401  (translation and lm_pretrain import it here)
from leedl_cli.contract import AtLeastOne, NonNegative, OpenProbability, Positive, Range, ranges_of
from leedl_cli.errors import LeedlError

Decode = Literal["greedy", "beam", "sampling"]
DECODES: tuple[str, ...] = get_args(Decode)
Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# the options' ranges, written once: DecodeSettings and the translation task's constructor both use them
BeamSize = Annotated[int, AtLeastOne]
LengthPenalty = Annotated[float, Range()]          # any finite number
Temperature = Annotated[float, Positive]
TopK = Annotated[int, NonNegative]                 # 0 = off
TopP = Annotated[float, OpenProbability]           # 1.0 = off
MaxLenA = Annotated[float, NonNegative]
MaxLenB = Annotated[int, NonNegative]


def annotation_problems(obj) -> list[str]:
    """`name=value: expected ...` for each field of a dataclass instance outside its Literal or Range."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    problems = []
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
        if typing.get_origin(base) is Literal and value not in get_args(base):
            problems.append(f"{f.name}={value!r}: expected one of {', '.join(map(str, get_args(base)))}")
        for r in ranges_of(hint):
            if not r.holds(value):
                problems.append(f"{f.name}={value!r}: expected {r.describe()}")
    return problems


@dataclass(frozen=True)
class DecodeSettings:
    """One test-time decoding configuration: what the test pass used and `leedl translate` repeats."""

    strategy: Decode = "greedy"
    beam_size: BeamSize = 5
    length_penalty: LengthPenalty = 1.0
    temperature: Temperature = 1.0
    top_k: TopK = 0
    top_p: TopP = 1.0
    max_len_a: MaxLenA = 1.5       # a sentence of n source pieces gets at most max_len_a * n + max_len_b new ones
    max_len_b: MaxLenB = 10
    seed: int = 0                  # sampling: with the sentence's ids, seeds that sentence's generator

    def __post_init__(self) -> None:
        problems = annotation_problems(self)
        if problems:
            raise LeedlError("bad decoding option: " + "; ".join(problems))

    def replace(self, **changes) -> "DecodeSettings":
        """A copy with some options changed (None leaves an option as it is)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def search_options(self) -> dict:
        """The keyword arguments of `generate` (strategy and its options)."""
        return dict(strategy=self.strategy, beam_size=self.beam_size, length_penalty=self.length_penalty,
                    temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    def length_limit(self, source_length: int) -> int:
        return int(self.max_len_a * source_length + self.max_len_b)

    def generator_for(self, source_ids: Sequence[int]) -> torch.Generator:
        """Sampling: a generator seeded by `seed` and the sentence's ids (the same sentence, the same draws)."""
        digest = zlib.crc32(",".join(str(int(i)) for i in source_ids).encode())
        return torch.Generator().manual_seed((self.seed * 4_294_967_311 + digest) % 2**63)


@torch.no_grad()
def decode_sources(model, src: torch.Tensor, pad_id: int, bos_id: int, eos_id: int,
                   settings: DecodeSettings) -> list[list[int]]:
    """Target ids (no [BOS]/[EOS]) for a right-padded source batch [B, S] of an encoder-decoder whose
    `step_fn(src)` gives a `step` (leedl_cli.models.seq2seq); evaluation mode while it decodes."""
    rows = [[int(i) for i in row if i != pad_id] for row in src.tolist()]
    generators = [settings.generator_for(r) for r in rows] if settings.strategy == "sampling" else None
    prefix = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    was = model.training
    model.eval()
    try:
        return generate(model.step_fn(src), prefix, eos_id, [settings.length_limit(len(r)) for r in rows],
                        generator=generators, **settings.search_options())
    finally:
        model.train(was)


class CausalLMStep:
    """The `step` of a Hugging Face causal LM (decoder only) with its key/value cache, for prompts of different
    lengths decoded together: each prompt is left-padded (`pad_lengths[b]` pads before prompt b), masked out and
    given positions 0, 1, ... from its first real token. Each call feeds only the tokens the cache has not seen;
    `reorder(index)` (called by `generate` when beam search reorders hypotheses or rows leave) reorders the cache."""

    def __init__(self, hf, pad_lengths: torch.Tensor) -> None:
        import inspect

        self.hf, self.pad = hf, pad_lengths
        params = inspect.signature(hf.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"   # transformers >= 5.2x: `cache`
        self.keep = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache, self.seen = None, 0

    def __call__(self, tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        t = tokens.size(1)
        positions = torch.arange(t, device=tokens.device)[None, :] - self.pad.to(tokens.device)[rows][:, None]
        kwargs = {"input_ids": tokens[:, self.seen:], "attention_mask": (positions >= 0).long(),
                  "position_ids": positions[:, self.seen:].clamp_min(0), "use_cache": True, **self.keep}
        if self.cache is not None:
            kwargs[self.cache_arg] = self.cache
        out = self.hf(**kwargs)
        self.cache = getattr(out, self.cache_arg)
        self.seen = t
        return out.logits[:, -1]

    def reorder(self, index: torch.Tensor) -> None:
        if self.cache is not None:
            self.cache.reorder_cache(index)


@torch.no_grad()
def decode_prompts(hf, prompts: Sequence[Sequence[int]], settings: DecodeSettings, max_new_tokens: int,
                   eos_id: int, pad_id: int = 0, fixed_length: bool = True) -> list[list[int]]:
    """Continuations of token-id prompts by a Hugging Face causal LM, decoded together (left padding, key/value
    cache): greedy, beam or sampling as `settings` say. `fixed_length`: exactly `max_new_tokens` new tokens each
    (eos is never chosen); else a continuation may end at eos. Sampling draws with each prompt's own generator
    (`settings.generator_for(prompt)`), so a prompt gets the same continuation in any batch."""
    longest = max(len(p) for p in prompts)
    pad = torch.tensor([longest - len(p) for p in prompts])
    prefix = torch.tensor([[pad_id] * (longest - len(p)) + list(p) for p in prompts], dtype=torch.long)
    generators = [settings.generator_for(p) for p in prompts] if settings.strategy == "sampling" else None
    return generate(CausalLMStep(hf, pad), prefix, eos_id, max_new_tokens, generator=generators,
                    min_new_tokens=max_new_tokens if fixed_length else 0, **settings.search_options())


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
def generate(step: Step, prefix: torch.Tensor, eos_id: int, max_new_tokens: int | Sequence[int],
             strategy: Decode = "greedy", beam_size: int = 5, length_penalty: float = 1.0, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, min_new_tokens: int = 0,
             generator: torch.Generator | Sequence[torch.Generator] | None = None) -> list[list[int]]:
    """The B continuations of `prefix` [B, P], without the prefix and without eos. `max_new_tokens`: one limit
    for all inputs, or one per input; `generator` (sampling): one for the batch, or one per input."""
    DecodeSettings(strategy=strategy, beam_size=beam_size, length_penalty=length_penalty, temperature=temperature,
                   top_k=top_k, top_p=top_p)   # refuses a bad option by name
    if prefix.dim() != 2 or prefix.size(1) < 1:
        raise LeedlError(f"generate: prefix must be a [batch, length>=1] tensor of token ids, got {tuple(prefix.shape)}")
    batch = prefix.size(0)
    limits = [int(max_new_tokens)] * batch if isinstance(max_new_tokens, int) else [int(n) for n in max_new_tokens]
    if len(limits) != batch:
        raise LeedlError(f"generate: {len(limits)} length limits for {batch} inputs")
    if generator is not None and not isinstance(generator, torch.Generator) and len(generator) != batch:
        raise LeedlError(f"generate: {len(generator)} random generators for {batch} inputs")
    if strategy == "beam" and beam_size > 1:
        return _beam(step, prefix, eos_id, limits, beam_size, length_penalty, min_new_tokens)
    return _one_path(step, prefix, eos_id, limits, strategy, temperature, top_k, top_p, min_new_tokens, generator)


def _reorder(step, index: torch.Tensor) -> None:
    """Tell a step that keeps state per hypothesis (a key/value cache) that hypothesis i now continues old row
    index[i] (beam search reorders and prunes, finished rows leave); a plain function keeps nothing."""
    reorder = getattr(step, "reorder", None)
    if reorder is not None:
        reorder(index)


def _draw(probs: torch.Tensor, rows: torch.Tensor, generator) -> torch.Tensor:
    """One token per row from `probs` [N, V]: with the batch's generator, or each input's own."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)
    cpu = probs.cpu()
    picks = [torch.multinomial(cpu[i], 1, generator=generator[r]) for i, r in enumerate(rows.tolist())]
    return torch.cat(picks).to(probs.device)


def _one_path(step, prefix, eos_id, limits, strategy, temperature, top_k, top_p, min_new_tokens, generator):
    """Greedy (and beam of size 1) or sampling: one hypothesis per input; finished rows leave the batch."""
    out: list[list[int]] = [[] for _ in range(prefix.size(0))]
    limit = torch.tensor(limits, device=prefix.device)
    rows = torch.arange(prefix.size(0), device=prefix.device)[limit > 0]
    tokens, t = prefix[rows], 0
    while rows.numel():
        logits = step(tokens, rows).float()
        if t < min_new_tokens:
            logits[:, eos_id] = float("-inf")
        if strategy == "sampling":
            nxt = _draw(filter_logits(logits, temperature, top_k, top_p).softmax(-1), rows, generator)
        else:
            nxt = logits.argmax(-1)
        for r, tok in zip(rows.tolist(), nxt.tolist()):
            if tok != eos_id:
                out[r].append(tok)
        t += 1
        live = (nxt != eos_id) & (limit[rows] > t)
        tokens = torch.cat([tokens, nxt[:, None]], 1)[live]
        rows = rows[live]
        if not bool(live.all()):
            _reorder(step, live.nonzero().squeeze(1))
    return out


def _beam(step, prefix, eos_id, limits, beam_size, length_penalty, min_new_tokens):
    batch, k = prefix.size(0), beam_size
    device = prefix.device
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    alive = torch.tensor([b for b in range(batch) if limits[b] > 0], dtype=torch.long, device=device)
    # every input starts with k copies of its prefix; only the first may expand at step 0 (the rest are -inf)
    tokens = prefix[alive].repeat_interleave(k, 0)                           # [n*k, P]
    scores = torch.full((alive.numel(), k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    start, t = prefix.size(1), 0
    while alive.numel():
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
        t += 1                                                                # generated tokens, eos included
        # finished hypotheses: eos among the k best candidates of an input
        hits = (is_eos[:, :k] & torch.isfinite(top_scores[:, :k])).nonzero().tolist()
        for i, j in hits:
            b = alive[i].item()
            if len(finished[b]) < k:
                seq = tokens[i * k + beam_of[i, j].item(), start:].tolist()
                finished[b].append((top_scores[i, j].item() / t ** length_penalty, seq))
        # the k best candidates that did not end go on
        keep_scores = top_scores.masked_fill(is_eos, float("-inf"))
        keep_scores, order = keep_scores.topk(k, dim=-1)                      # [n, k]
        src = (torch.arange(n, device=device)[:, None] * k + beam_of.gather(1, order)).view(-1)
        tokens = torch.cat([tokens[src], tok_of.gather(1, order).view(-1, 1)], 1)
        _reorder(step, src)
        scores = keep_scores
        still = []
        for i in range(n):
            b = alive[i].item()
            if len(finished[b]) >= k or not torch.isfinite(scores[i]).any():
                continue
            if t >= limits[b]:   # out of steps: the live hypotheses count as finished, unended
                for j in range(k):
                    if scores[i, j].item() > float("-inf"):
                        seq = tokens[i * k + j, start:].tolist()
                        finished[b].append((scores[i, j].item() / max(len(seq), 1) ** length_penalty, seq))
                continue
            still.append(i)
        if not still:
            break
        if len(still) < n:
            idx = torch.tensor(still, dtype=torch.long, device=device)
            alive, scores = alive[idx], scores[idx]
            tokens = tokens.view(n, k, -1)[idx].view(len(still) * k, -1)
            _reorder(step, (idx[:, None] * k + torch.arange(k, device=device)).view(-1))
    return [max(f, key=lambda x: x[0])[1] if f else [] for f in finished]
