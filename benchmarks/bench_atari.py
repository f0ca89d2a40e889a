"""Env frames per second of PPO on Atari from pixels: leedl's task=atari (through Hydra + Lightning, the rollout
collector as the train loader) against a plain PyTorch PPO loop written CleanRL-style (ppo_atari.py), on the same
environments (ALE/SpaceInvaders-v5, standard preprocessing, SyncVectorEnv), the same Nature-DQN actor-critic and
the same Adam, in the same process, one torch thread each.

Both run `UPDATES` updates of 8 envs x 128 steps, 4 epochs x 4 minibatches. Each is run `REPEATS` times
alternately and the best rate is kept (the machine is shared). Training time only (leedl's test phase is not
counted: its `train_wall_s`).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("LEEDL_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

N_ENVS, N_STEPS, UPDATES, REPEATS = 8, 128, 3, 2
EPOCHS, MINIBATCHES, CLIP, GAMMA, LAMBDA = 4, 4, 0.1, 0.99, 0.95


def plain_ppo(updates: int = UPDATES, seed: int = 0) -> float:
    """CleanRL's ppo_atari loop: act (logp, V kept), GAE from the bootstrap V, clipped surrogate and value loss,
    lr annealed linearly. Returns env frames/s."""
    import numpy as np
    import torch
    from torch import nn

    from leedl_cli.data.atari import AtariDataModule
    from leedl_cli.models.atari_cnn import AtariCNN

    torch.manual_seed(seed)
    data = AtariDataModule(n_envs=N_ENVS)
    envs = data.vector_env(N_ENVS, training=True)
    model = AtariCNN(4, int(envs.single_action_space.n), 84)
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4, eps=1e-5)
    obs = torch.zeros((N_STEPS, N_ENVS, 4, 84, 84), dtype=torch.uint8)
    actions, logps, rewards, dones, values = (torch.zeros(N_STEPS, N_ENVS) for _ in range(5))
    next_obs = torch.from_numpy(envs.reset(seed=seed)[0])
    next_done = torch.zeros(N_ENVS)
    frames = 0
    t0 = time.perf_counter()
    for update in range(updates):
        opt.param_groups[0]["lr"] = (1.0 - update / updates) * 2.5e-4
        for t in range(N_STEPS):
            obs[t], dones[t] = next_obs, next_done
            with torch.no_grad():
                logits, v = model(next_obs)
                dist = torch.distributions.Categorical(logits=logits)
                a = dist.sample()
            actions[t], logps[t], values[t] = a, dist.log_prob(a), v
            o, r, term, trunc, _ = envs.step(a.numpy())
            frames += 4 * N_ENVS
            rewards[t] = torch.from_numpy(np.asarray(r, dtype=np.float32))
            next_obs, next_done = torch.from_numpy(o), torch.from_numpy((term | trunc).astype(np.float32))
        with torch.no_grad():
            next_value = model.critic(next_obs)
            adv = torch.zeros_like(rewards)
            last = torch.zeros(N_ENVS)
            for t in reversed(range(N_STEPS)):
                nonterminal = 1.0 - (next_done if t == N_STEPS - 1 else dones[t + 1])
                v_next = next_value if t == N_STEPS - 1 else values[t + 1]
                delta = rewards[t] + GAMMA * v_next * nonterminal - values[t]
                adv[t] = last = delta + GAMMA * LAMBDA * nonterminal * last
            ret = adv + values
        b_obs, b_a, b_logp = obs.reshape(-1, 4, 84, 84), actions.reshape(-1).long(), logps.reshape(-1)
        b_adv, b_ret, b_v = adv.reshape(-1), ret.reshape(-1), values.reshape(-1)
        n = N_STEPS * N_ENVS
        size = n // MINIBATCHES
        for _ in range(EPOCHS):
            order = torch.randperm(n)
            for start in range(0, n, size):
                i = order[start:start + size]
                logits, v = model(b_obs[i])
                dist = torch.distributions.Categorical(logits=logits)
                ratio = (dist.log_prob(b_a[i]) - b_logp[i]).exp()
                A = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                pg = torch.max(-A * ratio, -A * ratio.clamp(1 - CLIP, 1 + CLIP)).mean()
                v_clipped = b_v[i] + (v - b_v[i]).clamp(-CLIP, CLIP)
                v_loss = 0.5 * torch.max((v - b_ret[i]) ** 2, (v_clipped - b_ret[i]) ** 2).mean()
                loss = pg - 0.01 * dist.entropy().mean() + 0.5 * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                opt.step()
    rate = frames / (time.perf_counter() - t0)
    envs.close()
    return rate


def leedl_training(updates: int = UPDATES, seed: int = 0) -> float:
    from common import run_leedl

    r = run_leedl(["task=atari", f"task.data.n_envs={N_ENVS}", f"task.module.n_steps={N_STEPS}",
                   f"task.data.updates={updates}", "task.module.eval_episodes=1", "task.module.eval_batch=1",
                   "task.module.max_episode_steps=10", "task.module.random_baseline=false",
                   "task.module.gif_max_frames=0", "logger=none", "callbacks=none",
                   "trainer.enable_progress_bar=false", f"seed={seed}", "threads=1"])
    assert r["status"] == "ok", r.get("error")
    return r["env_frames"] / r["train_wall_s"]


def main() -> None:
    import logging

    import torch

    torch.set_num_threads(1)
    for name in ("pytorch_lightning", "lightning", "leedl", "leedl_cli"):
        logging.getLogger(name).setLevel(logging.WARNING)
    leedl, plain = [], []
    for _ in range(REPEATS):
        plain.append(plain_ppo())
        leedl.append(leedl_training())
    best_l, best_p = max(leedl), max(plain)
    print(f"bench_atari: ALE/SpaceInvaders-v5, {N_ENVS} envs x {N_STEPS} steps (SyncVectorEnv), PPO "
          f"{EPOCHS} epochs x {MINIBATCHES} minibatches, Nature-DQN CNN, {UPDATES} updates, best of {REPEATS}")
    print(f"  plain PyTorch loop : {best_p:7.0f} env frames/s  (all: {', '.join(f'{x:.0f}' for x in plain)})")
    print(f"  leedl (Lightning)  : {best_l:7.0f} env frames/s  (all: {', '.join(f'{x:.0f}' for x in leedl)})")
    print(f"  ratio leedl/plain  : {best_l / best_p:.2f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
