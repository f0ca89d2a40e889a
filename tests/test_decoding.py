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
