"""AlphaGo's reinforcement-learning step (ch. 7.2.2; Silver et al. 2016): the supervised policy network plays
whole games of Go against earlier versions of itself and learns from who won, by REINFORCE.

    start: theta = the weights of a `go_policy` run (`weights_from`), the pool of opponents = {theta}
    every update:
        1. an opponent is drawn from the pool (uniformly); `games_per_update` games of the learner against it,
           many boards at once (`leedl_cli.go.games`), the learner black on half of them
        2. each game's outcome from the learner's side: z = +1 (win) / -1 (loss), at the end only
        3. L = mean_t (z - b) e_t over the learner's moves, e_t = -log pi_theta(a_t|s_t) (the softmax over the
           sensible points the move was sampled from); b = the batch's mean outcome (`baseline: batch_mean`) or 0
        4. every `snapshot_every` updates the learner's weights join the pool (playing against a pool, not only
           the latest version, keeps the policy from overfitting to one opponent)

The network has no pass output: a player passes when it has no sensible move (legal and not filling its own eye);
such passes are forced and are not learned from. Games end after two passes or the data's move cap and are scored
by area (Tromp-Taylor) with komi.

Test: `test_games` games of the trained policy against the starting policy (colours alternated, moves sampled from
each policy's softmax with a fixed seed): `test/win_rate` and its 95% Wilson interval (`test/win_rate_low`,
`test/win_rate_high`); the first `sgf_games` of them go to `test_games.sgf` in the run directory.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from leedl_cli.atomic import write_bytes_atomic
from leedl_cli.checkpoints import checkpoint_file, load_model_weights, run_dir_of
from leedl_cli.contract import AtLeastOne, NonNegative, Provided
from leedl_cli.errors import LeedlError
from leedl_cli.go.games import MASKED, Games, Logits, to_sgf
from leedl_cli.tasks.base import LeedlTask

log = logging.getLogger(__name__)

Baseline = Literal["none", "batch_mean"]
SGF_FILE = "test_games.sgf"
Z95 = 1.959963984540054


def wilson_interval(wins: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a win rate wins / n (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


class OpponentPool:
    """Earlier versions of the policy: the starting weights, then a snapshot every few updates. One network
    (a copy of the learner's, not part of the task's parameters) plays whichever version is drawn."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.net = copy.deepcopy(model).eval().requires_grad_(False)
        self.versions: list[dict[str, torch.Tensor]] = []
        self.updates: list[int] = []          # the update after which each version was taken (0: the start)
        self.loaded: int | None = None

    def add(self, model: torch.nn.Module, update: int) -> None:
        self.versions.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        self.updates.append(int(update))

    def policy(self, index: int) -> Logits:
        if self.loaded != index:
            self.net.load_state_dict(self.versions[index])
            self.loaded = index
        return self.net

    def __len__(self) -> int:
        return len(self.versions)

    def state(self) -> dict:
        return {"versions": self.versions, "updates": self.updates}

    def load(self, state: dict) -> None:
        self.versions, self.updates, self.loaded = list(state["versions"]), list(state["updates"]), None


class GoSelfPlay(LeedlTask):
    def __init__(self, model, optimizer=None, scheduler=None, run_dir: Path | None = None,
                 start_selfplay: Provided[Callable] = None, play_games: Provided[Callable] = None,
                 weights_from: str | None = None, baseline: Baseline = "batch_mean",
                 snapshot_every: Annotated[int, AtLeastOne] = 20, chunk: Annotated[int, AtLeastOne] = 1024,
                 max_grad_norm: Annotated[float, NonNegative] | None = None,
                 test_games: Annotated[int, AtLeastOne] = 400, test_seed: Annotated[int, NonNegative] = 20_000,
                 sgf_games: Annotated[int, NonNegative] = 4) -> None:
        """`weights_from`: a go_policy run directory or .ckpt (null: the model's random initial weights);
        `chunk`: positions per forward/backward pass of an update (memory only: the gradient is the same)."""
        super().__init__(model, optimizer, scheduler, run_dir=run_dir)
        self.automatic_optimization = False
        self.start_selfplay, self.play_games = start_selfplay, play_games
        self.weights_from, self.baseline, self.snapshot_every = weights_from, baseline, int(snapshot_every)
        self.chunk, self.max_grad_norm = int(chunk), max_grad_norm
        self.test_games, self.test_seed, self.sgf_games = int(test_games), int(test_seed), int(sgf_games)
        self.pool = OpponentPool(model)
        self.opponent_index = 0
        self.recent: deque[float] = deque(maxlen=20)   # the learner's wins in the last training games
        self.books = {"games": 0, "positions": 0, "plies": 0, "capped": 0, "play_s": 0.0}

    # ---- the starting policy -----------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if len(self.pool):
            return
        if self.weights_from:
            try:
                path = load_model_weights(self.model, self.weights_from)
            except LeedlError as err:
                hint = settings_hint(self.weights_from)
                raise LeedlError(f"task.module.weights_from={self.weights_from}: {err}{hint}") from err
            self.results["weights_from"] = str(path)
            log.info("starting policy: %s", path)
        else:
            self.results["weights_from"] = None
            log.warning("task.module.weights_from is null: self-play starts from randomly initialised weights")
        self.pool.add(self.model, 0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["opponent_pool"] = self.pool.state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "opponent_pool" in checkpoint:
            self.pool.load(checkpoint["opponent_pool"])

    # ---- step 1: the games --------------------------------------------------------------------
    def on_device(self, net: torch.nn.Module) -> Logits:
        """A network as a policy of the games (which hand it CPU tensors and read CPU logits)."""
        def logits(x: torch.Tensor) -> torch.Tensor:
            return net(x.to(self.device)).cpu()
        return logits

    def pairing(self) -> tuple[Logits, Logits]:
        """(the learner, an opponent drawn uniformly from the pool) for the next batch of games."""
        self.opponent_index = int(torch.randint(len(self.pool), (1,)))
        self.model.eval()
        self._play_started = time.perf_counter()
        return self.on_device(self.model), self.on_device(self.pool.policy(self.opponent_index).to(self.device))

    def on_train_start(self) -> None:
        self.start_selfplay(self.pairing)
        self.fit_started = time.perf_counter()

    # ---- steps 2-4: REINFORCE on the learner's moves ------------------------------------------
    def advantages(self, games: Games) -> torch.Tensor:
        """A of each game: z - b, b the batch's mean outcome (`batch_mean`) or 0."""
        z = games.z
        return z - z.mean() if self.baseline == "batch_mean" else z

    def log_probs(self, games: Games, rows: slice) -> torch.Tensor:
        """log pi_theta(a_t|s_t) of the learner's moves `rows`, over the sensible points they were chosen from."""
        p = games.positions
        x = games.planes(rows).to(self.device)
        logits = self.model(x).float().masked_fill(~p["sensible"][rows].to(self.device), MASKED)
        return -F.cross_entropy(logits, p["action"][rows].to(self.device), reduction="none")

    def policy_gradient(self, games: Games, backward: Callable[[torch.Tensor], None]) -> tuple[float, int]:
        """The gradient of L = mean_t A_t e_t over the learner's moves, by `backward` on `chunk`-sized pieces;
        (L, the number of moves)."""
        A = self.advantages(games)
        p = games.positions
        M = len(p.get("action", ()))
        total = 0.0
        if M:
            A_t = A[p["game"]].to(self.device)
            for start in range(0, M, self.chunk):
                rows = slice(start, min(M, start + self.chunk))
                loss = -(A_t[rows] * self.log_probs(games, rows)).sum() / M
                backward(loss)
                total += float(loss.detach())
        return total, M

    def training_step(self, games: Games, batch_idx: int) -> torch.Tensor:
        play_s = time.perf_counter() - self._play_started
        self.model.train()
        opt = self.optimizers()
        opt.zero_grad()
        loss_value, M = self.policy_gradient(games, self.manual_backward)
        if M:
            if self.max_grad_norm:
                self.clip_gradients(opt, gradient_clip_val=self.max_grad_norm, gradient_clip_algorithm="norm")
            opt.step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        if M and self.global_step % self.snapshot_every == 0:
            self.pool.add(self.model, self.global_step)
        self._books(games, play_s, M, loss_value)
        return torch.tensor(loss_value)

    def _books(self, games: Games, play_s: float, positions: int, loss: float) -> None:
        wins = games.a_wins
        self.recent.extend(wins.astype(float).tolist())
        b = self.books
        b["games"] += len(games)
        b["positions"] += positions
        b["plies"] += int(games.length.sum())
        b["capped"] += int((~games.by_passes).sum())
        b["play_s"] += play_s
        self.log_dict({"train/loss": loss, "train/win_rate": float(wins.mean()),
                       "train/win_rate_recent": float(np.mean(self.recent)),
                       "train/game_length": float(games.length.mean()),
                       "train/capped": float((~games.by_passes).mean()), "train/pool_size": float(len(self.pool)),
                       "train/opponent": float(self.pool.updates[self.opponent_index]),
                       "train/games": float(b["games"])}, on_step=True, on_epoch=False, batch_size=1)

    def on_train_end(self) -> None:
        b = self.books
        wall = time.perf_counter() - self.fit_started
        self.results.update(train_games=b["games"], train_positions=b["positions"], updates=int(self.global_step),
                            pool_size=len(self.pool), pool_updates=list(self.pool.updates),
                            mean_game_length=b["plies"] / max(1, b["games"]),
                            games_capped=b["capped"] / max(1, b["games"]), train_wall_s=wall,
                            games_per_s=b["games"] / max(wall, 1e-9),
                            play_games_per_s=b["games"] / max(b["play_s"], 1e-9))

    # ---- test: the trained policy against the starting one -----------------------------------
    def test_step(self, batch, batch_idx) -> None:
        self.model.eval()
        with torch.no_grad():
            start = self.on_device(self.pool.policy(0).to(self.device))
            matches = self.play_games(self.on_device(self.model), start, self.test_games, self.test_seed)
        wins = int(sum(int(g.a_wins.sum()) for g in matches))
        n = sum(len(g) for g in matches)
        low, high = wilson_interval(wins, n)
        self.log_dict({"test/win_rate": wins / n, "test/win_rate_low": low, "test/win_rate_high": high,
                       "test/games": float(n)}, batch_size=1)
        as_black = sum(int((g.a_wins & g.a_black).sum()) for g in matches)
        self.results.update(test_wins=wins, test_games=n, test_wins_as_black=as_black, test_seed=self.test_seed,
                            test_mean_game_length=float(np.mean(np.concatenate([g.length for g in matches]))))
        log.info("trained policy against the starting policy: %d of %d games won (%.1f%%, 95%% CI %.1f-%.1f%%)",
                 wins, n, 100 * wins / n, 100 * low, 100 * high)
        if self.run_dir is not None and self.sgf_games and self.trainer.is_global_zero:
            first = matches[0]
            which = list(range(min(self.sgf_games, len(first))))
            path = write_bytes_atomic(self.run_dir / SGF_FILE, to_sgf(first, which, "trained (RL)", "start (SL)"))
            self.results["sgf"] = str(path)


def settings_hint(weights_from: str) -> str:
    """The overrides that make this run's network the one a go_policy run trained (from its .hydra/config.yaml)."""
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(run_dir_of(checkpoint_file(weights_from)) / ".hydra" / "config.yaml")
        model = {k: v for k, v in cfg.model.items() if k in ("filters", "layers", "pooling", "batch_norm")}
        overrides = [f"model.{k}={v}" for k, v in model.items()] + [f"task.data.features={cfg.task.data.features}"]
    except Exception:   # no readable run config: nothing more to say
        return ""
    return "\nThat run's network: " + " ".join(overrides) + " (give the same on this command line)"
