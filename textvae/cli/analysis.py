"""``textvae plot`` (training curves of a run) and ``textvae analyze`` (what the latent space holds).

Registered by :func:`textvae.cli.evaluate.register`. Thin wrappers over :mod:`textvae.evaluation.plots`
and :mod:`textvae.evaluation.analysis`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.cli.common import add_data_args, add_model_args, emit, load_data, load_model, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="training curves and KL per latent dimension of a run, as PNG files",
        description="Draw loss, reconstruction, KL, beta, active units and learning rate against steps "
        "(training_curves.png) and the KL of each latent dimension at the last validation (kl_per_dim.png) "
        "from a run's metrics.jsonl.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training run directory (holds metrics.jsonl)")
    p.add_argument("--out", metavar="DIR", default=None, help="where to write the PNGs (default: RUN_DIR)")
    p.add_argument("--json", action="store_true", help='print one JSON object: {"figures": [paths]}')
    p.set_defaults(func=run_plot)

    a = sub.add_parser(
        "analyze",
        help="latent map coloured by label, k-means vs labels (NMI, purity), linear probe accuracy",
        description="Encode labelled sentences to their posterior means, draw a 2-D map coloured by each "
        "label column (PNG), cluster the means with k-means against the labels (NMI, purity) and train a "
        "linear probe per label column (held-out accuracy).",
    )
    add_model_args(a)
    add_data_args(a, "labelled sentences (jsonl or csv/tsv)")
    a.add_argument(
        "--label-column",
        action="append",
        default=None,
        metavar="COL",
        help="label column (repeat for several; default: the model's data.label_column, else 'label')",
    )
    a.add_argument("--out", metavar="DIR", default=None, help="where to write the maps (default: MODEL/analysis)")
    a.add_argument(
        "--map", choices=["auto", "tsne", "umap", "pca"], default="auto", help="auto: UMAP if installed, else t-SNE"
    )
    a.add_argument(
        "--max-points", type=positive_int, default=2000, metavar="N", help="sentences drawn on the map (default 2000)"
    )
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=run_analyze, flag_names={"method": "--map"})


def run_plot(args: argparse.Namespace) -> int:
    from textvae.evaluation.plots import plot_run

    paths = [str(p) for p in plot_run(args.run_dir, args.out)]
    if args.json:
        import json

        print(json.dumps({"figures": paths}))
    else:
        print("\n".join(paths))
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    from textvae.errors import TextVAEError
    from textvae.evaluation.analysis import analyze_latents
    from textvae.evaluation.batches import posterior_params

    model = load_model(args)
    if not model.has_latent:
        raise TextVAEError("this model has no latent (model.use_latent=false): there is nothing to analyze")
    columns = tuple(args.label_column or [model.data_config.label_column or "label"])
    data = load_data(args, model, columns)
    mu, _ = posterior_params(model, data.token_ids, data.label_ids, args.batch_size)
    out = Path(args.out) if args.out else _default_out(args.model)
    assignments = model.prior_assignments(mu)  # a mixture prior's component per sentence, else None
    reports = analyze_latents(
        mu.cpu().numpy(),
        data.labels,
        out,
        method=args.map,
        max_points=args.max_points,
        seed=args.seed,
        run=_model_name(args.model),
        assignments=None if assignments is None else assignments.numpy(),
    )
    emit([r.to_dict() for r in reports], args.json, _format)
    return 0


def _default_out(model: str) -> Path:
    """MODEL/analysis; for a Hub id (whose files live in the read-only cache) ./analysis-NAME."""
    from textvae.hub import looks_like_hub_id

    return Path(f"analysis-{model.split('/')[-1]}") if looks_like_hub_id(model) else Path(model) / "analysis"


def _model_name(model: str) -> str:
    """What the maps show as the run: the Hub id, or the run directory's name."""
    from textvae.evaluation.plots import run_name
    from textvae.hub import looks_like_hub_id

    return model if looks_like_hub_id(model) else run_name(Path(model).resolve())


def _format(r: dict) -> str:
    per_class = ", ".join(f"{k} {v:.2f}" for k, v in r["probe_per_class"].items())
    return (
        f"{r['column']} ({r['num_classes']} labels)\n"
        f"  k-means (k={r['kmeans_k']}): NMI {r['kmeans_nmi']:.3f}, purity {r['kmeans_purity']:.3f}\n"
        + (
            f"  prior components ({r['prior_components_used']} used): NMI {r['prior_nmi']:.3f}, "
            f"purity {r['prior_purity']:.3f}\n"
            if "prior_nmi" in r
            else ""
        )
        + f"  linear probe: accuracy {r['probe_accuracy']:.3f} on {r['probe_test']} held-out sentences "
        f"(majority baseline {r['probe_majority']:.3f}); per label: {per_class}\n"
        f"  map ({r['map_method']}, {r['map_points']} sentences): {r['plot']}"
    )
