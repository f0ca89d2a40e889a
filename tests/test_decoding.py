"""leedl_cli.decoding: greedy, beam and sampling against exhaustive search on small bigram models."""
import itertools
import math

import pytest
import torch

from leedl_cli.decoding import distinct_n, filter_logits, generate
from leedl_cli.errors import LeedlError

EOS = 0


def bigram_step(table):
    """A model whose next-token log-probabilities depend on the input (rows) and the last token only."""
    logp = torch.log_softmax(table, -1)

    def step(tokens, rows):
        return logp[rows, tokens[:, -1]]
    return step, logp


def best_by_enumeration(logp, row, start, vocab, max_new, alpha):
    """Every sequence: ended by eos within max_new tokens, or unended at max_new."""
    best, best_seq = -math.inf, None
    for length in range(0, max_new + 1):
        for body in itertools.product(range(1, vocab), repeat=length):
            prev, total = start, 0.0
            for tok in body:
                total += logp[row, prev, tok].item()
                prev = tok
            if length < max_new:           # ends with eos
                total += logp[row, prev, EOS].item()
                score = total / (length + 1) ** alpha
            else:                          # out of steps, unended
                score = total / max(length, 1) ** alpha
            if score > best:
                best, best_seq = score, list(body)
    return best_seq


def test_beam_finds_what_greedy_misses():
    # tokens: eos=0, a=1, b=2, start=3. Greedy takes a (0.6) then eos (0.4): 0.24. Beam finds b eos: 0.4*0.9 = 0.36.
    probs = torch.full((1, 4, 4), 1e-9)
    probs[0, 3] = torch.tensor([1e-9, 0.6, 0.4, 1e-9])
    probs[0, 1] = torch.tensor([0.4, 0.3, 0.3, 1e-9])
    probs[0, 2] = torch.tensor([0.9, 0.05, 0.05, 1e-9])
    step, _ = bigram_step(probs.log())
    prefix = torch.tensor([[3]])
    assert generate(step, prefix, EOS, 5, "greedy") == [[1]]
    assert generate(step, prefix, EOS, 5, "beam", beam_size=2, length_penalty=0.0) == [[2]]
    assert generate(step, prefix, EOS, 5, "beam", beam_size=1) == [[1]]          # beam 1 is greedy


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_is_exhaustive_search(alpha):
    g = torch.Generator().manual_seed(0)
    batch, vocab, max_new = 3, 4, 3
    table = torch.randn(batch, vocab + 1, vocab + 1, generator=g) * 2
    table[..., vocab] = -1e9                                 # the start token (id 4) is never generated
    step, logp = bigram_step(table)
    prefix = torch.full((batch, 1), vocab)
    got = generate(step, prefix, EOS, max_new, "beam", beam_size=64, length_penalty=alpha)
    want = [best_by_enumeration(logp, b, vocab, vocab + 1, max_new, alpha) for b in range(batch)]
    assert got == want


def test_batched_equals_one_by_one():
    g = torch.Generator().manual_seed(1)
    table = torch.randn(5, 9, 9, generator=g) * 3
    step, _ = bigram_step(table)
    prefix = torch.tensor([[8, 3], [8, 1], [8, 2], [8, 5], [8, 7]])
    for strategy in ("greedy", "beam"):
        together = generate(step, prefix, EOS, 12, strategy, beam_size=4)
        alone = []
        for b in range(5):
            def step_b(tokens, rows, b=b):
                return step(tokens, torch.full_like(rows, b))
            alone += generate(step_b, prefix[b:b + 1], EOS, 12, strategy, beam_size=4)
        assert together == alone
        assert all(EOS not in seq for seq in together)


def test_sampling_is_reproducible_and_filters_reduce_to_greedy():
    g = torch.Generator().manual_seed(2)
    table = torch.randn(4, 20, 20, generator=g)
    step, _ = bigram_step(table)
    prefix = torch.tensor([[19]] * 4)
    runs = [generate(step, prefix, EOS, 15, "sampling", generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    other = generate(step, prefix, EOS, 15, "sampling", generator=torch.Generator().manual_seed(8))
    assert other != runs[0]
    greedy = generate(step, prefix, EOS, 15, "greedy")
    assert generate(step, prefix, EOS, 15, "sampling", top_k=1, generator=torch.Generator().manual_seed(3)) == greedy
    assert generate(step, prefix, EOS, 15, "sampling", top_p=1e-6, generator=torch.Generator().manual_seed(3)) == greedy


def test_min_new_tokens_and_max_new_tokens():
    table = torch.full((1, 3, 3), -5.0)
    table[0, :, EOS] = 5.0                                   # eos is by far the most likely
    step, _ = bigram_step(table)
    prefix = torch.tensor([[2]])
    assert generate(step, prefix, EOS, 10) == [[]]
    assert len(generate(step, prefix, EOS, 10, min_new_tokens=3)[0]) == 3
    assert len(generate(step, prefix, EOS, 10, "beam", beam_size=3, min_new_tokens=3)[0]) == 3
    table[0, :, EOS] = -50.0                                 # eos never: stop at max_new_tokens
    step, _ = bigram_step(table)
    assert len(generate(step, prefix, EOS, 6, "beam", beam_size=3)[0]) == 6
    assert len(generate(step, prefix, EOS, 6)[0]) == 6


def test_filter_logits_top_k_and_nucleus():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    p = logits.softmax(-1)[0]                                # 0.64, 0.24, 0.09, 0.03
    kept = ~torch.isinf(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False]]     # 0.64 < 0.8 <= 0.64 + 0.24
    assert p[:2].sum() >= 0.8
    assert (~torch.isinf(filter_logits(logits, top_p=0.5))).sum() == 1


def test_distinct_n():
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 1) == 4 / 6
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 2) == 3 / 4
    assert distinct_n([[1]], 2) == 0.0


@pytest.mark.parametrize("kwargs, words", [
    ({"strategy": "topk"}, "greedy, beam, sampling"),
    ({"strategy": "beam", "beam_size": 0}, "beam_size"),
    ({"strategy": "sampling", "temperature": 0.0}, "temperature"),
    ({"strategy": "sampling", "top_p": 1.5}, "top_p"),
])
def test_bad_options_are_named(kwargs, words):
    step, _ = bigram_step(torch.zeros(1, 3, 3))
    with pytest.raises(LeedlError, match=words):
        generate(step, torch.tensor([[1]]), EOS, 3, **kwargs)


def test_one_length_limit_per_input_equals_decoding_each_alone():
    """A per-input limit makes an input's result independent of the batch it is decoded in."""
    table = torch.full((3, 4, 4), -5.0)
    table[..., 2] = 5.0                                      # token 2 is always the most likely; eos never wins
    step, _ = bigram_step(table)
    prefix = torch.tensor([[3], [3], [3]])
    limits = [0, 2, 5]
    for strategy in ("greedy", "beam", "sampling"):
        gen = [torch.Generator().manual_seed(i) for i in range(3)] if strategy == "sampling" else None
        together = generate(step, prefix, EOS, limits, strategy, beam_size=3, top_k=1, generator=gen)
        assert [len(seq) for seq in together] == limits, strategy
        alone = [generate(lambda tokens, rows, b=b: step(tokens, torch.full_like(rows, b)), prefix[b:b + 1], EOS,
                          limits[b], strategy, beam_size=3, top_k=1)[0] for b in range(3)]
        assert together == alone, strategy
    with pytest.raises(LeedlError, match="2 length limits for 3 inputs"):
        generate(step, prefix, EOS, [1, 2])


def test_one_generator_per_input_makes_sampling_independent_of_the_batch():
    g = torch.Generator().manual_seed(5)
    table = torch.randn(4, 12, 12, generator=g)
    step, _ = bigram_step(table)
    prefix = torch.tensor([[11]] * 4)

    def gens(order):
        return [torch.Generator().manual_seed(100 + b) for b in order]

    forward = generate(step, prefix, EOS, 10, "sampling", generator=gens(range(4)))

    def step_reversed(tokens, rows):      # the same inputs in the opposite order
        return step(tokens, 3 - rows)
    backward = generate(step_reversed, prefix, EOS, 10, "sampling", generator=gens([3, 2, 1, 0]))
    assert backward == forward[::-1]


def test_decode_settings_ranges_and_per_sentence_helpers():
    from leedl_cli.decoding import DECODES, DecodeSettings

    assert DECODES == ("greedy", "beam", "sampling")
    for bad, words in (({"strategy": "topk"}, "strategy='topk': expected one of greedy, beam, sampling"),
                       ({"beam_size": 0}, "beam_size=0: expected a number >= 1"),
                       ({"temperature": -1.0}, "temperature=-1.0: expected a number > 0"),
                       ({"top_k": -2}, "top_k=-2: expected a number >= 0"),
                       ({"top_p": 0.0}, "top_p=0.0: expected a number > 0 and <= 1"),
                       ({"length_penalty": float("nan")}, "length_penalty=nan: expected a finite number"),
                       ({"max_len_a": -1.0}, "max_len_a=-1.0"), ({"max_len_b": -1}, "max_len_b=-1")):
        with pytest.raises(LeedlError, match=words.replace("(", r"\(").replace(")", r"\)")):
            DecodeSettings(**bad)
    s = DecodeSettings(max_len_a=1.5, max_len_b=10, seed=7)
    assert [s.length_limit(n) for n in (1, 4, 9)] == [11, 16, 23]
    assert s.replace(beam_size=None, strategy="beam") == DecodeSettings(strategy="beam", max_len_a=1.5, seed=7)
    draws = [torch.rand(3, generator=s.generator_for([5, 6, 7])) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], torch.rand(3, generator=s.generator_for([5, 6, 8])))
    assert not torch.equal(draws[0], torch.rand(3, generator=s.replace(seed=8).generator_for([5, 6, 7])))


def test_decode_sources_limits_each_sentence_by_its_own_length():
    """An encoder-decoder that never ends a sentence: each one stops at max_len_a * its length + max_len_b."""
    from leedl_cli.decoding import DecodeSettings, decode_sources

    class NeverEnds(torch.nn.Module):
        def step_fn(self, src):
            def step(tokens, rows):
                logits = torch.full((len(rows), 6), -1e9)
                logits[:, 4], logits[:, 1] = 10.0, 9.0   # never eos (0), even among a beam's candidates
                return logits
            return step

    src = torch.tensor([[3, 3, 3, 3, 0], [3, 0, 0, 0, 0], [3, 3, 3, 3, 3]])   # 4, 1, 5 real ids, pad 0
    for strategy in ("greedy", "beam"):
        out = decode_sources(NeverEnds(), src, 0, 5, EOS, DecodeSettings(strategy=strategy, beam_size=2,
                                                                         max_len_a=1.0, max_len_b=2))
        assert [len(h) for h in out] == [6, 3, 7], strategy


def test_nucleus_keeps_the_smallest_set_with_mass_p():
    """On random distributions: the kept tokens are the most probable ones, their mass is >= p, and without the
    least probable of them it would be < p (the smallest such set)."""
    g = torch.Generator().manual_seed(5)
    for _ in range(50):
        logits = torch.randn(1, 12, generator=g) * 2
        p_top = float(torch.rand(1, generator=g).clamp(0.05, 0.99))
        kept = ~torch.isinf(filter_logits(logits, top_p=p_top))[0]
        probs = logits.softmax(-1)[0]
        if (~kept).any():
            assert probs[kept].min() >= probs[~kept].max()
        assert probs[kept].sum() >= p_top - 1e-6
        assert probs[kept].sum() - probs[kept].min() < p_top


def test_cached_causal_lm_step_equals_recomputing_each_prompt_alone():
    """decode_prompts (left padding, key/value cache reordered by beam search) gives what an uncached step gives
    for each prompt alone, for greedy, beam and sampling (each prompt's own generator)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from leedl_cli.decoding import DecodeSettings, decode_prompts

    torch.manual_seed(3)
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=7, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=64)).eval()

    def uncached(tokens, rows):
        return hf(input_ids=tokens).logits[:, -1]

    prompts = [[1, 2, 3], [4], [5, 6], [2, 2, 2, 2, 3]]
    for strategy in ("greedy", "beam", "sampling"):
        settings = DecodeSettings(strategy=strategy, beam_size=3)
        together = decode_prompts(hf, prompts, settings, 6, eos_id=0)
        alone = []
        for p in prompts:
            gen = [settings.generator_for(p)] if strategy == "sampling" else None
            alone += generate(uncached, torch.tensor([p]), 0, 6, min_new_tokens=6, generator=gen,
                              **settings.search_options())
        assert together == alone, strategy
        assert all(len(c) == 6 and EOS not in c for c in together)
