"""What the latent space holds: a 2-D map of posterior means coloured by label, k-means clusters of the
means against the labels (NMI, purity), and a linear probe per label column.

Everything works on posterior means ``mu [N, Z]`` (numpy, float) and one label string per sentence, so it
applies to any encoder. scikit-learn does the learning; UMAP is used for the map when ``umap`` is installed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from textvae.errors import ParameterError, TextVAEError
from textvae.extras import require

MAP_METHODS = ("auto", "tsne", "umap", "pca")


def _umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def _sklearn() -> None:
    """scikit-learn is in the ``analysis`` extra: say so in one line when it is missing."""
    require("sklearn", extra="analysis", feature="latent analysis")


def project_2d(mu: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """``mu [N, Z]`` -> ``(coords [N, 2], method used)``. ``auto`` is UMAP when installed, else t-SNE.

    t-SNE's perplexity is capped at ``(N - 1) / 3`` so that small sets work; PCA is linear and fast, for
    large sets or a quick look. A 1-D latent is padded with zeros (nothing to project)."""
    if method not in MAP_METHODS:
        raise ValueError(f"method must be one of {', '.join(MAP_METHODS)}; got {method!r}")
    n = mu.shape[0]
    if n < 4:
        raise TextVAEError(f"a 2-D map needs at least 4 sentences, got {n}")
    x = np.asarray(mu, dtype=np.float64)
    if x.shape[1] == 1:
        return np.hstack([x, np.zeros_like(x)]), "identity"
    if method == "auto":
        method = "umap" if _umap_available() else "tsne"
    if method == "umap":
        if not _umap_available():
            raise ParameterError("UMAP is not installed: pip install 'textvae[umap]' (or use {method} tsne or pca)")
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1)).fit_transform(x), "umap"
    _sklearn()
    if method == "pca" or x.shape[1] == 2:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x), "pca"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (n - 1) / 3))
    # Exact gradients for small sets: as fast as Barnes-Hut there, more accurate, and single-threaded
    # (Barnes-Hut's OpenMP threads cost several times the CPU on a busy machine).
    algo = "exact" if n <= 300 else "barnes_hut"
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, method=algo)
    return tsne.fit_transform(x), "tsne"


def cluster_agreement(mu: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """k-means of ``mu [N, Z]`` with k = number of distinct labels, scored against the labels.

    ``nmi``: normalized mutual information (0 = independent, 1 = the same partition); ``purity``: share of
    sentences whose cluster's majority label is their own (``1/k`` or more by construction; 1 = pure)."""
    _sklearn()
    from sklearn.cluster import KMeans

    k = len(set(labels))
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(mu, dtype=np.float64))
    return {"k": k, **partition_agreement(clusters, labels)}


def partition_agreement(clusters: Sequence[int] | np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """How well a clustering ``[N]`` matches labels ``[N]``: ``nmi`` (normalized mutual information, 0 =
    independent, 1 = the same partition) and ``purity`` (share of sentences whose cluster's majority label is
    their own; 1 = pure). The number of clusters may differ from the number of labels."""
    _sklearn()
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    y, c = np.asarray(labels), np.asarray(clusters)
    table = contingency_matrix(y, c)  # [labels, clusters]
    return {"nmi": float(normalized_mutual_info_score(y, c)), "purity": float(table.max(axis=0).sum() / len(y))}


def linear_probe(mu: np.ndarray, labels: Sequence[str], test_fraction: float = 0.3, seed: int = 0) -> dict[str, Any]:
    """Held-out accuracy of a logistic regression predicting the label from ``mu [N, Z]``.

    The split is stratified when every label has at least two sentences. Returns ``accuracy``,
    ``majority`` (accuracy of always guessing the most frequent training label: the floor to beat),
    ``per_class`` (held-out accuracy within each label) and the split sizes."""
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    counts = Counter(labels)
    stratify = y if min(counts.values()) >= 2 else None
    n_test = max(len(counts) if stratify is not None else 1, round(len(y) * test_fraction))
    if len(y) - n_test < 2:
        raise TextVAEError(f"too few sentences ({len(y)}) for a held-out probe; give more labelled data")
    x_tr, x_te, y_tr, y_te = train_test_split(
        np.asarray(mu, dtype=np.float64), y, test_size=n_test, random_state=seed, stratify=stratify
    )
    if len(set(y_tr)) < 2:
        raise TextVAEError("the probe's training split has a single label; give more varied labelled data")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pred = probe.fit(x_tr, y_tr).predict(x_te)
    majority = Counter(y_tr.tolist()).most_common(1)[0][0]
    per_class = {str(c): float((pred[y_te == c] == c).mean()) for c in sorted(set(y_te.tolist()))}
    return {
        "accuracy": float((pred == y_te).mean()),
        "majority": float((y_te == majority).mean()),
        "per_class": per_class,
        "train": len(y_tr),
        "test": len(y_te),
    }


# Axis names of each projection's two coordinates.
_AXIS_NAMES = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PC", "identity": "z"}


def plot_map(
    coords: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str = "",
    *,
    method: str | None = None,
    run: str | None = None,
) -> Path:
    """Scatter ``coords [N, 2]`` coloured by label (legend up to 20 labels) into a PNG at ``path``."""
    fig = map_figure(coords, labels, title, method=method, run=run)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def map_figure(
    coords: np.ndarray, labels: Sequence[str], title: str = "", *, method: str | None = None, run: str | None = None
) -> Any:
    """The matplotlib ``Figure`` of :func:`plot_map`: axes named after the projection ``method`` (``t-SNE 1``,
    ``PC 2`` ...), ``title`` above the axes, ``run`` (the model's or run's name) above the figure."""
    require("matplotlib", extra="analysis", feature="the latent map")
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state is touched

    fig = Figure(figsize=(7, 6), dpi=110)
    ax = fig.add_subplot()
    names = sorted(set(labels))
    y = np.asarray(labels)
    palette = "tab10" if len(names) <= 10 else "tab20"  # tab20 pairs light/dark shades: only when needed
    cmap = colormaps[palette]
    for i, name in enumerate(names):
        sel = y == name
        ax.scatter(coords[sel, 0], coords[sel, 1], s=9, alpha=0.75, label=name, color=cmap(i % cmap.N))
    if len(names) <= 20:
        ax.legend(markerscale=2, fontsize=8, loc="best", frameon=False)
    ax.set_title(title)
    axis = _AXIS_NAMES.get(method or "", "coordinate")
    # t-SNE and UMAP coordinates have no unit and no meaning of their own: name the axes, hide the ticks.
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    if run:
        fig.suptitle(f"run: {run}")
    fig.tight_layout()
    return fig


@dataclass
class LabelReport:
    """Figures for one label column. ``plot`` is the PNG path of the map coloured by this label."""

    column: str
    num_classes: int
    clustering: dict[str, Any]
    probe: dict[str, Any]
    plot: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "num_classes": self.num_classes,
            **{f"kmeans_{k}": v for k, v in self.clustering.items()},
            **{f"probe_{k}": v for k, v in self.probe.items()},
            "plot": None if self.plot is None else str(self.plot),
            **self.extra,
        }


def analyze_latents(
    mu: np.ndarray,
    labels: dict[str, Sequence[str]],
    out_dir: str | Path,
    *,
    method: str = "auto",
    max_points: int = 2000,
    seed: int = 0,
    run: str | None = None,
    assignments: np.ndarray | None = None,
) -> list[LabelReport]:
    """For each label column: k-means agreement and a linear probe on all of ``mu [N, Z]``, and a 2-D map
    (one projection, at most ``max_points`` sentences drawn at random, shared by the columns) saved as
    ``out_dir/latent_map_<column>.png``, titled with ``run`` (the model's name) when given.

    ``assignments [N]``: each sentence's mixture-prior component (:meth:`TextVAE.prior_assignments`), scored
    against each column beside k-means as ``prior_nmi`` / ``prior_purity`` (``prior_components_used``: how
    many components hold at least one sentence)."""
    n = mu.shape[0]
    for col, ys in labels.items():
        if len(ys) != n:
            raise ValueError(f"{len(ys)} labels in column {col!r} for {n} sentences")
        if len(set(ys)) < 2:
            raise TextVAEError(f"label column {col!r} has a single value; analysis needs at least two labels")
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(n, size=max_points, replace=False)) if n > max_points else np.arange(n)
    coords, used = project_2d(mu[shown], method, seed)
    reports = []
    for col, ys in labels.items():
        safe = re.sub(r"[^\w.-]+", "_", col)
        path = plot_map(
            coords,
            [ys[i] for i in shown],
            Path(out_dir) / f"latent_map_{safe}.png",
            f"posterior means by {col} ({used}, {len(shown)} sentences)",
            method=used,
            run=run,
        )
        reports.append(
            LabelReport(
                column=col,
                num_classes=len(set(ys)),
                clustering=cluster_agreement(mu, ys, seed),
                probe=linear_probe(mu, ys, seed=seed),
                plot=path,
                extra={"map_method": used, "map_points": len(shown), **_prior_agreement(assignments, ys)},
            )
        )
    return reports


def _prior_agreement(assignments: np.ndarray | None, labels: Sequence[str]) -> dict[str, Any]:
    if assignments is None:
        return {}
    scores = partition_agreement(assignments, labels)
    return {
        "prior_nmi": scores["nmi"],
        "prior_purity": scores["purity"],
        "prior_components_used": int(len(np.unique(assignments))),
    }
