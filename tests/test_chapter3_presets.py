"""Chapter 3's other pieces: ViT on images, the speed/memory task, and the presets compose with their report rows."""
from __future__ import annotations

import pytest
import torch

PRESETS = {"tagger_comparison": "model", "positional_encoding": "model.positional_encoding",
           "multi_head": "model.num_heads", "truncated_attention": "model.window",
           "attention_vs_rnn_speed": "task.data.length", "vit_vs_cnn": "task.data.train_size"}


@pytest.mark.parametrize("preset,swept", PRESETS.items())
def test_preset_composes_with_its_sweep_and_book_rows(compose_cfg, preset, swept):
    cfg = compose_cfg([f"experiment={preset}"])
    assert swept in cfg.hydra.sweeper.params and cfg.report.x == swept
    assert cfg.report.book and all(row.metric in cfg.report.metrics for row in cfg.report.book)


def test_vit_and_cnn_on_mnist_sizes_compose(compose_cfg):
    cfg = compose_cfg(["task=mnist", "model=vit", "task.data.train_size=1000"])
    assert cfg.model.name == "vit" and cfg.task.data.train_size == 1000


def test_vit_patches_and_pooling():
    from leedl_cli.errors import LeedlError
    from leedl_cli.models.vit import ViT

    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    for pooling in ("cls", "mean"):
        m = ViT(1, 28, 10, patch_size=7, d_model=32, num_layers=1, num_heads=2, pooling=pooling).eval()
        assert m(x).shape == (3, 10)
        m(x, need_weights=True)
        assert m._weights[0].shape == (3, 2, 16 + (pooling == "cls"), 16 + (pooling == "cls"))
    with pytest.raises(LeedlError, match="patch_size"):
        ViT(1, 28, 10, patch_size=5)


def test_vit_smoke_on_written_mnist(run_leedl, tmp_path):
    """ViT trains end to end on MNIST-format IDX files this test writes (no mirror needed)."""

    import numpy as np

    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    from ch2_files import write_idx

    def idx(name, arr):
        write_idx(folder / name, arr)

    for prefix, n in (("train", 60000), ("t10k", 200)):
        labels = rng.integers(0, 10, n)
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[np.arange(n), labels * 2 + 3, 5:20] = 255            # the class is where a bright line is
        idx(f"{prefix}-images-idx3-ubyte.gz", images)
        idx(f"{prefix}-labels-idx1-ubyte.gz", labels)
    res = run_leedl(["task=mnist", "model=vit", "debug=smoke", "seed=0", "threads=1", f"data_dir={tmp_path / 'data'}",
                     "task.data.train_size=500", "task.data.download=false"])
    assert res["status"] == "ok", res.get("error")
    assert 0 <= res["metrics"]["test/acc"] <= 1


def test_sequence_speed_runs_end_to_end(run_leedl):
    res = run_leedl(["task=sequence_speed", "model=rnn", "debug=smoke", "seed=0", "threads=1",
                     "task.data.batch_size=4"])
    assert res["status"] == "ok", res.get("error")
    assert res["metrics"]["test/s_per_batch"] > 0 and res["speed"]["length"] == 32
    assert len(res["speed"]["times_s"]) == 2


def test_attention_memory_grows_faster_with_length_than_the_rnn():
    from functools import partial

    from leedl_cli.models.self_attention import SelfAttentionModel
    from leedl_cli.models.sequence import RNNTagger
    from leedl_cli.tasks.speed import measure

    torch.manual_seed(0)
    models = {"self_attention": SelfAttentionModel(100, 5, d_model=32, num_heads=4, d_ff=64),
              "rnn": RNNTagger(100, 5, embed_dim=32, hidden=32)}
    mem = {}
    for name, model in models.items():
        for length in (32, 128):
            ids = torch.randint(2, 100, (2, length))
            m = measure(model, ids, torch.randint(0, 5, (2, length)), partial(torch.optim.AdamW, lr=1e-3),
                        repeats=1, warmup=0)
            assert m["s_per_batch"] > 0
            mem[name, length] = m["activation_mb"]
    # 4x the length: the RNN's saved activations grow ~4x, attention's (L x L weights per head) clearly more
    assert mem["rnn", 128] / mem["rnn", 32] < 4.5
    assert mem["self_attention", 128] / mem["self_attention", 32] > mem["rnn", 128] / mem["rnn", 32] + 0.5
