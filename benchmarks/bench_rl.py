"""Environment steps per second: leedl's policy-gradient training (task=cartpole, version v2 = REINFORCE with
discounted returns, through Hydra + Lightning) against a plain PyTorch REINFORCE loop on the same vectorised
CartPole-v1 (SyncVectorEnv, 8 envs), the same network, the same Adam, in the same process.

Both collect one whole episode per environment per update, so they step the environments the same way.
Each is run `REPEATS` times alternately and the best rate is kept (the machine is shared).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("LEEDL_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

N_ENVS, UPDATES, REPEATS = 8, 40, 3


def plain_reinforce(updates: int = UPDATES, seed: int = 0) -> float:
    """Plain PyTorch: collect an episode per env, G'_t, loss = mean(G' * -log pi), Adam step. Returns steps/s."""
    import torch
    import torch.nn.functional as F

    from leedl_cli.data.envs import make_vector_env
    from leedl_cli.models.policy import ActorCritic

    torch.manual_seed(seed)
    envs = make_vector_env("CartPole-v1", N_ENVS)
    model = ActorCritic(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    envs.reset(seed=seed)
    steps = 0
    t0 = time.perf_counter()
    for _ in range(updates):
        s = torch.as_tensor(envs.reset()[0], dtype=torch.float32)
        S, A, R, D, V = [], [], [], [], []
        alive = torch.ones(N_ENVS, dtype=torch.bool)
        while alive.any():
            with torch.no_grad():
                a = torch.distributions.Categorical(logits=model.actor(s)).sample()
            s2, r, term, trunc, _ = envs.step(a.numpy())
            steps += N_ENVS
            done = torch.as_tensor(term | trunc)
            S.append(s), A.append(a), R.append(torch.as_tensor(r, dtype=torch.float32) * alive)
            D.append(done | ~alive), V.append(alive.clone())
            alive &= ~done
            s = torch.as_tensor(s2, dtype=torch.float32)
        R, D, V = torch.stack(R), torch.stack(D), torch.stack(V)
        G = torch.zeros_like(R)
        future = torch.zeros(N_ENVS)
        for t in reversed(range(len(R))):
            future = R[t] + 0.99 * future * (~D[t]).float()
            G[t] = future
        valid = V.reshape(-1)
        logits = model.actor(torch.stack(S).reshape(-1, 4))[valid]
        loss = (G.reshape(-1)[valid] * F.cross_entropy(logits, torch.stack(A).reshape(-1)[valid], reduction="none")).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rate = steps / (time.perf_counter() - t0)
    envs.close()
    return rate


def leedl_training(updates: int = UPDATES, seed: int = 0) -> float:
    from conftest import run_overrides

    with tempfile.TemporaryDirectory() as tmp:
        r = run_overrides(["task=cartpole", "task.module.version=v2", f"task.data.n_envs={N_ENVS}",
                           f"task.data.updates={updates}", "task.module.target_return=null",
                           "task.module.normalize_advantage=false", "task.module.max_grad_norm=0",
                           "task.module.entropy_coef=0", "task.module.eval_episodes=1", "logger=none",
                           "callbacks=none", "trainer.enable_progress_bar=false", f"seed={seed}", "threads=1"],
                          Path(tmp) / "run")
    assert r["status"] == "ok", r.get("error")
    return r["env_steps"] / r["train_wall_s"]


def main() -> None:
    import logging

    import torch

    torch.set_num_threads(1)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("leedl").setLevel(logging.WARNING)
    logging.getLogger("leedl_cli").setLevel(logging.WARNING)
    leedl, plain = [], []
    for _ in range(REPEATS):
        plain.append(plain_reinforce())
        leedl.append(leedl_training())
    best_l, best_p = max(leedl), max(plain)
    print(f"bench_rl: CartPole-v1, {N_ENVS} envs (SyncVectorEnv), REINFORCE (v2), {UPDATES} updates, best of {REPEATS}")
    print(f"  plain PyTorch loop : {best_p:9.0f} env steps/s  (all: {', '.join(f'{x:.0f}' for x in plain)})")
    print(f"  leedl (Lightning)  : {best_l:9.0f} env steps/s  (all: {', '.join(f'{x:.0f}' for x in leedl)})")
    print(f"  ratio leedl/plain  : {best_l / best_p:.2f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
