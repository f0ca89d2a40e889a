"""Playing a video game from its screen (LeeDL ch. 7.2.1): the actor sees the last frames of the screen, its
action is the joystick's, the reward is the game score, and it learns by PPO (leedl_cli/tasks/pg/ppo.py) with
the settings of CleanRL's ppo_atari.

On top of the policy-gradient task it measures:
- the learning curve against the emulator frames played (env frames = env steps x frame skip): the metrics
  `train/env_frames` and `train/fps` (frames per second of training), plots/return_vs_frames.png;
- at test: the mean return of `eval_episodes` full games (all lives), and beside it a uniformly random policy's
  mean return over the same episode seeds (`test/random_return_mean`) and their ratio (`test/return_vs_random`);
- one episode of the final policy, greedy (argmax_a pi(a|s)), as plots/greedy_episode.gif: every
  `gif_every`-th step's RGB screen, at most `gif_max_frames` of them.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any, Callable

import numpy as np
import torch

from leedl_cli.contract import AtLeastOne, NonNegative, Provided
from leedl_cli.rl.evaluation import evaluation_returns
from leedl_cli.tasks.policy_gradient import PolicyGradient

log = logging.getLogger(__name__)


class AtariPolicyGradient(PolicyGradient):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 make_render_env: Provided[Callable[[], Any]] = None, frame_skip: Provided[int] = 4,
                 n_actions: Provided[int] = 6,
                 random_baseline: bool = True, gif_every: Annotated[int, AtLeastOne] = 2,
                 gif_max_frames: Annotated[int, NonNegative] = 1000, **options) -> None:
        """`random_baseline`: also measure a uniformly random policy on the test episodes; `gif_max_frames`: 0 =
        no GIF. Every other option is the policy-gradient task's (version ppo, its clip, epochs, ...)."""
        super().__init__(model, optimizer, scheduler, run_dir=run_dir, **options)
        self.make_render_env, self.frame_skip, self.n_actions = make_render_env, frame_skip, n_actions
        self.random_baseline, self.gif_every, self.gif_max_frames = random_baseline, gif_every, gif_max_frames

    # ---- the learning curve in frames ----------------------------------------------------------
    def env_frames(self) -> int:
        return self.rollouts.env_steps * self.frame_skip

    def extra_train_metrics(self) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.fit_started, 1e-9)
        return {"train/env_frames": float(self.env_frames()), "train/fps": self.env_frames() / seconds}

    def on_train_end(self) -> None:
        super().on_train_end()
        frames = self.env_frames()
        self.results.update(env_frames=frames, frame_skip=self.frame_skip,
                            train_fps=frames / max(self.results["train_wall_s"], 1e-9))
        log.info("trained on %d env frames (%d env steps) at %.0f frames/s", frames, self.rollouts.env_steps,
                 self.results["train_fps"])

    # ---- test: the policy's full games beside a random policy's, the curve, one episode --------
    def test_step(self, batch, batch_idx) -> None:
        super().test_step(batch, batch_idx)
        random_mean = None
        if self.random_baseline:
            rets = evaluation_returns(self.make_envs, uniform_logits(self.n_actions),
                                      self.eval_episodes, self.eval_seed, self.eval_batch, greedy=False,
                                      max_episode_steps=self.max_episode_steps)
            random_mean = float(np.mean(rets))
            self.log("test/random_return_mean", random_mean, batch_size=1)
            self.log("test/random_return_std", float(np.std(rets)), batch_size=1)
            self.results.update(random_eval_returns=rets)
            if random_mean > 0:   # the policy's mean return in units of the random policy's
                self.log("test/return_vs_random", float(np.mean(self.results["eval_returns"])) / random_mean,
                         batch_size=1)
            log.info("random policy over the same %d episodes: return %.1f ± %.1f", len(rets), random_mean,
                     np.std(rets))
        if self.run_dir is None:
            return
        from leedl_cli.analysis.atari_plots import plot_run_return_vs_frames, write_gif

        plots = Path(self.run_dir) / "plots"
        episodes = [(steps * self.frame_skip, ret) for steps, ret in (self.rollouts.episodes if self.rollouts else [])]
        plot_run_return_vs_frames(episodes, plots / "return_vs_frames.png", random_mean)
        if self.gif_max_frames:
            screens, ret = self.greedy_episode()
            path = write_gif(screens, plots / "greedy_episode.gif")
            self.results.update(gif_episode_return=ret, gif_frames=len(screens))
            log.info("greedy episode (return %.0f): %d frames in %s", ret, len(screens), path)

    @torch.no_grad()
    def greedy_episode(self) -> tuple[list[np.ndarray], float]:
        """One full game by argmax_a pi(a|s) (seed eval_seed): every `gif_every`-th step's RGB screen, at most
        `gif_max_frames`, and the game's return (the episode runs to its end or `max_episode_steps`)."""
        env = self.make_render_env()
        screens: list[np.ndarray] = []
        total = 0.0
        try:
            s, _ = env.reset(seed=self.eval_seed)
            for step in range(self.max_episode_steps):
                if step % self.gif_every == 0 and len(screens) < self.gif_max_frames:
                    screens.append(env.render())
                a = int(self.model.actor(torch.from_numpy(np.asarray(s))[None]).argmax(-1))
                s, r, terminated, truncated, _ = env.step(a)
                total += float(r)
                if terminated or truncated:
                    break
        finally:
            env.close()
        return screens, total


def uniform_logits(n_actions: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The logits of a uniformly random policy (sampled: every action with probability 1 / n_actions)."""
    return lambda s: torch.zeros(len(s), n_actions)
