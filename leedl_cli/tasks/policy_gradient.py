"""Policy gradient, LeeDL algorithm 7.1, on gymnasium environments with discrete actions.

Every training step is one iteration of the algorithm:
    1. collect data {(s_t, a_t, r_t)} with the current policy pi_theta (actions *sampled*, not argmax)
    2. compute the advantage A_t of every (s_t, a_t)       -- the version is a config choice (below)
    3. L = sum_t A_t e_t, e_t = cross-entropy(pi_theta(s_t), a_t) = -log pi_theta(a_t|s_t)
           - beta * entropy (exploration) + c * critic loss   -- one update of theta
    4. throw the data away and collect again (on-policy)

Versions (named as in the book, ch. 7.3-7.5):
    v0   A_t = r_t
    v1   A_t = G_t   = r_t + r_t+1 + ... (whole rest of the episode)
    v2   A_t = G'_t  = sum_n gamma^(n-t) r_n
    v3   A_t = G'_t - b, b a running mean of G'
    v3_5 A_t = G'_t - V(s_t), the critic V trained by Monte Carlo (critic=mc) or TD (critic=td)
    v4   A_t = r_t + gamma V(s_t+1) - V(s_t)  (advantage actor-critic; `gae_lambda` > 0 sums these TD errors)
    ppo  v4's advantages, but the collected data is used for `ppo_epochs` passes of minibatch updates: from the
         second update on the data come from an older policy, so each e_t is weighted by the importance ratio
         pi_theta(a_t|s_t) / pi_old(a_t|s_t), clipped to [1 - ppo_clip, 1 + ppo_clip] (ch. 7's off-policy
         learning: proximal policy optimisation, PPO)
v0..v3_5 collect whole episodes (one per environment, reset at the start of every collection, as in the book);
v4 collects `n_steps` from every environment and bootstraps with V, so episodes run on across updates.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from leedl_cli.errors import LeedlError
from leedl_cli.tasks import returns
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)

VERSIONS = ("v0", "v1", "v2", "v3", "v3_5", "v4", "ppo")
EPISODIC = ("v0", "v1", "v2", "v3", "v3_5")      # versions that need whole episodes (Monte Carlo returns)
WITH_CRITIC = ("v3_5", "v4", "ppo")


def quarter_means(episodes: list[tuple[int, float]], total_steps: int) -> list[float | None]:
    """The mean return of the training episodes that ended in each quarter of the run's env steps (None: no episode
    ended there). A learning curve has flattened when the last quarters agree."""
    out: list[float | None] = []
    for q in range(4):
        lo, hi = total_steps * q / 4, total_steps * (q + 1) / 4
        rets = [r for step, r in episodes if lo < step <= hi]
        out.append(float(np.mean(rets)) if rets else None)
    return out


class PolicyGradient(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, version: Literal["v0", "v1", "v2", "v3", "v3_5", "v4", "ppo"] = "v4",
                 critic: Literal["mc", "td"] = "td",
                 gamma: float = 0.99, n_steps: int = 32, gae_lambda: float = 0.0, entropy_coef: float = 0.01,
                 value_coef: float = 0.5, normalize_advantage: bool = False, max_grad_norm: float | None = 0.5,
                 baseline_momentum: float = 0.9, eval_episodes: int = 100, eval_seed: int = 10_000,
                 eval_greedy: bool = True, eval_batch: int = 50, target_return: float | None = None,
                 check_every: int = 20, check_from: float = 0.8, max_episode_steps: int = 100_000,
                 max_env_steps: int | None = None, torch_threads: int | None = None, ppo_epochs: int = 4,
                 ppo_minibatches: int = 4, ppo_clip: float = 0.2) -> None:
        super().__init__(model, optimizer, scheduler)
        if version not in VERSIONS:
            raise LeedlError(f"unknown policy-gradient version {version!r}; choose one of {', '.join(VERSIONS)}")
        if critic not in ("mc", "td"):
            raise LeedlError(f"critic={critic!r}: the critic is trained by Monte Carlo (mc) or TD (td)")
        self.automatic_optimization = False
        self.version, self.critic_kind, self.gamma = version, critic, gamma
        self.n_steps, self.gae_lambda = n_steps, gae_lambda
        self.entropy_coef, self.value_coef = entropy_coef, value_coef
        self.normalize_advantage, self.max_grad_norm = normalize_advantage, max_grad_norm
        self.baseline_momentum = baseline_momentum
        self.eval_episodes, self.eval_seed, self.eval_greedy = eval_episodes, eval_seed, eval_greedy
        self.eval_batch = eval_batch
        self.target_return, self.check_every, self.check_from = target_return, check_every, check_from
        self.max_episode_steps, self.max_env_steps = max_episode_steps, max_env_steps
        self.torch_threads = torch_threads
        self.ppo_epochs, self.ppo_minibatches, self.ppo_clip = int(ppo_epochs), int(ppo_minibatches), ppo_clip
        self.b: float | None = None                # version 3's baseline
        self.env_steps = 0
        self.recent = deque(maxlen=20)             # returns of the last finished training episodes
        self.finished: list[float] = []            # returns of the episodes finished since the last log
        self.episodes: list[tuple[int, float]] = []   # (env steps when it ended, return) of every training episode
        self.envs = None

    # ---- the environment ------------------------------------------------------------------------
    def on_train_start(self) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.envs = self.trainer.datamodule.make_envs()
        self.n_envs = self.envs.num_envs
        self.env_seed = int(torch.initial_seed() % 2**31)    # the run's seed (seed_everything)
        self.s = self._obs(self.envs.reset(seed=self.env_seed)[0])
        self.ep_return = np.zeros(self.n_envs)
        self.fit_started = time.perf_counter()
        self.results.update(version=self.version, target_reached_at=None)

    def on_train_end(self) -> None:
        if self.envs is not None:
            self.envs.close()
        quarters = quarter_means(self.episodes, self.env_steps)
        self.results.update(env_steps=self.env_steps, updates=int(self.global_step),
                            train_wall_s=time.perf_counter() - self.fit_started,
                            return_by_quarter=quarters, return_last_quarter=quarters[-1])

    @staticmethod
    def _obs(x) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).flatten(1)

    def _env_step(self, a: torch.Tensor):
        """One step of every environment: (s', r, terminated, done, s'_for_V) -- s'_for_V is the real last state
        of a finished episode (the vector env already returns the next episode's first state in s')."""
        s2, r, term, trunc, info = self.envs.step(a.numpy())
        self.env_steps += self.n_envs
        s2 = self._obs(s2)
        s_next = s2
        if "_final_obs" in info and info["_final_obs"].any():
            s_next = s2.clone()
            for i in np.flatnonzero(info["_final_obs"]):
                s_next[i] = torch.from_numpy(np.asarray(info["final_obs"][i], dtype=np.float32)).flatten()
        return (s2, torch.from_numpy(np.asarray(r, dtype=np.float32)), torch.from_numpy(term),
                torch.from_numpy(term | trunc), s_next)

    @torch.no_grad()
    def _act(self, s: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Categorical(logits=self.model.actor(s)).sample()

    # ---- step 1: collect data with the current policy -------------------------------------------
    def collect(self) -> dict:
        return self.collect_episodes() if self.version in EPISODIC else self.collect_steps()

    def collect_steps(self) -> dict:
        """n_steps from every environment, episodes running on across collections (version 4)."""
        T, N = self.n_steps, self.n_envs
        batch = {k: [] for k in ("s", "a", "r", "terminated", "done", "s_next")}
        for _ in range(T):
            a = self._act(self.s)
            s2, r, term, done, s_next = self._env_step(a)
            for k, v in zip(batch, (self.s, a, r, term, done, s_next)):
                batch[k].append(v)
            self.ep_return += r.numpy()
            for i in np.flatnonzero(done.numpy()):
                self._episode_ended(float(self.ep_return[i]))
                self.ep_return[i] = 0.0
            self.s = s2
        out = {k: torch.stack(v) for k, v in batch.items()}
        out["valid"] = torch.ones(T, N, dtype=torch.bool)
        return out

    def collect_episodes(self) -> dict:
        """One whole episode per environment (all reset together); steps after an environment's episode ended
        are masked out (`valid`), so every return G_t is a real Monte Carlo return."""
        s = self._obs(self.envs.reset()[0])
        batch = {k: [] for k in ("s", "a", "r", "terminated", "done", "s_next", "valid")}
        alive = torch.ones(self.n_envs, dtype=torch.bool)
        while alive.any() and len(batch["s"]) < self.max_episode_steps:
            a = self._act(s)
            s2, r, term, done, s_next = self._env_step(a)
            for k, v in zip(batch, (s, a, r, term, done, s_next, alive.clone())):
                batch[k].append(v)
            alive &= ~done
            s = s2
        out = {k: torch.stack(v) for k, v in batch.items()}
        out["done"] |= ~out["valid"]          # nothing after an episode's end flows back into its returns
        out["r"] = out["r"] * out["valid"]
        for ret in out["r"].sum(0).tolist():
            self._episode_ended(ret)
        return out

    def _episode_ended(self, ret: float) -> None:
        """A training episode ended with return `ret`: the recent window, the next log's mean, the per-quarter means."""
        self.recent.append(ret)
        self.finished.append(ret)
        self.episodes.append((self.env_steps, ret))

    # ---- step 2: the advantage A_t of every (s_t, a_t) ------------------------------------------
    def advantage(self, b: dict, v: torch.Tensor | None, v_next: torch.Tensor | None):
        """(A_t, critic loss or None) for this version."""
        r, done, term, gamma = b["r"], b["done"], b["terminated"], self.gamma
        if self.version == "v0":
            return returns.advantage_v0(r), None
        if self.version == "v1":
            return returns.advantage_v1(r, done), None
        if self.version == "v2":
            return returns.advantage_v2(r, done, gamma), None
        if self.version == "v3":
            G = returns.reward_to_go(r, done, gamma)
            mean_G = float(G[b["valid"]].mean())
            self.b = mean_G if self.b is None else self.baseline_momentum * self.b + (1 - self.baseline_momentum) * mean_G
            return returns.advantage_v3(r, done, gamma, self.b), None
        if self.version == "v3_5":
            G = returns.reward_to_go(r, done, gamma)
            A = returns.advantage_v3_5(G, v.detach())
            target = G if self.critic_kind == "mc" else r + gamma * v_next * (1.0 - term.float())
            return A, (v - target.detach()) ** 2
        # v4: A_t = r_t + gamma V(s_t+1) - V(s_t), the critic learns by TD towards r_t + gamma V(s_t+1)
        delta = returns.td_error(r, v.detach(), v_next, term, gamma)
        A = returns.gae(delta, done, gamma, self.gae_lambda)
        return A, (v - (A + v.detach())) ** 2

    # ---- steps 3-4: L = sum A_t e_t, one update -----------------------------------------------
    def training_step(self, batch_idx, _=None):
        b = self.collect()
        if self.version == "ppo":
            return self._ppo_updates(b)
        T, N = b["a"].shape
        s = b["s"].reshape(T * N, -1)
        if self.version in WITH_CRITIC:
            logits, v = self.model(s)
            v = v.reshape(T, N)
            with torch.no_grad():
                v_next = self.model.critic(b["s_next"].reshape(T * N, -1)).reshape(T, N)
        else:
            logits, v, v_next = self.model.actor(s), None, None
        A, critic_loss = self.advantage(b, v, v_next)
        valid = b["valid"].reshape(-1)
        A = A.reshape(-1)[valid]
        if self.normalize_advantage and A.numel() > 1:
            A = (A - A.mean()) / (A.std() + 1e-8)
        logits = logits[valid]
        e = F.cross_entropy(logits, b["a"].reshape(-1)[valid], reduction="none")   # e_t = -log pi(a_t|s_t)
        policy_loss = (A * e).mean()
        entropy = torch.distributions.Categorical(logits=logits).entropy().mean()
        loss = policy_loss - self.entropy_coef * entropy
        if critic_loss is not None:
            critic_loss = critic_loss.reshape(-1)[valid].mean()
            loss = loss + self.value_coef * critic_loss

        self._update(loss)
        return self._end_of_collection(loss, policy_loss, entropy, critic_loss)

    def _end_of_collection(self, loss, policy_loss, entropy, critic_loss) -> torch.Tensor:
        """After the update(s) of one collection: the scheduler's step, logging, early stop, env-step budget."""
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        self._log_update(loss, policy_loss, entropy, critic_loss)
        self._maybe_stop_early()
        if self.max_env_steps and self.env_steps >= self.max_env_steps:
            self.trainer.should_stop = True     # the env-step budget is spent
        return loss.detach()

    def _update(self, loss: torch.Tensor) -> None:
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        if self.max_grad_norm:
            self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
        opt.step()

    def _ppo_updates(self, b: dict) -> torch.Tensor:
        """PPO: GAE advantages and value targets from the collecting policy, then `ppo_epochs` passes of
        `ppo_minibatches` updates of the clipped importance-weighted objective (one scheduler step per collection)."""
        T, N = b["a"].shape
        s, a = b["s"].reshape(T * N, -1), b["a"].reshape(-1)
        with torch.no_grad():
            logits_old, v_old = self.model(s)
            v_next = self.model.critic(b["s_next"].reshape(T * N, -1)).reshape(T, N)
            delta = returns.td_error(b["r"], v_old.reshape(T, N), v_next, b["terminated"], self.gamma)
            A_all = returns.gae(delta, b["done"], self.gamma, self.gae_lambda).reshape(-1)
            target_all = A_all + v_old.reshape(-1)
            logp_old_all = -F.cross_entropy(logits_old, a, reduction="none")
        n = T * N
        size = max(1, n // max(1, self.ppo_minibatches))
        for _ in range(max(1, self.ppo_epochs)):
            order = torch.randperm(n)
            for start in range(0, n, size):
                idx = order[start:start + size]
                logits, v = self.model(s[idx])
                A = A_all[idx]
                if self.normalize_advantage and A.numel() > 1:
                    A = (A - A.mean()) / (A.std() + 1e-8)
                logp = -F.cross_entropy(logits, a[idx], reduction="none")
                ratio = (logp - logp_old_all[idx]).exp()
                clipped = ratio.clamp(1 - self.ppo_clip, 1 + self.ppo_clip)
                policy_loss = -torch.min(ratio * A, clipped * A).mean()
                entropy = torch.distributions.Categorical(logits=logits).entropy().mean()
                critic_loss = ((v - target_all[idx]) ** 2).mean()
                loss = policy_loss - self.entropy_coef * entropy + self.value_coef * critic_loss
                self._update(loss)
        return self._end_of_collection(loss, policy_loss, entropy, critic_loss)

    def _log_update(self, loss, policy_loss, entropy, critic_loss) -> None:
        """Every `trainer.log_every_n_steps` updates (what the loggers would keep anyway): losses, env steps,
        the mean return of the episodes finished since the last log (the learning curve)."""
        if self.global_step % max(1, self.trainer.log_every_n_steps) and not self.trainer.should_stop:
            return
        metrics = {"train/loss": loss.detach(), "train/policy_loss": policy_loss.detach(),
                   "train/entropy": entropy.detach(), "train/env_steps": float(self.env_steps)}
        if critic_loss is not None:
            metrics["train/critic_loss"] = critic_loss.detach()
        if self.finished:
            metrics["train/episode_return"] = float(np.mean(self.finished))
            self.finished = []
        if self.recent:
            metrics["train/return_recent"] = float(np.mean(self.recent))
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, batch_size=1)

    def _maybe_stop_early(self) -> None:
        """Stop once the policy reaches `target_return` on held-out check episodes (seeds unlike the test's)."""
        if self.target_return is None or self.global_step % self.check_every or len(self.recent) < self.recent.maxlen:
            return
        if np.mean(self.recent) < self.check_from * self.target_return:
            return
        mean, _ = self.evaluate(self.eval_episodes, self.eval_seed + 100_000)
        if mean >= self.target_return:
            log.info("target %.1f reached (check episodes: %.1f) after %d env steps", self.target_return, mean,
                     self.env_steps)
            self.results.update(target_reached_at={"env_steps": self.env_steps, "updates": int(self.global_step),
                                                   "wall_s": time.perf_counter() - self.fit_started,
                                                   "check_return_mean": mean})
            self.trainer.should_stop = True

    # ---- evaluation: mean/std of the episodic return over fixed-seed episodes -------------------
    @torch.no_grad()
    def evaluate(self, n_episodes: int, seed: int) -> tuple[float, float]:
        rets = self.evaluation_returns(n_episodes, seed)
        return float(np.mean(rets)), float(np.std(rets))

    @torch.no_grad()
    def evaluation_returns(self, n_episodes: int, seed: int) -> list[float]:
        B = min(n_episodes, self.eval_batch)
        envs = self.trainer.datamodule.make_envs(B)
        g = torch.Generator().manual_seed(seed)
        out: list[float] = []
        try:
            for start in range(0, n_episodes, B):
                s = self._obs(envs.reset(seed=[seed + start + i for i in range(B)])[0])
                ret, alive = np.zeros(B), np.ones(B, dtype=bool)
                steps = 0
                while alive.any() and steps < self.max_episode_steps:
                    logits = self.model.actor(s)
                    a = logits.argmax(-1) if self.eval_greedy else torch.multinomial(logits.softmax(-1), 1, generator=g)[:, 0]
                    s2, r, term, trunc, _ = envs.step(a.numpy())
                    ret += r * alive
                    alive &= ~(term | trunc)
                    s = self._obs(s2)
                    steps += 1
                out += ret[: min(B, n_episodes - start)].tolist()
        finally:
            envs.close()
        return out

    def test_step(self, batch, batch_idx) -> None:
        rets = self.evaluation_returns(self.eval_episodes, self.eval_seed)
        self.log("test/return_mean", float(np.mean(rets)), batch_size=1)
        self.log("test/return_std", float(np.std(rets)), batch_size=1)
        self.results.update(eval_returns=rets, eval_episodes=self.eval_episodes, eval_seed=self.eval_seed,
                            eval_greedy=self.eval_greedy)
        log.info("evaluation over %d episodes (seeds %d..): return %.1f ± %.1f", len(rets), self.eval_seed,
                 np.mean(rets), np.std(rets))
