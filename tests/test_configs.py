"""Every shipped config composes, and every option instantiates against the constructor it names."""
from __future__ import annotations

import pytest
import yaml

from leedl_cli.cli import GROUPS, describe
from leedl_cli.paths import conf_dir
from leedl_cli.validate import problems

CONF = conf_dir()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def task_models() -> list[tuple[str, str]]:
    pairs = []
    for task in options("task"):
        text = yaml.safe_load((CONF / "task" / f"{task}.yaml").read_text())
        for model in text["task"].get("models") or []:
            pairs.append((task, model))
    return pairs


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_has_a_one_line_description(group):
    for path in (CONF / group).glob("*.yaml"):
        assert describe(path), f"{path} needs a header comment '# {path.stem} — what it is'"


@pytest.mark.parametrize("task,model", task_models())
def test_task_and_each_compatible_model_compose(compose_cfg, task, model):
    cfg = compose_cfg([f"task={task}", f"model={model}"])
    assert cfg.task.name == task
    assert cfg.model.name == model, f"conf/model/{model}.yaml must say name: {model}"
    assert cfg.model._target_ and cfg.task.module._target_
    assert problems(cfg) == [], "every key is a typed parameter of the constructor it names (leedl_cli.validate)"


@pytest.mark.parametrize("task", options("task"))
def test_task_default_model_is_compatible(compose_cfg, task):
    cfg = compose_cfg([f"task={task}"])
    assert cfg.model.name in cfg.task.models


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_composes(compose_cfg, experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg.model.name in cfg.task.models
    assert problems(cfg) == [], "every key is a typed parameter of the constructor it names (leedl_cli.validate)"
    header = (CONF / "experiment" / f"{experiment}.yaml").read_text().splitlines()[:3]
    assert any(("Fig" in h or "Table" in h or "section" in h or "ch." in h) for h in header), \
        "an experiment's header names the book's figure/table and chapter"


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "model"])
def test_targets_resolve(compose_cfg, group):
    import hydra

    for option in options(group):
        cfg = compose_cfg([f"{group}={option}"] + ([f"task={_task_for(option)}"] if group == "model" else []))
        hydra.utils.get_object(cfg[group]._target_)


def _task_for(model: str) -> str:
    for task, m in task_models():
        if m == model:
            return task
    raise AssertionError(f"model {model} is listed by no task")


def test_optimizers_build_torch_optimizers(compose_cfg):
    import hydra
    import torch

    for option in options("optimizer"):
        cfg = compose_cfg([f"optimizer={option}"])
        opt = hydra.utils.instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
        assert isinstance(opt, torch.optim.Optimizer)


def test_schedulers_build_and_step(compose_cfg):
    import torch

    from leedl_cli.tasks.base import build_scheduler

    for option in options("scheduler"):
        cfg = compose_cfg([f"scheduler={option}"])
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
        sched, interval = build_scheduler(cfg.scheduler, opt, total_steps=100)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert interval in ("step", "epoch")
        assert all(0 <= lr <= 1.0 + 1e-9 for lr in lrs), option
