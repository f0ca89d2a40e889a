"""Every value checked before anything runs: one line per bad key (key, value, what is accepted), exit 2,
no run directory; every shipped option passes (its keys are the parameters of the constructor it names)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from leedl_cli.preflight import UsageError, preflight
from leedl_cli.validate import conforms, problems

REPO = Path(__file__).resolve().parents[1]

BAD = [
    (["seed=xyz"], "seed=xyz: expected an integer"),
    (["seed=-3"], "seed=-3: expected an integer from 0"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: expected an integer"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0: expected an integer >= 1 (or -1)"),
    (["task.data.batch_size=0"], "task.data.batch_size=0: expected an integer >= 1"),
    (["optimizer.lr=-1"], "optimizer.lr=-1: expected a number > 0"),
    (["optimizer.lr=fast"], "optimizer.lr=fast: expected"),
    (["model=mlp", "model.dropout=1.5"], "model.dropout=1.5: expected a number from 0 to 1"),
    (["trainer.precision=17"], "trainer.precision=17: expected one of"),
    (["trainer.accelerator=quantum"], "trainer.accelerator=quantum: expected one of cpu, gpu"),
    (["task.monitor_mode=middle"], "task.monitor_mode=middle: expected one of min, max"),
    (["threads=0"], "threads=0: expected an integer >= 1"),
    (["+task.data.colour=red"], "task.data.colour: leedl_cli.data.images.DigitsDataModule has no option 'colour'"),
    (["+task.colour=red"], "task.colour: not an option of task=digits"),
    (["+colour=red"], "colour: not a leedl option"),
    (["output_root=/proc/nope"], "output_root=/proc/nope: cannot create folders in /proc"),
    (["optimizer=nesterov"], "Could not find 'optimizer/nesterov'"),
    (["task=cartpole", "model=cnn"], "task=cartpole cannot train model=cnn"),
    (["seed=0,1"], "several values given without -m"),
    (["-m", "optimizer.lr=1e-3,-5"], "optimizer.lr=-5: expected a number > 0"),
    (["-m", "experiment=batch_size_gap", "trainer.max_epochs=x"], "trainer.max_epochs=x: expected an integer"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_value_is_refused_with_the_key_the_value_and_what_is_accepted(args, message):
    with pytest.raises(Exception) as info:
        preflight(args)
    assert message in str(info.value)


def test_a_bad_value_is_reported_once_where_it_is_set():
    with pytest.raises(UsageError) as info:
        preflight(["seed=xyz"])
    assert str(info.value).count("xyz") == 1, "task.data.seed=${seed} is not reported again"


def test_gpu_trainer_without_gpus_names_what_it_asked_for_and_what_is_visible():
    import torch

    if torch.cuda.device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(UsageError) as info:
        preflight(["trainer=gpu"])
    assert "asks for 1 GPU(s), this machine has 0 visible" in str(info.value) and "trainer=cpu" in str(info.value)


def test_good_command_lines_pass():
    preflight([])
    preflight(["-m", "optimizer=adagrad,rmsprop", "seed=0,1"])
    preflight(["task=mnist", "model=mlp", "optimizer=sgd", "optimizer.lr=0.1", "trainer.max_epochs=3"])


def test_every_shipped_option_has_a_schema(compose_cfg):
    """Each option of every group, composed with the default task: every key is a parameter the constructor it
    names accepts with a fitting value, or a known task/top-level key (so new options need typed parameters)."""
    conf = REPO / "conf"
    for group in ("optimizer", "scheduler", "trainer", "logger", "callbacks", "debug"):
        for option in sorted(p.stem for p in (conf / group).glob("*.yaml")):
            found = [p for p in problems(compose_cfg([f"{group}={option}"])) if "GPU(s)" not in p]
            assert not found, f"{group}={option}: {found}"


def test_conforms_reads_annotations():
    from typing import Literal, Optional

    assert conforms(3, int) and not conforms("3", int) and not conforms(True, int)
    assert conforms(None, Optional[int]) and conforms(2, int | None) and not conforms("x", int | None)
    assert conforms("a", Literal["a", "b"]) and not conforms("c", Literal["a", "b"])
    assert conforms([1, 2], list[int]) and not conforms(3, list) and conforms(1, float)


@pytest.mark.slow
def test_cli_exits_2_with_one_line_and_leaves_no_run_directory(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline")
    out = subprocess.run([sys.executable, "-m", "leedl_cli.cli", "run", "trainer.max_epochs=abc",
                          f"output_root={tmp_path / 'out'}"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip() == "leedl: error: trainer.max_epochs=abc: expected an integer (or null)"
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("override,message", [
    (["task=translation", "task.decode=beams"], "task.decode=beams: expected one of greedy, beam, sampling"),
    (["task=go_policy", "task.data.features=planes"], "task.data.features=planes: expected one of basic, history, alphago"),
    (["task=cartpole", "task.module.version=v9"], "task.module.version=v9: expected one of v0, v1, v2, v3, v3_5, v4, ppo"),
    (["task=pos_tagging", "model.positional_encoding=rope"], "model.positional_encoding=rope: expected one of none"),
])
def test_choices_of_newer_tasks_are_caught_before_the_run(compose_cfg, override, message):
    found = problems(compose_cfg(override))
    assert any(message in p for p in found), found
