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


def test_ranks_split_the_batches():
    x = torch.arange(10)
    parts = [torch.cat([b[0] for b in InMemoryLoader(x, batch_size=2, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    assert len(InMemoryLoader(x, batch_size=2, rank=0, world_size=2)) == 3
