"""Chapter 1.1.3 minimum ratio (Fig 1.6) and the MNIST batch-size presets: configs and a smoke run."""
from __future__ import annotations

import pytest


def test_configs_compose(compose_cfg):
    cfg = compose_cfg(["task=minimum_ratio"])
    assert cfg.model.name == "mlp" and list(cfg.model.hidden) == [4]
    for e in ("minimum_ratio", "batch_size_gap"):
        assert compose_cfg([f"experiment={e}"]).report.get("book")
    assert compose_cfg(["experiment=batch_size_time"]).report.get("plots")


@pytest.mark.parametrize("drop_blank,n,blank", [(False, 310, 4), (True, 294, 0)])
def test_smoke_counts_eigenvalues(run_leedl, drop_blank, n, blank):
    """64 pixels -> 4 -> 10: 310 parameters; without the 4 pixels blank in every training image: 60*4+4 + 50 = 294."""
    r = run_leedl(["task=minimum_ratio", "debug=smoke", "threads=1", "seed=0",
                   f"task.data.drop_blank_pixels={str(drop_blank).lower()}"])
    assert r["status"] == "ok", r.get("error")
    assert r["n_parameters"] == n == len(r["eigenvalues"])
    assert r["n_positive"] + r["n_negative"] + r["n_zero"] == n
    assert r["minimum_ratio"] == pytest.approx(r["n_positive"] / n)
    assert r["n_blank_inputs"] == blank and r["zero_eigenvalues_from_blank_inputs"] == 4 * blank


def test_minimum_ratio_plot(tmp_path):
    from leedl_cli.analysis.minimum_ratio import plot_minimum_ratio

    runs = [{"status": "ok", "minimum_ratio": 0.6 + 0.1 * i, "training_loss": 1.0 - 0.3 * i, "grad_norm_after": 0.01}
            for i in range(3)]
    paths = plot_minimum_ratio(runs, tmp_path)
    assert paths and paths[0].is_file()
