import torch

from leedl_cli.data.memory import InMemoryLoader


def test_batches_cover_every_sample_once_per_epoch_and_reshuffle():
    x = torch.arange(10)
    loader = InMemoryLoader(x, x * 2, batch_size=3, shuffle=True, seed=1)
    assert len(loader) == 4
    epoch0 = torch.cat([b[0] for b in loader])
    assert sorted(epoch0.tolist()) == list(range(10))
    assert all(torch.equal(b[1], b[0] * 2) for b in loader)
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat([b[0] for b in loader])
    assert not torch.equal(epoch0, epoch1)
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat([b[0] for b in loader]), epoch0), "the order is a function of (seed, epoch)"


def test_evaluation_ranks_see_every_sample_once():
    x = torch.arange(11)
    loaders = [InMemoryLoader(x, batch_size=100, rank=r, world_size=2) for r in (0, 1)]
    parts = [torch.cat([b[0] for b in ld]) for ld in loaders]
    assert sorted(torch.cat(parts).tolist()) == list(range(11))
    assert [len(ld) for ld in loaders] == [1, 1], "one big evaluation batch still gives every rank a batch"


def test_training_ranks_get_equal_updates_from_one_permutation():
    x = torch.arange(11)
    loaders = [InMemoryLoader(x, batch_size=2, shuffle=True, seed=3, rank=r, world_size=2) for r in (0, 1)]
    parts = [torch.cat([b[0] for b in ld]) for ld in loaders]
    assert len(parts[0]) == len(parts[1]) == 6 and len(loaders[0]) == len(loaders[1]) == 3
    assert set(torch.cat(parts).tolist()) == set(range(11)), "padding wraps around; nothing is left out"
