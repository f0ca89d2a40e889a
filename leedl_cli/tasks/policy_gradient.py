"""Policy gradient, LeeDL algorithm 7.1, on gymnasium environments with discrete actions.

Every training step is one iteration of the algorithm:
    1. collect data {(s_t, a_t, r_t)} with the current policy pi_theta (actions *sampled*, not argmax): the train
       loader's next rollout (leedl_cli.rl.rollout), collected when the step asks for it
    2. compute the advantage A_t of every (s_t, a_t)       -- the version is a config choice (below)
    3. L = mean_t A_t e_t, e_t = cross-entropy(pi_theta(s_t), a_t) = -log pi_theta(a_t|s_t)
           - entropy_coef * entropy (exploration) + value_coef * critic loss   -- one update of theta
    4. throw the data away and collect again (on-policy)

Versions (named as in the book, ch. 7.3-7.5), one module each under leedl_cli/tasks/pg/:
    v0..v3_5  reinforce.py     A_t = r_t | G_t | G'_t | G'_t - b | G'_t - V(s_t) over whole episodes
    v4        actor_critic.py  A_t = r_t + gamma V(s_t+1) - V(s_t) over n_steps (`gae_lambda` > 0 sums them)
    ppo       ppo.py           v4's advantages, `ppo_epochs` passes of minibatch updates with the clipped
                               importance ratio pi_theta / pi_old (ch. 7's off-policy learning)
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, get_args

import numpy as np
import torch

from leedl_cli.contract import AtLeastOne, NonNegative, Positive, Probability, Provided
from leedl_cli.rl.evaluation import evaluation_returns
from leedl_cli.rl.rollout import Rollout, RolloutCollector
from leedl_cli.tasks.base import LeedlTask
from leedl_cli.tasks.pg.actor_critic import AdvantageActorCritic
from leedl_cli.tasks.pg.common import Algorithm, Losses, Settings
from leedl_cli.tasks.pg.ppo import PPO
from leedl_cli.tasks.pg.reinforce import (
    CumulativeReward,
    DiscountedReward,
    ImmediateReward,
    WithBaseline,
    WithCritic,
)
from leedl_cli.tasks.returns import Critic

log = logging.getLogger(__name__)

Version = Literal["v0", "v1", "v2", "v3", "v3_5", "v4", "ppo"]
VERSIONS: tuple[str, ...] = get_args(Version)
ALGORITHMS: dict[str, type[Algorithm]] = {
    "v0": ImmediateReward, "v1": CumulativeReward, "v2": DiscountedReward, "v3": WithBaseline, "v3_5": WithCritic,
    "v4": AdvantageActorCritic, "ppo": PPO,
}


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
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 start_rollouts: Provided[Callable[..., RolloutCollector]] = None,
                 make_envs: Provided[Callable[[int], Any]] = None,
                 version: Version = "v4", critic: Critic = "td",
                 gamma: Annotated[float, Probability] = 0.99, n_steps: Annotated[int, AtLeastOne] = 32,
                 gae_lambda: Annotated[float, Probability] = 0.0,
                 entropy_coef: Annotated[float, NonNegative] = 0.01, value_coef: Annotated[float, NonNegative] = 0.5,
                 normalize_advantage: bool = False, max_grad_norm: Annotated[float, NonNegative] | None = 0.5,
                 baseline_momentum: Annotated[float, Probability] = 0.9,
                 eval_episodes: Annotated[int, AtLeastOne] = 100, eval_seed: Annotated[int, NonNegative] = 10_000,
                 eval_greedy: bool = True, eval_batch: Annotated[int, AtLeastOne] = 50,
                 target_return: float | None = None, check_every: Annotated[int, AtLeastOne] = 20,
                 check_from: Annotated[float, NonNegative] = 0.8,
                 max_episode_steps: Annotated[int, AtLeastOne] = 100_000,
                 max_env_steps: Annotated[int, AtLeastOne] | None = None,
                 ppo_epochs: Annotated[int, AtLeastOne] = 4, ppo_minibatches: Annotated[int, AtLeastOne] = 4,
                 ppo_clip: Annotated[float, Positive] = 0.2,
                 ppo_forward_chunk: Annotated[int, AtLeastOne] | None = None,
                 ppo_next_values_from_rows: bool = False) -> None:
        """`max_grad_norm`: 0 or null = no gradient clipping; `target_return`: stop once `eval_episodes` check
        episodes (seeds eval_seed + 100000 ..) average this much, tried every `check_every` updates once the
        recent training episodes reach `check_from` x target; `max_env_steps`: the env-step budget;
        `ppo_forward_chunk`, `ppo_next_values_from_rows`: how PPO computes pi_old, V_old and V(s_t+1) over a
        rollout (the same values: chunks of rows, V(s_t+1) read from the next row), for CNNs on pixels."""
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.automatic_optimization = False
        self.start_rollouts, self.make_envs = start_rollouts, make_envs
        self.version = version
        self.algorithm = ALGORITHMS[version](Settings(
            gamma=gamma, critic=critic, gae_lambda=gae_lambda, normalize_advantage=normalize_advantage,
            baseline_momentum=baseline_momentum, ppo_epochs=ppo_epochs, ppo_minibatches=ppo_minibatches,
            ppo_clip=ppo_clip, forward_chunk=ppo_forward_chunk, next_values_from_rows=ppo_next_values_from_rows))
        self.n_steps, self.max_episode_steps, self.max_env_steps = n_steps, max_episode_steps, max_env_steps
        self.entropy_coef, self.value_coef, self.max_grad_norm = entropy_coef, value_coef, max_grad_norm
        self.eval_episodes, self.eval_seed, self.eval_greedy = eval_episodes, eval_seed, eval_greedy
        self.eval_batch = eval_batch
        self.target_return, self.check_every, self.check_from = target_return, check_every, check_from
        self.rollouts: RolloutCollector | None = None

    # ---- step 1: the policy that collects the data ----------------------------------------------
    @torch.no_grad()
    def act(self, s: torch.Tensor) -> torch.Tensor:
        """a_t ~ pi_theta(.|s_t)."""
        return torch.distributions.Categorical(logits=self.model.actor(s)).sample()

    def on_train_start(self) -> None:
        n_steps = None if self.algorithm.whole_episodes else self.n_steps
        self.rollouts = self.start_rollouts(self.act, n_steps, self.max_episode_steps)
        self.fit_started = time.perf_counter()
        self.results.update(version=self.version, target_reached_at=None)

    def on_train_end(self) -> None:
        env_steps = self.rollouts.env_steps
        quarters = quarter_means(self.rollouts.episodes, env_steps)
        self.results.update(env_steps=env_steps, updates=int(self.global_step),
                            train_wall_s=time.perf_counter() - self.fit_started,
                            return_by_quarter=quarters, return_last_quarter=quarters[-1])

    # ---- steps 2-4: the algorithm's update(s) on one rollout ------------------------------------
    def training_step(self, batch: Rollout, batch_idx: int) -> torch.Tensor:
        for losses in self.algorithm.updates(self.model, batch):
            loss = losses.policy - self.entropy_coef * losses.entropy
            if losses.critic is not None:
                loss = loss + self.value_coef * losses.critic
            self._update(loss)
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        self._log_update(loss, losses)
        self._maybe_stop_early()
        if self.max_env_steps and self.rollouts.env_steps >= self.max_env_steps:
            self.trainer.should_stop = True     # the env-step budget is spent
        return loss.detach()

    def _update(self, loss: torch.Tensor) -> None:
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        if self.max_grad_norm:
            self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
        opt.step()

    def _log_update(self, loss: torch.Tensor, losses: Losses) -> None:
        """Every `trainer.log_every_n_steps` updates (what the loggers would keep anyway): losses, env steps,
        the mean return of the episodes finished since the last log (the learning curve)."""
        if self.global_step % max(1, self.trainer.log_every_n_steps) and not self.trainer.should_stop:
            return
        metrics = {"train/loss": loss.detach(), "train/policy_loss": losses.policy.detach(),
                   "train/entropy": losses.entropy.detach(), "train/env_steps": float(self.rollouts.env_steps)}
        if losses.critic is not None:
            metrics["train/critic_loss"] = losses.critic.detach()
        finished = self.rollouts.take_finished()
        if finished:
            metrics["train/episode_return"] = float(np.mean(finished))
        if self.rollouts.recent:
            metrics["train/return_recent"] = float(np.mean(self.rollouts.recent))
        metrics.update(self.extra_train_metrics())
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, batch_size=1)

    def extra_train_metrics(self) -> dict[str, float]:
        """More metrics for the rows of the learning curve (task=atari: env frames, frames/s)."""
        return {}

    def _maybe_stop_early(self) -> None:
        """Stop once the policy reaches `target_return` on held-out check episodes (seeds unlike the test's)."""
        recent = self.rollouts.recent
        if self.target_return is None or self.global_step % self.check_every or len(recent) < recent.maxlen:
            return
        if np.mean(recent) < self.check_from * self.target_return:
            return
        rets = self.evaluation_returns(self.eval_episodes, self.eval_seed + 100_000)
        mean = float(np.mean(rets))
        if mean >= self.target_return:
            env_steps = self.rollouts.env_steps
            log.info("target %.1f reached (check episodes: %.1f) after %d env steps", self.target_return, mean,
                     env_steps)
            self.results.update(target_reached_at={"env_steps": env_steps, "updates": int(self.global_step),
                                                   "wall_s": time.perf_counter() - self.fit_started,
                                                   "check_return_mean": mean})
            self.trainer.should_stop = True

    # ---- evaluation: the episodic return over fixed-seed episodes -------------------------------
    def evaluation_returns(self, n_episodes: int, seed: int) -> list[float]:
        return evaluation_returns(self.make_envs, self.model.actor, n_episodes, seed, self.eval_batch,
                                  self.eval_greedy, self.max_episode_steps)

    def test_step(self, batch, batch_idx) -> None:
        rets = self.evaluation_returns(self.eval_episodes, self.eval_seed)
        self.log("test/return_mean", float(np.mean(rets)), batch_size=1)
        self.log("test/return_std", float(np.std(rets)), batch_size=1)
        self.results.update(eval_returns=rets, eval_episodes=self.eval_episodes, eval_seed=self.eval_seed,
                            eval_greedy=self.eval_greedy)
        log.info("evaluation over %d episodes (seeds %d..): return %.1f ± %.1f", len(rets), self.eval_seed,
                 np.mean(rets), np.std(rets))
