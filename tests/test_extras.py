"""Optional extras: a feature whose package is missing names the extra to install; figures carry their
labels (active units and learning rate panels, map titles and axis names, the run's name)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from textvae.cli import main
from textvae.evaluation import analysis, plots
from textvae.extras import MissingExtraError, require


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import <module>`` fail as if the package were not installed (None in sys.modules)."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def run_dir(tmp_path, latent=4):
    run = tmp_path / "my-run"
    run.mkdir()
    records = [
        {"split": "train", "step": s, "loss": 50.0 - s, "rec": 45.0 - s, "kl": 1.0, "beta": 1.0, "lr": 1e-3}
        for s in (10, 20)
    ] + [
        {"split": "valid", "step": 20, "neg_elbo": 30.0, "rec": 28.0, "kl": 2.0, "au": 2, "kl_per_dim": [0.5] * latent}
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return run


def test_require_names_the_extra(monkeypatch):
    hide(monkeypatch, "sklearn")
    with pytest.raises(MissingExtraError) as e:
        require("sklearn", extra="analysis", feature="latent analysis")
    assert str(e.value) == (
        "latent analysis needs scikit-learn, which is not installed: pip install 'textvae[analysis]'"
    )
    assert require("json", extra="analysis") is json


def test_analysis_without_scikit_learn(monkeypatch):
    hide(monkeypatch, "sklearn")
    mu = np.random.default_rng(0).normal(size=(12, 3))
    with pytest.raises(MissingExtraError, match=r"scikit-learn.*pip install 'textvae\[analysis\]'"):
        analysis.cluster_agreement(mu, ["a", "b"] * 6)
    with pytest.raises(MissingExtraError, match="textvae"):
        analysis.linear_probe(mu, ["a", "b"] * 6)
    with pytest.raises(MissingExtraError, match="textvae"):
        analysis.project_2d(mu, "pca")


def test_plot_without_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    run = run_dir(tmp_path)
    hide(monkeypatch, "matplotlib")
    assert main(["plot", str(run)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "textvae plot: error: plotting needs matplotlib, which is not installed: pip install 'textvae[analysis]'\n"
    )
    assert not (run / plots.CURVES_NAME).exists()


def test_umap_message_names_its_extra(monkeypatch):
    hide(monkeypatch, "umap")
    with pytest.raises(Exception, match=r"pip install 'textvae\[umap\]'"):
        analysis.project_2d(np.zeros((8, 3)), "umap")


def test_training_curves_have_active_units_and_learning_rate_panels_and_the_run_name(tmp_path):
    records = plots.read_metrics(run_dir(tmp_path))
    fig = plots.training_curves_figure(records, run="my-run")
    axes = fig.get_axes()
    assert len(axes) == 6
    by_title = {ax.get_title(): ax for ax in axes}
    assert by_title["active units"].get_ylabel() == "dimensions"
    assert by_title["active units"].get_ylim()[1] >= 4  # the axis spans the whole latent (4 dimensions)
    assert by_title["learning rate"].get_ylabel() == "lr"
    assert len(by_title["learning rate"].get_lines()) == 1
    assert by_title["learning rate"].get_lines()[0].get_marker() == "o"  # two points: drawn, not a bare line
    assert all(ax.get_xlabel() == "step" for ax in axes)
    assert fig.get_suptitle() == "run: my-run"
    kl = plots.kl_per_dim_figure(records[-1], run="my-run")
    assert kl.get_suptitle() == "run: my-run" and kl.get_axes()[0].get_ylabel() == "KL (nats / sentence)"


def test_plot_run_titles_figures_with_the_run_directory(tmp_path, monkeypatch):
    run = run_dir(tmp_path)
    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.append(fig) or path)
    plots.plot_run(run)
    assert [f.get_suptitle() for f in seen] == ["run: my-run", "run: my-run"]
    assert plots.run_name(run / "best") == "my-run" and plots.run_name(run / "metrics.jsonl") == "my-run"


@pytest.mark.parametrize(("method", "axis"), [("pca", "PC"), ("tsne", "t-SNE"), ("umap", "UMAP")])
def test_latent_map_has_a_title_axis_labels_and_the_run_name(method, axis):
    coords = np.random.default_rng(0).normal(size=(10, 2))
    fig = analysis.map_figure(coords, ["a", "b"] * 5, "posterior means by label", method=method, run="user/m")
    (ax,) = fig.get_axes()
    assert ax.get_title() == "posterior means by label"
    assert (ax.get_xlabel(), ax.get_ylabel()) == (f"{axis} 1", f"{axis} 2")
    assert fig.get_suptitle() == "run: user/m"


def test_analyze_latents_titles_its_maps(tmp_path, monkeypatch):
    seen = []
    real = analysis.map_figure
    monkeypatch.setattr(analysis, "map_figure", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    mu = np.random.default_rng(0).normal(size=(20, 3))
    analysis.analyze_latents(mu, {"topic": ["x", "y"] * 10}, tmp_path, method="pca", run="my-run")
    ax = seen[0].get_axes()[0]
    assert ax.get_title() == "posterior means by topic (pca, 20 sentences)" and ax.get_xlabel() == "PC 1"
    assert seen[0].get_suptitle() == "run: my-run"
