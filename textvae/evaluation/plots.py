"""Pictures of a training run, from its ``metrics.jsonl``: training curves and KL per latent dimension; and
the rate-distortion plane of several models (:func:`plot_rate_distortion`).

Figures are drawn with matplotlib's object API (``Figure`` + ``savefig``, Agg rendering) and never
through pyplot, so no global backend is switched and nothing needs a display.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from textvae.errors import TextVAEError
from textvae.extras import require

METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "training_curves.png"
KL_NAME = "kl_per_dim.png"


def find_metrics(run_dir: str | Path) -> Path:
    """``run_dir/metrics.jsonl`` (also accepted: a run's ``best/`` or ``last/`` model directory)."""
    p = Path(run_dir)
    if not p.exists():
        raise TextVAEError(f"run directory not found: {p}")
    if p.is_file():
        if p.name == METRICS_NAME:
            return p
        raise TextVAEError(f"{p} is a file; pass the training run directory that contains {METRICS_NAME}")
    for cand in (p / METRICS_NAME, p.parent / METRICS_NAME if p.name in ("best", "last") else None):
        if cand is not None and cand.is_file():
            return cand
    raise TextVAEError(f"{p} has no {METRICS_NAME}; pass a training run directory (a train.output_dir)")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` in file order; a torn or malformed line (e.g. a run killed
    mid-write) is skipped. Raises :class:`TextVAEError` when there is no record at all."""
    path = find_metrics(run_dir)
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and "step" in r:
            records.append(r)
    if not records:
        raise TextVAEError(f"{path} holds no records yet; plot again once training has logged")
    return records


def _series(records: list[dict[str, Any]], split: str, key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``key`` in the records of ``split`` that have a finite value for it."""
    pts = [
        (r["step"], float(r[key]))
        for r in records
        if r.get("split") == split and isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))
    ]
    return [s for s, _ in pts], [v for _, v in pts]


# (panel title, y label, [(split, key, legend)])
_PANELS = (
    ("loss", "nats / sentence", [("train", "loss", "train loss"), ("valid", "neg_elbo", "valid -ELBO")]),
    ("reconstruction", "nats / sentence", [("train", "rec", "train"), ("valid", "rec", "valid")]),
    ("KL", "nats / sentence", [("train", "kl", "train"), ("valid", "kl", "valid")]),
    ("beta", "KL weight", [("train", "beta", "train")]),
    ("active units", "dimensions", [("valid", "au", "valid")]),
    ("learning rate", "lr", [("train", "lr", "train")]),
)


def run_name(path: str | Path) -> str:
    """The name a figure shows for a run: the run directory's name (also for its ``best/`` / ``last/``)."""
    p = Path(path)
    if p.name == METRICS_NAME:
        p = p.parent
    return p.parent.name if p.name in ("best", "last") and p.parent.name else p.name


def _figure(**kw: Any) -> Any:
    require("matplotlib", extra="analysis", feature="plotting")
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state is touched

    return Figure(**kw)


def plot_training_curves(records: list[dict[str, Any]], path: str | Path, run: str | None = None) -> Path:
    """One PNG with six panels against optimizer steps: loss (train loss, validation negative ELBO),
    reconstruction, KL (nats per sentence), beta, active units (validation) and learning rate."""
    return _save(training_curves_figure(records, run), path)


def training_curves_figure(records: list[dict[str, Any]], run: str | None = None) -> Any:
    """The matplotlib ``Figure`` of :func:`plot_training_curves`; ``run`` (the run's name) is its title."""
    fig = _figure(figsize=(13, 7), dpi=100)
    axes = fig.subplots(2, 3)
    for ax, (title, ylabel, lines) in zip(axes.flat, _PANELS):
        drawn = 0
        for split, key, legend in lines:
            steps, values = _series(records, split, key)
            if steps:
                # Validation points, and a series of one or two points (a short run), would be invisible as lines.
                marker = "o" if split == "valid" or len(steps) < 3 else None
                ax.plot(steps, values, label=legend, marker=marker, markersize=3, linewidth=1.2)
                drawn += 1
        if drawn == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
        elif drawn > 1:
            ax.legend(fontsize=8, frameon=False)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _active_units_axis(axes.flat[4], records)
    axes.flat[5].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))  # lr: 1e-3 rather than 0.001
    if run:
        fig.suptitle(f"run: {run}")
    fig.tight_layout()
    return fig


def _active_units_axis(ax: Any, records: list[dict[str, Any]]) -> None:
    """Active units range from 0 to the latent size (the length of ``kl_per_dim``): show that whole range,
    in whole dimensions, with the latent size drawn as a dashed line."""
    from matplotlib.ticker import MaxNLocator

    sizes = [len(r["kl_per_dim"]) for r in records if r.get("split") == "valid" and r.get("kl_per_dim")]
    if sizes:
        ax.axhline(sizes[-1], linestyle="--", color="gray", linewidth=1, label=f"latent size {sizes[-1]}")
        ax.set_ylim(-0.05 * sizes[-1], 1.08 * sizes[-1])
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def last_kl_record(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last validation record with a non-empty ``kl_per_dim`` (None for a language model's run)."""
    for r in reversed(records):
        if r.get("split") == "valid" and r.get("kl_per_dim"):
            return r
    return None


def plot_kl_per_dim(record: dict[str, Any], path: str | Path, run: str | None = None) -> Path:
    """Bar chart of the mean KL of each latent dimension (nats per sentence) in a validation record."""
    return _save(kl_per_dim_figure(record, run), path)


def kl_per_dim_figure(record: dict[str, Any], run: str | None = None) -> Any:
    """The matplotlib ``Figure`` of :func:`plot_kl_per_dim`; ``run`` (the run's name) is its title."""
    kl = [float(v) for v in record["kl_per_dim"]]
    fig = _figure(figsize=(max(6.0, 0.25 * len(kl) + 2), 4), dpi=100)
    ax = fig.add_subplot()
    ax.bar(range(len(kl)), kl, color="tab:blue")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats / sentence)")
    au = record.get("au")
    ax.set_title(f"KL per dimension at step {record['step']} (total {sum(kl):.2f} nats, active units {au})")
    ax.grid(axis="y", alpha=0.3)
    if run:
        fig.suptitle(f"run: {run}")
    fig.tight_layout()
    return fig


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``training_curves.png`` and (for a VAE with a validation record) ``kl_per_dim.png`` into
    ``out_dir`` (default: the run directory). Returns the paths written."""
    metrics = find_metrics(run_dir)
    records = read_metrics(metrics)
    out = Path(out_dir) if out_dir is not None else metrics.parent
    run = run_name(metrics)
    written = [plot_training_curves(records, out / CURVES_NAME, run)]
    rec = last_kl_record(records)
    if rec is not None:
        written.append(plot_kl_per_dim(rec, out / KL_NAME, run))
    return written


def plot_rate_distortion(
    points: list[dict[str, Any]], path: str | Path, reference_bits: float | None = None, title: str | None = None
) -> Path:
    """The rate-distortion plane (Alemi et al. 2018): each point ``{"label", "rate_bits", "distortion_bits"}``
    (bits per sentence) as a dot, joined in order of rate; ``reference_bits`` (a language model's NLL in
    bits per sentence) draws the line ``rate + distortion = reference``: a point on it codes the data as well
    as the language model, and below it better."""
    fig = _figure(figsize=(6.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    pts = sorted(points, key=lambda p: p["rate_bits"])
    ax.plot([p["rate_bits"] for p in pts], [p["distortion_bits"] for p in pts], "o-", color="tab:blue", label="VAE")
    for p in pts:
        ax.annotate(
            str(p["label"]),
            (p["rate_bits"], p["distortion_bits"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    # The window is the points' own range: real curves span a few bits of rate next to ~100s of distortion.
    right = 1.15 * max(p["rate_bits"] for p in pts) + 0.5
    ds = [p["distortion_bits"] for p in pts]
    if reference_bits is not None:
        ax.plot([0, right], [reference_bits, reference_bits - right], "--", color="tab:gray", label="R + D = LM NLL")
        ds += [reference_bits, reference_bits - right]
    pad = 0.08 * (max(ds) - min(ds)) + 0.5
    ax.set_xlim(0, right)
    ax.set_ylim(max(0.0, min(ds) - pad), max(ds) + pad)
    ax.set_xlabel("rate: KL (bits / sentence)")
    ax.set_ylabel("distortion: reconstruction (bits / sentence)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "rate-distortion")
    fig.tight_layout()
    return _save(fig, path)


def plot_transfer_tradeoff(
    summary: list[dict[str, Any]],
    path: str | Path,
    references: dict[str, float] | None = None,
    title: str | None = None,
) -> Path:
    """Style transfer's trade-off: each ``{"alpha", "target_share", "bleu"}`` (share 0-1, BLEU 0-100) as a dot
    joined in order of alpha; ``references`` draws horizontal lines at named shares (e.g. the classifier's
    verdict on real sentences of the target style, and on the untouched sources)."""
    fig = _figure(figsize=(6.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    pts = sorted(summary, key=lambda r: r["alpha"])
    ax.plot([r["bleu"] for r in pts], [100 * r["target_share"] for r in pts], "o-", color="tab:blue", label="VAE")
    for r in pts:
        ax.annotate(f"α={r['alpha']:g}", (r["bleu"], 100 * r["target_share"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)  # fmt: skip
    for k, (name, share) in enumerate((references or {}).items()):
        ax.axhline(100 * share, linestyle="--", color=f"C{k + 1}", label=name)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("BLEU of the output to its source (content kept)")
    ax.set_ylabel("judged the target style (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title or "attribute-vector transfer")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    except OSError as e:
        raise TextVAEError(f"cannot write {path}: {e.strerror or e}") from None
    return path
