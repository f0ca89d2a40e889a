"""The report's plots do not mislead: names on the x axis are points (no line joins them), a group of one run has
no error bar, the title names the book's claim, and an axis that does not start at 0 says where it starts."""
from __future__ import annotations

import math

import matplotlib
import pytest
from matplotlib.figure import Figure

from leedl_cli.report.plots import PlotPluginError, plot_metric_vs_param, resolve_plot, title_for

matplotlib.use("Agg")


@pytest.fixture
def figures(monkeypatch):
    drawn: list[Figure] = []
    save = Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return drawn


def runs_of(key: str, groups: dict) -> list[dict]:
    return [{"status": "ok", "group": f"{key}={label}", "overrides": [f"{key}={label}", f"seed={i}"],
             "metrics": {"test/acc": v}, "_dir": "."}
            for label, values in groups.items() for i, v in enumerate(values)]


def finite_bars(ax) -> int:
    from matplotlib.collections import LineCollection

    return sum(1 for c in ax.collections if isinstance(c, LineCollection)
               for seg in c.get_segments() if seg.size and all(math.isfinite(v) for v in seg.flatten()))


def test_names_on_the_x_axis_are_points_with_error_bars_and_no_line(tmp_path, figures):
    runs = runs_of("optimizer", {"adam": [0.96, 0.97, 0.98], "sgd": [0.90, 0.92], "rmsprop": [0.95]})
    claims = [{"claim": "Adam is best", "metric": "test/acc", "by": "optimizer", "verdict": "holds"}]
    (path,) = plot_metric_vs_param(runs, tmp_path, "optimizer", ["test/acc"], claims)
    assert path.is_file()
    ax = figures[0].axes[0]
    joined = [line for line in ax.lines if len(line.get_xdata()) > 1 and line.get_linestyle() not in ("None", "")]
    assert not joined, "no line between optimizers"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "rmsprop", "sgd"]
    assert finite_bars(ax) == 2, "adam and sgd have an error bar; rmsprop (one run) has none"
    assert ax.get_title() == "Adam is best (holds)"
    bottom = ax.get_ylim()[0]
    assert bottom > 0 and f"y axis from {bottom:.4g}" in ax.get_ylabel() and "not from 0" in ax.get_ylabel()


def test_a_numeric_parameter_is_a_line_and_the_title_says_what_is_drawn(tmp_path, figures):
    runs = runs_of("task.data.batch_size", {"64": [0.97, 0.975], "256": [0.965, 0.966], "6000": [0.89, 0.891]})
    plot_metric_vs_param(runs, tmp_path, "task.data.batch_size", ["test/acc"])
    ax = figures[0].axes[0]
    assert any(len(line.get_xdata()) == 3 and line.get_linestyle() == "-" for line in ax.lines)
    assert ax.get_xscale() == "log" and ax.get_title() == "test/acc by task.data.batch_size"


def test_a_title_too_long_for_its_room_drops_whole_claims_and_counts_them_never_a_verdict():
    claims = [{"claim": f"Fashion-MNIST: claim number {i} about the networks, long enough to wrap over one line",
               "metric": "test/acc", "verdict": v} for i, v in enumerate(["holds", "holds", "inconclusive", "holds"])]
    title = title_for(claims, "test/acc", "model", width=70, lines=5)
    lines = title.split("\n")
    assert len(lines) <= 5
    assert title.count("(holds)") == 2 and lines[-1] == "and 2 more claim(s): see the results page"
    everything = title_for(claims, "test/acc", "model", width=70, lines=8)
    assert "(inconclusive)" in everything and everything.count("(holds)") == 3 and "more claim" not in everything


def test_a_plot_plugin_is_resolved_with_a_one_line_error_for_a_typo():
    fn, options = resolve_plot({"fn": "leedl_cli.analysis.surfaces:plot_trajectories", "surface": "x", "name": "y"})
    assert fn.__name__ == "plot_trajectories" and options == {"surface": "x", "name": "y"}
    with pytest.raises(PlotPluginError, match=r"has no function plot_trajectorie \(did you mean plot_trajectories\?\)"):
        resolve_plot({"fn": "leedl_cli.analysis.surfaces:plot_trajectorie"})
    with pytest.raises(PlotPluginError, match=r"no module leedl_cli.analysis.surface \(did you mean "
                                              r"leedl_cli.analysis.surfaces\?\)"):
        resolve_plot({"fn": "leedl_cli.analysis.surface:plot_trajectories"})
    with pytest.raises(PlotPluginError, match="unexpected keyword argument 'windw'"):
        resolve_plot({"fn": "leedl_cli.analysis.rl_plots:plot_return_vs_steps", "windw": 3})
    with pytest.raises(PlotPluginError, match="expected \"module:function\""):
        resolve_plot({"fn": "plot_trajectories"})


def test_a_title_names_only_the_claims_about_the_runs_drawn_and_the_legend_only_what_differs(tmp_path, figures):
    """pretrain_vs_random's plot of QA runs: the NLI claim is not in its title; `experiment=...`, shared by every run,
    is not in the legend."""
    runs = [{"status": "ok", "task": task, "overrides": ["experiment=pvr", f"budget={task}", f"model.pretrained={p}",
                                                         f"seed={s}"],
             "metrics": {"test/f1": v}, "_dir": "."}
            for task, p, s, v in [("qa", True, 0, 55.0), ("qa", False, 0, 8.6), ("qa", True, 1, 54.0),
                                  ("pos", True, 0, 0.5), ("pos", False, 0, 0.4)]]
    claims = [{"claim": "QA: pretrained far above", "metric": "test/f1", "by": "model.pretrained",
               "where": {"task": "qa"}, "verdict": "holds"},
              {"claim": "NLI: pretrained above", "metric": "test/f1", "by": "model.pretrained",
               "where": {"task": "nli"}, "verdict": "holds"}]
    plot_metric_vs_param(runs[:3], tmp_path, "model.pretrained", ["test/f1"], claims)
    ax = figures[0].axes[0]
    assert ax.get_title() == "QA: pretrained far above (holds)"
    assert ax.get_legend() is None, "one series: the overrides every run shares name none"
    plot_metric_vs_param(runs, tmp_path, "model.pretrained", ["test/f1"], claims, prefix="both_")
    ax = figures[1].axes[0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["budget=pos", "budget=qa"]
