"""The tokenized-data base: named padding (nothing dropped silently), length bucketing, cached vocabularies."""
from __future__ import annotations

import pytest


def test_collator_pads_named_keys_and_refuses_unnamed_sequences():
    from leedl_cli.data.tokenized import IGNORE_INDEX, PadCollator
    from leedl_cli.errors import LeedlError

    items = [{"input_ids": [5, 6, 7], "labels": [1, 2, 3], "words": ["a", "b", "c"], "n": 3},
             {"input_ids": [8], "labels": [4], "words": ["d"], "n": 1}]
    batch = PadCollator(0, pads={"input_ids": 0, "labels": IGNORE_INDEX}, keep=("words",))(items)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["words"] == [["a", "b", "c"], ["d"]] and batch["n"].tolist() == [3, 1]
    with pytest.raises(LeedlError, match="'labels'"):
        PadCollator(0)([{k: v for k, v in it.items() if k != "words"} for it in items])
    assert "words" not in PadCollator(0, pads={"input_ids": 0, "labels": 0}, skip=("words",))(items)


def test_bucketing_groups_similar_lengths_and_covers_every_item_once_per_epoch():
    from leedl_cli.data.tokenized import BucketBatchSampler

    lengths = [(i * 37) % 101 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, batch_size=20, seed=0, pool=10)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch0) / len(epoch0)
    assert spread < 15                        # random batches of 20 from 1..101 would spread ~85
    sampler.set_epoch(0)
    assert list(sampler) == epoch0            # a pure function of (seed, epoch)
    sampler.set_epoch(1)
    assert list(sampler) != epoch0


def test_word_vocabulary_is_trained_on_the_given_texts_and_cached(tmp_path, monkeypatch):
    from leedl_cli.data.tokenizers import Vocabulary

    monkeypatch.setenv("LEEDL_CACHE_DIR", str(tmp_path))
    texts = [["The", "dog", "runs"], ["the", "cat", "runs", "fast"]]
    vocab = Vocabulary.train(texts, "toy", kind="word", vocab_size=100, pretokenized=True)
    assert vocab.pad_token_id == 0 and vocab.unk_token_id == 1
    ids = vocab.encode(["THE", "dog", "zebra"])
    assert ids[0] == vocab.token_to_id("the") and ids[2] == vocab.unk_token_id     # lower-cased; unknown -> [UNK]
    cached = list((tmp_path / "vocab").glob("toy-word-100-*.json"))
    assert len(cached) == 1
    again = Vocabulary.train([["other"]], "toy", kind="word", vocab_size=100, pretokenized=True)
    assert again.encode(["dog"]) == vocab.encode(["dog"])            # loaded from the cache, not retrained
    other = Vocabulary.train(texts, "toy", kind="word", vocab_size=100, pretokenized=True, lowercase=False)
    assert other.encode(["THE"]) == [other.unk_token_id]              # options key the cache


def test_data_modules_do_not_import_models():
    import ast
    from pathlib import Path

    import leedl_cli.data as data

    for path in Path(data.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith(("leedl_cli.models", "leedl_cli.tasks")), path.name
    base = (Path(data.__file__).parent / "tokenized.py").read_text()
    assert "leedl_cli.data." not in base.replace("leedl_cli.data.tokenized", "")   # the base imports no family
