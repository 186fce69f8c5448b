"""Priors compared on the synthetic corpus, whose sentence types are known (statement / question).

For each prior and training seed, trains the demo configuration (``configs/demo.yaml``; the mixture with
``K`` = the number of sentence types) and measures on held-out sentences generated with another seed:

* ``nll_iw``: importance-weighted NLL (``--iw-samples``, nats per sentence), ``kl``, ``mi``, ``au``; the
  summary adds ``rec`` (``neg_elbo - kl``, the reconstruction term);
* ``kmeans_nmi`` / ``kmeans_purity``: k-means of the posterior means (k = 2) against the sentence type;
  for a mixture prior also ``prior_nmi`` / ``prior_purity``: each sentence's most responsible component;
* ``prior_parsed``: the share of greedy decodings of prior draws that the synthetic grammar's parser accepts.

Each (prior, seed) is an independent part: its figures go to ``OUT/<prior>-s<seed>.json`` as soon as it
finishes, a finished part is not rerun and a cut training run resumes, so the benchmark can be split over
sessions. The model itself is
trained under ``--runs`` (default ``runs/priors``), never next to the figures.

Usage::

    python benchmarks/priors.py --out benchmarks/results/priors --seeds 0 1 2 --priors normal mog
    python benchmarks/priors.py --out DIR --steps 300 --seeds 0     # a toy budget, for a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from textvae.data import synthetic
from textvae.evaluation.analysis import cluster_agreement, partition_agreement
from textvae.evaluation.likelihood import evaluate_corpus
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE

TEST_SEED = 4242  # held-out sentences: neither the training corpus (seed 0) nor the validation split
PRIOR_SEED = 77
FACTOR = "type"
FIGURES = (
    "nll_iw",
    "rec",
    "kl",
    "mi",
    "au",
    "kmeans_nmi",
    "kmeans_purity",
    "prior_nmi",
    "prior_purity",
    "prior_parsed",
)

#: The overrides that make each prior (on top of the demo configuration).
PRIORS: dict[str, list[str]] = {
    "normal": [],
    "mog": ["model.prior=mog", f"model.prior_components={len(synthetic.FACTORS[FACTOR])}"],
    "vamp": ["model.prior=vamp", f"model.prior_components={len(synthetic.FACTORS[FACTOR])}"],
    "iaf": ["model.posterior=iaf"],
    "vmf": ["model.posterior=vmf", "model.prior=sphere", "model.free_bits=0"],
}


def train(run_dir: Path, prior: str, seed: int, steps: int | None, extra: Sequence[str]) -> Path:
    from textvae.presets import demo_config
    from textvae.training.runconfig import with_budget
    from textvae.training.runs import train_to_completion

    overrides = [f"train.output_dir={run_dir}", "train.progress=false", f"train.seed={seed}", *PRIORS[prior]]
    cfg = with_budget(demo_config().apply_overrides(overrides), steps).apply_overrides(list(extra))
    return train_to_completion(cfg)  # resumes a cut run; a finished one returns at once


@torch.no_grad()
def measure(model: TextVAE, n_test: int, n_prior: int, iw_samples: int) -> dict:
    """The figures above for one trained model."""
    model.eval()
    test = synthetic.generate(n_test, seed=TEST_SEED)
    texts, types = [s.text for s in test], [s.factors[FACTOR] for s in test]
    ids = model.tokenizer.encode_batch(texts)
    report = evaluate_corpus(model, ids, iw_samples=iw_samples, progress=False)
    mu = model.encode_text(texts).mu
    out = {k: report[k] for k in ("nll_iw", "neg_elbo", "kl", "mi", "au", "ppl")}
    km = cluster_agreement(mu.numpy(), types)
    out.update(kmeans_nmi=km["nmi"], kmeans_purity=km["purity"])
    assigned = model.prior_assignments(mu)
    if assigned is not None:
        pa = partition_agreement(assigned.numpy(), types)
        out.update(prior_nmi=pa["nmi"], prior_purity=pa["purity"], prior_components_used=len(set(assigned.tolist())))
    greedy = DecodingConfig(strategy="greedy", max_length=30, detokenize=False)  # the parser reads raw tokens
    samples = model.sample(n_prior, greedy, seed=PRIOR_SEED)
    out["prior_parsed"] = sum(synthetic.parse(t) is not None for t in samples) / n_prior
    out.update(n_test=n_test, n_prior=n_prior, iw_samples=iw_samples)
    return out


def summarize(results: dict[str, list[dict]]) -> str:
    """A Markdown table: per prior, the mean (min-max) of each figure over seeds."""
    head = "| prior | seeds | " + " | ".join(FIGURES) + " |"
    rows = [head, "|" + "---|" * (len(FIGURES) + 2)]
    for prior, runs in results.items():
        cells = []
        for f in FIGURES:
            # rec: the reconstruction part of the -ELBO, nats per sentence (derived, so older parts have it too)
            vals = [r["neg_elbo"] - r["kl"] if f == "rec" else r[f] for r in runs if f == "rec" or r.get(f) is not None]
            if not vals:
                cells.append("–")
                continue
            fmt = (lambda v: f"{v:.0f}") if f == "au" else (lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}")
            span = f" ({fmt(min(vals))}–{fmt(max(vals))})" if len(vals) > 1 else ""
            cells.append(fmt(statistics.mean(vals)) + span)
        rows.append(f"| {prior} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the per-part JSON figures and summary.md")
    p.add_argument("--runs", default="runs/priors", help="folder for the trained models")
    p.add_argument("--priors", nargs="+", default=["normal", "mog"], choices=sorted(PRIORS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=None, help="training budget (default: the demo's 1500; warm-up scaled)")
    p.add_argument("--override", action="append", default=[], help="extra config override (repeatable)")
    p.add_argument("--test-sentences", type=int, default=1000)
    p.add_argument("--prior-samples", type=int, default=1000)
    p.add_argument("--iw-samples", type=int, default=100)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {}
    for prior in args.priors:
        for seed in args.seeds:
            part = out / f"{prior}-s{seed}.json"
            if not part.exists():
                model_dir = train(Path(args.runs) / f"{prior}-s{seed}", prior, seed, args.steps, args.override)
                figures = measure(
                    TextVAE.from_pretrained(model_dir), args.test_sentences, args.prior_samples, args.iw_samples
                )
                record = {
                    "prior": prior,
                    "seed": seed,
                    "steps": args.steps or 1500,
                    "overrides": PRIORS[prior] + args.override,
                }
                part.write_text(json.dumps({**record, **figures}, indent=2), encoding="utf-8")
                print(f"{part}: {json.dumps(figures)}", flush=True)
            results.setdefault(prior, []).append(json.loads(part.read_text(encoding="utf-8")))
    table = summarize(results)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
