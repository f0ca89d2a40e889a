"""How parallel text becomes model input, shared by the data module (training, test) and `leedl translate`
(leedl_cli.translate), without importing Lightning: source ids are at most `max_length - 1` pieces then [EOS];
target ids are [BOS] + at most `max_length - 2` pieces + [EOS]; sentences are decoded in batches of
`batch_size`, sorted by source length (stable), so a sentence meets the same batch in the test and in
`leedl translate` given the same sentences."""
from __future__ import annotations


def encode_sources(vocab, sentences: list[str], max_length: int) -> list[list[int]]:
    """Source ids as the model reads them: at most `max_length - 1` pieces, then [EOS]."""
    eos = vocab.eos_token_id
    return [ids[: max_length - 1] + [eos] for ids in vocab.encode_batch(sentences)]


def encode_targets(vocab, sentences: list[str], max_length: int) -> list[list[int]]:
    """Target ids as the decoder learns them: [BOS], at most `max_length - 2` pieces, [EOS]."""
    bos, eos = vocab.bos_token_id, vocab.eos_token_id
    return [[bos] + ids[: max_length - 2] + [eos] for ids in vocab.encode_batch(sentences)]


def decoding_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length (stable), `batch_size` at a time: how sentences are batched for decoding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
