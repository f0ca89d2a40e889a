"""One rule for "the same job" (leedl_cli.jobs), pinned across skip_done/resume=auto, leedl report and wandb."""
from __future__ import annotations

import pytest

from leedl_cli import jobs, report
from leedl_cli.resume import job_key

A = ["optimizer=adam", "seed=0", "threads=1", "logger=csv", "hydra.launcher.n_jobs=2"]
B = ["+seed=1", "optimizer=adam", "logger.wandb.offline=false", "output_root=/x", "skip_done=true"]
C = ["optimizer=sgd", "seed=0"]


def test_how_and_where_options_do_not_make_another_job():
    assert job_key(A) == ("optimizer=adam", "seed=0")
    assert jobs.group_key(A) == jobs.group_key(B) == ("optimizer=adam",)
    assert job_key(A) != job_key(B), "another seed is another job"
    assert jobs.group_key(A) != jobs.group_key(C)


@pytest.mark.parametrize("x,y", [(A, B), (A, C), (B, C), (A, A)])
def test_report_groups_are_jobs_without_the_seed(x, y):
    same_group = report.group_label({"overrides": x}) == report.group_label({"overrides": y})
    assert same_group == (jobs.group_key(x) == jobs.group_key(y))
    assert (job_key(x) == job_key(y)) <= same_group   # the same job is always in the same group


@pytest.mark.slow
def test_wandb_runs_carry_the_sweep_as_group_and_the_job_as_job_type(compose_cfg, tmp_path, monkeypatch):
    from omegaconf import open_dict

    from leedl_cli.run import build_loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_cfg(["logger=wandb", "optimizer=sgd", "seed=3"])
    with open_dict(cfg):
        del cfg["hydra"]
    from leedl_cli.loggers import close_loggers

    loggers = build_loggers(cfg, tmp_path, "abcd1234", ["optimizer=sgd", "seed=3"], sweep="outputs/multirun/x/y")
    close_loggers(loggers, "ok")   # the offline run it started must not stay the process's current wandb run
    (wandb_logger,) = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
    init = wandb_logger._wandb_init
    assert init["group"] == "outputs/multirun/x/y"
    assert init["job_type"] == report.group_label({"overrides": ["optimizer=sgd", "seed=3"]}) == "optimizer=sgd"


def test_long_job_types_are_shortened_stably():
    long = [f"task.data.option_{i}=value_{i}" for i in range(10)]
    kind = jobs.wandb_job_type(long + ["seed=1"])
    assert len(kind) <= 64
    assert kind == jobs.wandb_job_type(long + ["seed=2"]), "seeds of one job share its job_type"
    assert kind != jobs.wandb_job_type(long[:-1] + ["task.data.option_9=other"]), "another job, another job_type"
