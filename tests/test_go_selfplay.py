"""go_selfplay (ch. 7.2.2, AlphaGo's RL step): Tromp-Taylor area against hand-counted positions and sgfmill, the
legality mask against go_board's rules, ko and eyes, games that end (two passes or the cap), the REINFORCE sign,
the Wilson interval, a smoke run end to end (SGF written), starting from a go_policy run, and a pinned run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ch2_files import random_game, sgf_game, write_archive  # noqa: F401


@pytest.fixture(autouse=True)
def one_thread():
    """The games move many small tensors: one torch thread, as the task runs (threads=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_policy(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(x), 361)


def board(*stones: tuple[int, int, int]) -> np.ndarray:
    b = np.zeros((1, 19, 19), np.int8)
    for r, c, colour in stones:
        b[0, r, c] = colour
    return b


def test_area_score_of_hand_counted_positions():
    from leedl_cli.go.boards import area_score

    walls = np.zeros((1, 19, 19), np.int8)
    walls[0, :, 3] = 1                         # black wall on column 3: columns 0-3 are black's (4 x 19)
    walls[0, :, 5] = 2                         # white wall on column 5: columns 5-18 are white's (14 x 19)
    assert area_score(walls)[0] == 76 - 266, "column 4 reaches both colours: nobody's"
    assert area_score(board())[0] == 0, "an empty board: the region reaches no colour"
    assert area_score(board((9, 9, 1)))[0] == 361, "one stone owns every empty point"
    assert area_score(board((0, 0, 1), (18, 18, 2)))[0] == 0
    eye = board((0, 1, 1), (1, 0, 1), (10, 10, 2))
    assert area_score(eye)[0] == 3 - 1, "black: 2 stones + the corner point only black reaches; white: 1 stone"


def test_area_score_matches_sgfmill_on_played_positions():
    from sgfmill import boards as sgfmill_boards

    from leedl_cli.go.games import play_games

    torch.manual_seed(0)
    games = play_games(random_policy, random_policy, 6, "basic", max_moves=160)
    for g in range(6):
        ref = sgfmill_boards.Board(19)
        for i, move in enumerate(games.moves[g]):
            if move >= 0:
                ref.play(*divmod(move, 19), "b" if i % 2 == 0 else "w")
        assert games.score[g] == ref.area_score()


def test_legal_moves_follow_go_boards_rules_and_ko():
    from leedl_cli.data import go_board
    from leedl_cli.go.boards import groups, legal_moves, play
    from leedl_cli.go.games import play_games

    torch.manual_seed(7)                      # random games with kos in their first 260 plies
    played = play_games(random_policy, random_policy, 3, "basic", max_moves=260)
    checked = kos = 0
    for moves in played.moves:
        mine, ko = np.zeros((1, 19, 19), np.int8), np.array([-1])
        for t, move in enumerate(moves):
            colour = 1 if t % 2 == 0 else 2
            lab, libs = groups(mine)
            if t % 20 == 0 or ko[0] >= 0:
                legal = legal_moves(mine, colour, ko, lab, libs, sensible=False)[0]
                ref_lab, ref_libs = go_board.groups(mine[0])
                point = None if ko[0] < 0 else divmod(int(ko[0]), 19)
                ref = [go_board.is_legal(mine[0], r, c, colour, ref_lab, ref_libs, point)
                       for r in range(19) for c in range(19)]
                np.testing.assert_array_equal(legal, ref)
                checked += 1
            ref_ko = None if move < 0 else go_board.simple_ko(mine[0], *divmod(move, 19), colour,
                                                              *go_board.groups(mine[0]))
            ko = play(mine, np.array([move]), colour, lab, libs)
            assert (None if ko[0] < 0 else divmod(int(ko[0]), 19)) == ref_ko
            kos += ko[0] >= 0
    assert checked > 30 and kos >= 2, "positions with captures and a ko were compared"

    b = board((0, 1, 1), (1, 0, 1), (2, 1, 1), (1, 1, 2), (0, 2, 2), (1, 3, 2), (2, 2, 2))
    ko = play(b, np.array([1 * 19 + 2]), 1)            # black takes the ko at (1, 2)
    assert b[0, 1, 1] == 0 and ko[0] == 1 * 19 + 1
    assert not legal_moves(b, 2, ko)[0, 20], "retaking at once is refused"
    assert legal_moves(b, 2, np.array([-1]))[0, 20], "later it is a capture"
    corner = board((0, 1, 2), (1, 0, 2))
    assert not legal_moves(corner, 1, np.array([-1]), sensible=False)[0, 0], "suicide"
    assert legal_moves(corner, 2, np.array([-1]), sensible=False)[0, 0], "filling one's own eye is legal"
    assert not legal_moves(corner, 2, np.array([-1]))[0, 0], "... but not sensible"


def test_a_batch_of_games_ends_by_two_passes_or_the_cap():
    from leedl_cli.go.boards import PASS
    from leedl_cli.go.games import play_games

    torch.manual_seed(1)
    capped = play_games(random_policy, random_policy, 4, "history", max_moves=30)
    assert (capped.length == 30).all() and not capped.by_passes.any()
    assert (capped.positions["game"].bincount() == 15).all(), "A moved on every other ply of each game"
    assert capped.a_black.tolist() == [True, False, True, False]
    full = play_games(random_policy, random_policy, 3, "basic", max_moves=2000)
    assert full.by_passes.all() and (full.length < 2000).all()
    for g in range(3):
        assert full.moves[g][-2:] == [PASS, PASS] and PASS not in full.moves[g][:-2][:100]
        assert len(full.moves[g]) == full.length[g]
    assert set(np.where(full.a_wins, 1.0, -1.0)) <= {1.0, -1.0} and torch.equal(
        full.z, torch.from_numpy(np.where(full.a_wins, 1.0, -1.0)).float())


def test_reinforce_raises_the_moves_of_won_games_and_lowers_those_of_lost_ones():
    from leedl_cli.go.games import play_games
    from leedl_cli.models.go import GoCNN
    from leedl_cli.tasks.go_selfplay import GoSelfPlay

    torch.manual_seed(0)
    model = GoCNN(7, 19, filters=8, layers=3)
    task = GoSelfPlay(model, baseline="none", chunk=16)
    games = play_games(model, model, 4, "basic", max_moves=20)
    assert games.a_wins.tolist() == [False, True, False, True], "20 plies: white wins every game on komi"
    game = games.positions["game"]
    rows = slice(0, len(game))
    before = task.log_probs(games, rows).detach()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    loss, moves = task.policy_gradient(games, lambda piece: piece.backward())
    opt.step()
    after = task.log_probs(games, rows).detach()
    won = torch.from_numpy(games.a_wins)[game]
    assert moves == 40 and np.isfinite(loss)
    assert (after - before)[won].mean() > 0 > (after - before)[~won].mean()


def test_wilson_interval():
    from leedl_cli.tasks.go_selfplay import wilson_interval

    low, high = wilson_interval(320, 400)
    assert low == pytest.approx(0.7580, abs=1e-4) and high == pytest.approx(0.8363, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(200, 400)
    assert low == pytest.approx(1 - high) and low < 0.5 < high


def test_go_selfplay_smoke_writes_the_win_rate_and_sgf(run_leedl, tmp_path):
    from sgfmill import sgf

    r = run_leedl(["task=go_selfplay", "debug=smoke", "seed=0"])
    assert r["status"] == "ok", r.get("error")
    m = r["metrics"]
    assert m["test/games"] == 8 and m["test/win_rate_low"] <= m["test/win_rate"] <= m["test/win_rate_high"]
    assert r["train_games"] == 12 and r["pool_updates"] == [0, 1, 2, 3], "a snapshot after every update"
    assert r["weights_from"] is None and r["games_capped"] == 1.0
    text = (tmp_path / "run" / "test_games.sgf").read_bytes()
    assert text.count(b"(;") == 2
    first = sgf.Sgf_game.from_bytes(text[:text.index(b"(;", 2)])
    assert first.get_root().get("PB") == "trained (RL)" and first.get_root().get("KM") == 7.5
    assert len(first.get_main_sequence()) == 1 + 24 and first.get_root().get("RE").startswith("W+")


def test_starting_from_a_go_policy_run_and_a_network_that_does_not_fit(run_leedl, tmp_path):
    rng = np.random.default_rng(1)
    write_archive(tmp_path / "data" / "go-sgf" / "kgs" / "mine.tar.gz",
                  [sgf_game(random_game(rng, 40)) for _ in range(6)])
    sl = run_leedl(["task=go_policy", "debug=smoke", "seed=0", f"data_dir={tmp_path}/data", "model.filters=8",
                    "model.layers=3", "task.data.features=basic", "callbacks=default", "task.monitor=train/loss",
                    "task.monitor_mode=min", "hydra.run.dir=unused"], name="sl")
    assert sl["status"] == "ok", sl.get("error")
    r = run_leedl(["task=go_selfplay", "debug=smoke", "seed=0", f"task.module.weights_from={tmp_path / 'sl'}",
                   "task.data.features=basic"], name="rl")
    assert r["status"] == "ok", r.get("error")
    assert r["weights_from"].startswith(str(tmp_path / "sl" / "checkpoints"))
    bad = run_leedl(["task=go_selfplay", "debug=smoke", f"task.module.weights_from={tmp_path / 'sl'}",
                     "model.filters=16"], name="bad")
    assert bad["status"] == "failed" and "do not fit this model" in bad["error"]


@pytest.mark.slow
def test_pinned_small_run_is_deterministic(run_leedl):
    args = ["task=go_selfplay", "debug=smoke", "seed=3", "task.data.max_moves=120", "task.data.games_per_update=6",
            "task.data.updates=4", "trainer.limit_train_batches=4", "task.module.snapshot_every=2",
            "task.module.test_games=12", "task.data.test_batch=6", "optimizer.lr=1e-2"]
    one, two = run_leedl(args, name="one"), run_leedl(args, name="two")
    assert one["status"] == two["status"] == "ok"
    for key in ("test/win_rate", "train/loss", "train/win_rate"):
        assert one["metrics"][key] == two["metrics"][key]
    assert one["pool_updates"] == [0, 2, 4] and one["train_games"] == 24
    assert (one["test_wins"], one["train_positions"]) == PINNED


PINNED = (6, 1440)    # (test wins of 12, the learner's moves in 24 games capped at 120 plies)
