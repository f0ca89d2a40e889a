"""Atari 2600 games from the screen (LeeDL ch. 7.2.1: the policy sees the pixels, acts with the joystick, and the
game's score is the reward), through the Arcade Learning Environment (`ale-py`) and gymnasium.

Every environment gets the standard preprocessing (Mnih et al. 2015; Machado et al. 2018), gymnasium's wrappers:

- `AtariPreprocessing`: up to `noop_max` no-op actions at reset, each action repeated for `frame_skip` emulator
  frames (the maximum of the last two frames is kept, against flicker), the screen turned grey and resized to
  `screen_size` x `screen_size`; for training only, the loss of a life ends the episode
  (`terminal_on_life_loss`; gymnasium then restarts the game). The v5 games skip frames themselves: they are
  made with `frameskip=1` so that the wrapper does it; their sticky actions (repeat probability 0.25) stay.
- `FrameStackObservation`: the last `stack` screens, so that the policy can see motion: s_t is uint8
  [stack, screen_size, screen_size].

Evaluation episodes are the full game (every life). `provides()` gives an `AtariSpec`: the policy network's sizes
and the task's interfaces to its environments (training rollouts, evaluation environments, one environment that
renders the RGB screen for the episode GIF).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Callable

import gymnasium as gym
import torch

from leedl_cli.contract import AtLeastOne, NonNegative, Range
from leedl_cli.data.envs import EnvSpaceError, GymEnvDataModule, Vectorization
from leedl_cli.errors import LeedlError
from leedl_cli.rl.rollout import PixelRolloutCollector, Policy, RolloutCollector

GAMES = "ALE/SpaceInvaders-v5, ALE/Pong-v5, ALE/Breakout-v5"


@dataclass(frozen=True)
class AtariSpec:
    """What an Atari game gives a policy that plays from the screen."""

    in_channels: int              # stacked screens per observation
    frame_size: int               # each screen is frame_size x frame_size (grey levels 0..255)
    n_actions: int                # the game's joystick actions: pi(.|s) is a softmax over them
    frame_skip: int               # emulator frames per env step (env frames = env steps x frame_skip)
    start_rollouts: Callable[[Policy, int | None, int], RolloutCollector]
    make_envs: Callable[[int], Any]        # n -> n full-game environments (evaluation episodes)
    make_render_env: Callable[[], Any]     # one full-game environment whose render() is the RGB screen


class AtariUnavailableError(LeedlError):
    """ale-py (the Arcade Learning Environment) or OpenCV is not installed."""


def register_atari() -> None:
    """Registers the ALE/... games with gymnasium (idempotent)."""
    try:
        import ale_py
    except ImportError as err:
        raise AtariUnavailableError("task=atari needs the Arcade Learning Environment: pip install 'ale-py>=0.12' "
                                    "(its wheel holds the game ROMs)") from err
    gym.register_envs(ale_py)


def make_atari_env(env_id: str, frame_skip: int = 4, screen_size: int = 84, noop_max: int = 30, stack: int = 4,
                   terminal_on_life_loss: bool = False, render_mode: str | None = None) -> gym.Env:
    """One preprocessed game (module level, so that AsyncVectorEnv can send it to its worker processes)."""
    register_atari()
    try:
        env = gym.make(env_id, frameskip=1, render_mode=render_mode)
    except gym.error.Error as err:
        raise EnvSpaceError(f"cannot make Atari game {env_id!r}: {err}. Pick one with task.data.env_id=... "
                            f"(e.g. {GAMES})") from err
    try:
        env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip,
                                              screen_size=screen_size, terminal_on_life_loss=terminal_on_life_loss,
                                              grayscale_obs=True)
    except gym.error.DependencyNotInstalled as err:
        raise AtariUnavailableError("Atari preprocessing resizes the screen with OpenCV: "
                                    "pip install opencv-python-headless") from err
    return gym.wrappers.FrameStackObservation(env, stack)


class AtariDataModule(GymEnvDataModule):
    """`n_envs` copies of an Atari game for training (a life lost ends an episode), full games for evaluation;
    an epoch is `updates` rollouts (one PPO update each)."""

    def __init__(self, env_id: str = "ALE/SpaceInvaders-v5", n_envs: Annotated[int, AtLeastOne] = 8,
                 updates: Annotated[int, AtLeastOne] = 1000, vectorization: Vectorization = "sync",
                 frame_skip: Annotated[int, AtLeastOne] = 4, screen_size: Annotated[int, Range(36)] = 84,
                 noop_max: Annotated[int, NonNegative] = 30, stack: Annotated[int, AtLeastOne] = 4,
                 terminal_on_life_loss: bool = True) -> None:
        super().__init__(env_id, n_envs, updates, vectorization)
        self.frame_skip, self.screen_size, self.noop_max, self.stack = frame_skip, screen_size, noop_max, stack
        self.terminal_on_life_loss = terminal_on_life_loss

    def provides(self) -> AtariSpec:
        obs_space, act_space = self.spaces()
        return AtariSpec(in_channels=int(obs_space.shape[0]), frame_size=int(obs_space.shape[-1]),
                         n_actions=int(act_space.n), frame_skip=self.frame_skip, start_rollouts=self.start_rollouts,
                         make_envs=self.make_envs, make_render_env=self.make_render_env)

    def env_fn(self, training: bool = False, render_mode: str | None = None) -> Callable[[], gym.Env]:
        return functools.partial(make_atari_env, self.env_id, self.frame_skip, self.screen_size, self.noop_max,
                                 self.stack, self.terminal_on_life_loss and training, render_mode)

    def spaces(self):
        env = self.env_fn()()
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    def vector_env(self, n_envs: int, training: bool) -> gym.vector.VectorEnv:
        fns = [self.env_fn(training) for _ in range(n_envs)]
        kind = gym.vector.AsyncVectorEnv if self.vectorization == "async" else gym.vector.SyncVectorEnv
        return kind(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)

    def make_envs(self, n_envs: int) -> gym.vector.VectorEnv:
        return self.vector_env(n_envs, training=False)

    def make_render_env(self) -> gym.Env:
        return self.env_fn(render_mode="rgb_array")()

    def start_rollouts(self, act: Policy, n_steps: int | None, max_episode_steps: int) -> RolloutCollector:
        """The training games (uint8 frames kept), reset with the run's seed (`seed_everything`'s)."""
        self.close()
        seed = int(torch.initial_seed() % 2**31)
        self.collector = PixelRolloutCollector(self.vector_env(self.n_envs, training=True), act, n_steps,
                                               max_episode_steps, seed)
        return self.collector
