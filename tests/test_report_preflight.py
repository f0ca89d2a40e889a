"""`leedl run`'s check before anything runs: the cost of a sweep goes by distinct values, not jobs; every value is
still checked; the plot plugins a preset names are resolved before the first job."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leedl_cli import preflight as pf
from leedl_cli.preflight import UsageError, preflight

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def composes(monkeypatch):
    calls: list[list[str]] = []
    real = pf._compose

    def counted(overrides):
        calls.append(list(overrides))
        return real(overrides)

    monkeypatch.setattr(pf, "_compose", counted)
    return calls


def test_a_thousand_seeds_are_composed_once_and_refused_in_seconds(composes):
    with pytest.raises(UsageError):   # warm: the validator's imports are not what this measures
        preflight(["optimizer.lr=-1"])
    composes.clear()
    t0 = time.perf_counter()
    with pytest.raises(UsageError) as err:
        preflight(["-m", "seed=range(0,1000)", "optimizer.lr=-1"])
    assert time.perf_counter() - t0 < 15
    assert str(err.value).splitlines() == [line for line in str(err.value).splitlines() if "optimizer.lr=-1" in line]
    assert len(composes) == 2, composes   # the base, and the sweep with its first seed


def test_every_plain_value_is_still_checked(composes):
    with pytest.raises(UsageError) as err:
        preflight(["-m", "seed=0,7,-5", "optimizer.lr=1e-3,-2,0.1"])
    lines = str(err.value).splitlines()
    assert any(line.startswith("seed=-5:") for line in lines) and any(line.startswith("optimizer.lr=-2") for line in lines)
    assert not any("seed=7" in line or "optimizer.lr=0.1" in line for line in lines)
    assert len(composes) == 3   # the base, each swept key once


def test_group_values_are_composed_one_by_one(composes):
    preflight(["-m", "optimizer=adam,sgd,rmsprop", "seed=0,1"])
    assert sorted(c[-1] for c in composes[1:4]) == ["optimizer=adam", "optimizer=rmsprop", "optimizer=sgd"]
    assert len(composes) == 5
    with pytest.raises(UsageError, match="adamm"):
        preflight(["-m", "optimizer=adam,adamm"])


def test_a_misspelt_plot_plugin_of_a_preset_is_refused_before_any_run():
    typo = "report.plots.0.fn=leedl_cli.analysis.surfaces:plot_trajectorie"
    with pytest.raises(UsageError) as err:
        preflight(["experiment=momentum", typo])
    assert str(err.value) == ("report.plots: fn='leedl_cli.analysis.surfaces:plot_trajectorie': "
                              "leedl_cli.analysis.surfaces has no function plot_trajectorie (did you mean "
                              "plot_trajectories?); its functions: " + str(err.value).split("its functions: ")[1])
    assert "plot_trajectories" in str(err.value).split("its functions: ")[1]
    assert preflight(["experiment=momentum"]) is not None   # the preset as shipped resolves


def leedl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, "-m", "leedl_cli.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.slow
def test_leedl_run_refuses_a_thousand_seed_sweep_with_a_bad_value_in_seconds(tmp_path):
    """Measured in CPU seconds of the command (on shared cores its wall time is that times the load); most of it is
    importing what the validator reads (torch, Lightning), the same as for one run."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = leedl("run", "-m", "seed=range(0,1000)", "optimizer.lr=-1", f"output_root={tmp_path}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert out.returncode == 2 and "optimizer.lr=-1" in out.stderr, out.stderr[-2000:]
    assert cpu < 15, f"{cpu:.1f} CPU s"
    assert not any(tmp_path.iterdir()), "nothing was created"


@pytest.mark.slow
def test_leedl_run_stops_on_a_misspelt_plot_plugin_with_one_line(tmp_path):
    out = leedl("run", "experiment=momentum", "report.plots.0.fn=leedl_cli.analysis.surfaces:plot_trajectorie",
                f"output_root={tmp_path}")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("leedl: error: report.plots: fn=") and "did you mean plot_trajectories?" in line
    assert not any(tmp_path.iterdir()), "nothing was created"
