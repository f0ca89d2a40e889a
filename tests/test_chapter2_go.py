"""go_policy on SGF files written here (no mirror needed): groups and liberties, captures and ko checked against
sgfmill's own board, legality, the symmetries, damaged archives and records, the cache, a smoke run and a small
pinned run the network must learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ch2_files import random_game, row_game, sgf_game, write_archive
from conftest import data_available


def test_groups_and_liberties_of_a_known_board():
    from leedl_cli.data.go_board import group_liberties

    b = np.zeros((19, 19), np.int8)
    b[0, 0] = 1                 # corner stone, (0,1) taken: 1 liberty
    b[0, 1] = 2                 # touching it: (0,2) and (1,1) free -> 2
    b[5, 5] = b[5, 6] = 1       # a 2-stone group in the open: 6 liberties
    b[10, 10] = 1
    b[9, 10] = b[11, 10] = b[10, 9] = 2   # in atari: 1 liberty (10, 11)
    libs = group_liberties(b)
    assert libs[0, 0] == 1 and libs[0, 1] == 2
    assert libs[5, 5] == libs[5, 6] == 6
    assert libs[10, 10] == 1 and libs[9, 10] == 3
    assert libs[1, 1] == 0, "empty points have none"


def test_captures_and_suicide_match_sgfmill_over_random_games():
    from sgfmill import boards

    from leedl_cli.data.go import game_positions

    rng = np.random.default_rng(0)
    captures = 0
    for _ in range(4):
        moves = random_game(rng, 250)
        stones, libs, since, labels = game_positions(sgf_game(moves))
        assert len(labels) == 250
        board, colour = boards.Board(19), "b"
        for t, (r, c) in enumerate(moves):
            grid = np.array([[0 if p is None else (1 if p == colour else 2) for p in row] for row in board.board])
            np.testing.assert_array_equal(stones[t], grid, err_msg=f"position {t}")
            assert labels[t] == r * 19 + c
            before = len(board.list_occupied_points())
            board.play(r, c, colour)
            captures += before + 1 > len(board.list_occupied_points())
            colour = "w" if colour == "b" else "b"
    assert captures > 10, "random games of 250 moves capture often: the comparison covered captures"


def test_setup_stones_passes_and_turns_since():
    from leedl_cli.data.go import game_positions
    from leedl_cli.data.go_features import planes

    record = sgf_game([(3, 3), None, (15, 15)], setup_black=[(3, 15), (15, 3)])
    stones, libs, since, labels = game_positions(record)
    assert len(labels) == 2, "a pass is not an example"
    assert stones[0][3, 15] == 2 and stones[0][15, 3] == 2, "white moves first against the handicap stones"
    assert stones[1][3, 3] == 1 and since[1][3, 3] == 2, "white's (3,3) stone, played 2 turns before (a pass between)"
    x = planes(torch.from_numpy(stones), torch.from_numpy(libs), torch.from_numpy(since), "history")
    assert x.shape == (2, 15, 19, 19)
    assert torch.equal(x[:, 0] + x[:, 1] + x[:, 2], torch.ones(2, 19, 19)), "own + opponent + empty = every point"
    assert x[1, 7, 3, 3] == 0 and x[1, 8, 3, 3] == 1, "the second turns-since plane marks the (3,3) stone"


def test_simple_ko_matches_sgfmill_and_legality():
    from sgfmill import boards

    from leedl_cli.data.go_board import groups, is_legal, play, simple_ko

    rng = np.random.default_rng(5)
    kos = 0
    for _ in range(6):
        board, colour, mine = boards.Board(19), "b", np.zeros((19, 19), np.int8)
        for r, c in random_game(rng, 300):
            own = 1 if colour == "b" else 2
            lab, libs = groups(mine)
            expected = board.play(r, c, colour)    # sgfmill: the point forbidden by simple ko, or None
            assert simple_ko(mine, r, c, own, lab, libs) == expected
            kos += expected is not None
            mine = play(mine, r, c, own, lab, libs)
            colour = "w" if colour == "b" else "b"
    assert kos >= 3, "the random games hold kos: the comparison covered them"

    b = np.zeros((19, 19), np.int8)             # a ko in the corner region: black takes at (1, 1)
    b[0, 1] = b[1, 0] = b[2, 1] = 1
    b[1, 1] = 2
    b[0, 2] = b[1, 3] = b[2, 2] = 2
    lab, libs = groups(b)
    assert is_legal(b, 1, 2, 1, lab, libs) and simple_ko(b, 1, 2, 1, lab, libs) == (1, 1)
    after = play(b, 1, 2, 1, lab, libs)
    lab, libs = groups(after)
    assert after[1, 1] == 0 and not is_legal(after, 1, 1, 2, lab, libs, ko=(1, 1)), "retaking the ko at once"
    assert is_legal(after, 1, 1, 2, lab, libs), "without the ko point it is a capture"
    s = np.zeros((19, 19), np.int8)
    s[0, 1] = s[1, 0] = 2
    lab, libs = groups(s)
    assert not is_legal(s, 0, 0, 1, lab, libs) and is_legal(s, 0, 0, 1, lab, libs, suicide_allowed=True)
    assert not is_legal(s, 0, 1, 1, lab, libs), "an occupied point"
    assert is_legal(s, 0, 0, 2, lab, libs), "filling one's own eye is legal"


def test_symmetries_move_the_label_with_the_board():
    from leedl_cli.data.go_board import symmetry_tables, transform_board

    tables = symmetry_tables()
    assert len({tuple(t.tolist()) for t in tables}) == 8, "eight different symmetries"
    for k, table in enumerate(tables):
        for label in (0, 20, 180, 360):
            onehot = torch.zeros(1, 1, 19, 19)
            onehot.view(-1)[label] = 1
            assert int(transform_board(onehot, k).flatten().argmax()) == int(table[label])


def test_go_policy_smoke_on_archives_written_here_and_the_cache(run_leedl, tmp_path):
    rng = np.random.default_rng(1)
    games = [sgf_game(random_game(rng, 40)) for _ in range(6)] + [b"(;GM[1]SZ[9];B[aa])"]   # a 9x9 game: left out
    write_archive(tmp_path / "data" / "go-sgf" / "kgs" / "mine.tar.gz", games)
    args = ["debug=smoke", "task=go_policy", "seed=0", f"data_dir={tmp_path}/data", "task.data.train_games=3",
            "task.data.val_games=1", "task.data.test_games=2", "task.data.symmetries=true"]
    r = run_leedl(args)
    assert r["status"] == "ok", r.get("error")
    info = r["go_data"]
    assert info["games_found"] == 7 and info["train_positions"] + info["val_positions"] + info["test_positions"] <= 240
    assert 0.0 <= r["metrics"]["test/acc"] <= r["metrics"]["test/top5"] <= 1.0
    from leedl_cli.paths import cache_dir
    cached = sorted(p.name for p in cache_dir("go-sgf").glob("*.npz"))
    assert len(cached) >= 3
    r2 = run_leedl(args, name="again")
    assert r2["go_data"]["setup_s"] <= r["go_data"]["setup_s"] + 1.0 and r2["metrics"]["test/acc"] == r["metrics"]["test/acc"]


def test_damaged_archives_and_records_are_named(run_leedl, tmp_path):
    """A cut .tar.gz or .zip of SGF files and a record that does not parse are reported as damaged (which file,
    what is wrong), not as missing."""
    import zipfile

    from leedl_cli.data.go import GoDataModule, list_sources, read_games
    from leedl_cli.errors import CorruptDataError

    rng = np.random.default_rng(6)
    games = [sgf_game(random_game(rng, 40)) for _ in range(12)]
    kgs = tmp_path / "data" / "go-sgf" / "kgs"
    write_archive(kgs / "whole.tar.gz", games)
    assert len(read_games(list_sources(str(tmp_path / "data"), "kgs/*.tar.gz", None))) == 12
    data = (kgs / "whole.tar.gz").read_bytes()
    (kgs / "cut.tar.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptDataError, match=r"cannot read .*cut\.tar\.gz: it ends too early"):
        read_games(list_sources(str(tmp_path / "data"), "kgs/cut.tar.gz", None))
    r = run_leedl(["debug=smoke", "task=go_policy", f"data_dir={tmp_path}/data", "task.data.sgf_glob=kgs/cut.tar.gz"])
    assert r["status"] == "failed" and r["error_type"] == "CorruptDataError" and "cut.tar.gz" in r["error"]

    folder = tmp_path / "zips"
    folder.mkdir()
    with zipfile.ZipFile(folder / "games.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i, g in enumerate(games):
            zf.writestr(f"games/{i:04d}.sgf", g)
    assert [g for _, g in read_games(list_sources(None, "", str(folder)))] == games, "a zip reads like a tar.gz"
    data = (folder / "games.zip").read_bytes()
    (folder / "games.zip").write_bytes(data[:len(data) - 200])
    with pytest.raises(CorruptDataError, match=r"cannot read .*games\.zip: it is not a valid zip file"):
        read_games(list_sources(None, "", str(folder)))

    write_archive(kgs / "bad.tar.gz", games[:5] + [b"not sgf at all"])
    module = GoDataModule(root=str(tmp_path / "data"), sgf_glob="kgs/bad.tar.gz", train_games=4, val_games=0,
                          test_games=2, cache=False)
    with pytest.raises(CorruptDataError, match=r"bad\.tar\.gz, member games/0005\.sgf: it does not parse as an SGF"):
        module.setup()


def test_missing_go_data_and_bad_options_are_clear(run_leedl, tmp_path):
    r = run_leedl(["debug=smoke", "task=go_policy", f"data_dir={tmp_path}/nowhere"])
    assert r["status"] == "failed" and r["error_type"] == "DataNotFoundError" and "go-sgf" in r["error"]
    r = run_leedl(["debug=smoke", "task=go_policy", "task.data.features=alpha"], name="bad")
    assert r["status"] == "failed" and "task.data.features=alpha: expected one of basic, history, alphago" in r["error"]


@pytest.mark.slow
def test_policy_network_learns_to_play_next_to_the_last_move(run_leedl, tmp_path):
    """Pinned: in games where each move is the point right of the previous one, the history planes show the last
    stone and a small no-pooling CNN learns the rule: >= 90% top-1 on held-out games."""
    rng = np.random.default_rng(2)
    folder = tmp_path / "sgf"
    folder.mkdir()
    for i in range(40):
        (folder / f"g{i}.sgf").write_bytes(sgf_game(row_game(rng)))
    r = run_leedl(["task=go_policy", "seed=0", f"task.data.sgf_dir={folder}", "task.data.train_games=32",
                   "task.data.val_games=2", "task.data.test_games=6", "model.filters=16", "model.layers=3",
                   "trainer.max_epochs=6", "optimizer.lr=3e-3", "task.data.batch_size=32", "logger=none",
                   "callbacks=none", "trainer.enable_progress_bar=false"])
    assert r["status"] == "ok", r.get("error")
    assert r["go_data"]["test_positions"] == 6 * 30 and r["training_positions_seen"] == 6 * 32 * 30
    assert r["metrics"]["test/acc"] >= 0.9


@pytest.mark.skipif(not data_available("go-sgf"), reason="reads the mirrored KGS archives (CI has them)")
def test_real_kgs_games_replay():
    from leedl_cli.data.go import game_positions, list_sources, read_games

    games = read_games(list_sources(None, "kgs/KGS-2017_02-*.tar.gz", None))
    assert len(games) == 525
    positions = [game_positions(g) for _, g in games[:20]]
    assert sum(p is not None for p in positions) >= 18
    assert sum(len(p[3]) for p in positions if p is not None) > 20 * 100
