"""AlphaGo's move features (`features=alphago`, 48 planes): hand-made boards for each feature, every point of
random positions checked against actually playing the move, and a smoke run on the 48 planes."""
from __future__ import annotations

import numpy as np
import torch
from ch2_files import random_game, sgf_game, write_archive


def feats(view, r, c):
    from leedl_cli.data.go_features import move_features

    f = move_features(view)
    a, b = int(f[0, r, c]) & 0xFF, int(f[1, r, c]) & 0xFF
    return {"capture": a & 7, "self_atari": a >> 3, "libs_after": b & 15, "sensible": (b >> 4) & 1,
            "ladder_capture": (b >> 5) & 1, "ladder_escape": (b >> 6) & 1}


def test_capture_suicide_self_atari_and_own_eye():
    v = np.zeros((19, 19), np.int8)
    v[0, 0] = v[0, 2] = 1
    v[0, 1] = 2                                           # the opponent's stone between two of ours, in atari
    assert feats(v, 1, 1) == {"capture": 1, "self_atari": 0, "libs_after": 4, "sensible": 1,
                              "ladder_capture": 0, "ladder_escape": 0}
    s = np.zeros((19, 19), np.int8)
    s[0, 1] = s[1, 0] = s[1, 2] = s[2, 1] = 2
    assert feats(s, 1, 1)["libs_after"] == 0 and feats(s, 1, 1)["sensible"] == 0, "suicide is not legal"
    t = np.zeros((19, 19), np.int8)
    t[0, 2] = t[1, 1] = 2
    assert feats(t, 0, 1)["self_atari"] == 1 and feats(t, 0, 1)["libs_after"] == 1
    e = np.zeros((19, 19), np.int8)
    e[0, 1] = e[1, 0] = e[1, 2] = e[2, 1] = 1             # an eye of ours at (1, 1), the corner (0, 0) too
    assert feats(e, 1, 1)["sensible"] == 0 and feats(e, 0, 0)["sensible"] == 0
    e[0, 0] = e[2, 2] = 2                                 # two opponent diagonals: a false eye, filling it is sensible
    assert feats(e, 1, 1)["sensible"] == 1


def ladder_board():
    """The opponent's stone at (3, 15) with two liberties; our atari at (3, 16) starts a ladder running down-left."""
    v = np.zeros((19, 19), np.int8)
    v[3, 15] = 2
    v[2, 15] = v[3, 14] = v[4, 16] = 1
    return v


def test_ladder_capture_and_its_breaker():
    v = ladder_board()
    assert feats(v, 3, 16)["ladder_capture"] == 1
    off_path = v.copy()
    off_path[3, 3] = 2
    assert feats(off_path, 3, 16)["ladder_capture"] == 1
    breaker = v.copy()
    breaker[9, 9] = 2                                     # the opponent's stone on the ladder's path
    assert feats(breaker, 3, 16)["ladder_capture"] == 0


def test_ladder_escape_and_its_breaker():
    w = np.where(ladder_board() == 0, 0, 3 - ladder_board()).astype(np.int8)
    w[3, 16] = 2                                          # our stone at (3, 15) is in atari; (4, 15) extends
    assert feats(w, 4, 15)["ladder_escape"] == 0 and feats(w, 4, 15)["libs_after"] == 2
    w[9, 9] = 1                                           # our stone on the path: the ladder fails, we escape
    assert feats(w, 4, 15)["ladder_escape"] == 1


def test_every_point_agrees_with_playing_the_move():
    from leedl_cli.data.go import game_positions
    from leedl_cli.data.go_board import group_liberties, groups, play
    from leedl_cli.data.go_features import move_features

    rng = np.random.default_rng(3)
    stones, *_ = game_positions(sgf_game(random_game(rng, 160)))
    checked = captures = 0
    for view in stones[[60, 110, 159]]:
        f = move_features(view)
        lab, libs = groups(view)
        for r, c in zip(*np.nonzero(view == 0)):
            after = play(view, r, c, 1, lab, libs)
            a, b = int(f[0, r, c]) & 0xFF, int(f[1, r, c]) & 0xFF
            if after[r, c] == 0:                          # suicide: no features
                assert b & 15 == 0
                continue
            taken = int(((view == 2) & (after == 0)).sum())
            assert a & 7 == min(taken, 7)
            assert b & 15 == min(int(group_liberties(after)[r, c]), 8)
            captures += taken > 0
            checked += 1
    assert checked > 400 and captures > 0


def test_alphago_planes_and_a_smoke_run(run_leedl, tmp_path):
    from leedl_cli.data.go import game_positions
    from leedl_cli.data.go_features import planes

    rng = np.random.default_rng(4)
    stones, libs, since, moves, pack = game_positions(sgf_game(random_game(rng, 80)), move_features=True)
    x = planes(*(torch.from_numpy(a) for a in (stones, libs, since)), "alphago", torch.from_numpy(pack))
    assert x.shape == (80, 48, 19, 19)
    assert torch.equal(x[:, 0] + x[:, 1] + x[:, 2], torch.ones(80, 19, 19)), "own + opponent + empty"
    legal = x[:, 36:44].sum(1)                            # liberties after the move: one plane per legal point
    assert torch.equal(x[:, 20:28].sum(1), legal), "capture size: exactly one plane per legal point"
    assert float((legal * (1 - x[:, 2])).sum()) == 0, "occupied points are not legal moves"
    assert float(x[:, 47].sum()) == 0, "the zeros plane"

    games = [sgf_game(random_game(rng, 30)) for _ in range(4)]
    write_archive(tmp_path / "data" / "go-sgf" / "kgs" / "mine.tar.gz", games)
    r = run_leedl(["debug=smoke", "task=go_policy", "seed=0", f"data_dir={tmp_path}/data", "task.data.train_games=2",
                   "task.data.val_games=1", "task.data.test_games=1", "task.data.features=alphago"])
    assert r["status"] == "ok", r.get("error")
    assert 0.0 <= r["metrics"]["test/acc"] <= r["metrics"]["test/top5"] <= 1.0
