"""The model card (``README.md``) uploaded with a model: YAML front matter for the Hub, then what the model
was trained on, its architecture, its validation figures and how to load it.

:func:`build_model_card` is a pure function of the saved ``config.json`` (as a dict) and the run's last
validation record; :func:`find_run_metrics` finds that record next to a run's ``best/`` or ``last/``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Figures of a validation record shown in the card: (key, label, unit).
_FIGURES = (
    ("neg_elbo", "negative ELBO", "nats / sentence"),
    ("rec", "reconstruction", "nats / sentence"),
    ("kl", "KL", "nats / sentence"),
    ("rec_per_token", "reconstruction", "nats / token"),
    ("ppl_elbo", "perplexity (upper bound, from the ELBO)", "per token"),
    ("au", "active units", "dimensions"),
    ("num_sentences", "validation sentences", "sentences"),
)


def find_run_metrics(model_dir: str | Path) -> dict[str, Any] | None:
    """The last validation record of the run that ``model_dir`` belongs to (a run's ``best/`` or ``last/``,
    whose parent holds ``metrics.jsonl``), else None."""
    d = Path(model_dir)
    path = d.parent / "metrics.jsonl"
    if d.name not in ("best", "last") or not path.is_file():
        return None
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a torn last line of a killed run
            continue
        if isinstance(r, dict) and r.get("split") == "valid":
            last = r
    return last


def _training_data(data: dict[str, Any], train: dict[str, Any]) -> list[str]:
    src = data.get("train", "?")
    if src == "synthetic":
        lines = [f"- corpus: the built-in synthetic grammar ({data.get('synthetic_size', '?')} sentences)"]
    else:
        lines = [f"- corpus: `{src}` (format {data.get('format', 'auto')}, text column `{data.get('text_column')}`)"]
    if data.get("valid"):
        lines.append(f"- validation: `{data['valid']}`")
    else:
        frac = data.get("valid_fraction")
        share = f"{100 * frac:g}%" if isinstance(frac, (int, float)) else "a share"
        lines.append(f"- validation: {share} of the corpus, held out (seed {data.get('seed')})")
    if data.get("label_column"):
        lines.append(f"- labels: column `{data['label_column']}`")
    lines.append(
        f"- preprocessing: lowercase {data.get('lowercase')}, word tokenizer {data.get('word_tokenizer')}, "
        f"sentences of {data.get('min_length')}-{data.get('max_length')} tokens ({data.get('length_policy')})"
    )
    tok = data.get("tokenizer")
    tok_line = f"- tokenizer: {tok}" + (
        f" (`{data['pretrained_tokenizer']}`)" if data.get("pretrained_tokenizer") else ""
    )
    lines.append(tok_line)
    if train:
        lines.append(f"- training: {train.get('max_steps')} steps max, batch size {train.get('batch_size')}")
    return lines


def _figures(metrics: dict[str, Any] | None) -> list[str]:
    if not metrics:
        return ["No validation record was found with this model (it was not pushed from a training run directory)."]
    rows = ["| figure | value | unit |", "|---|---|---|"]
    for key, label, unit in _FIGURES:
        v = metrics.get(key)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            rows.append(f"| {label} | {v:.4g} | {unit} |" if isinstance(v, float) else f"| {label} | {v} | {unit} |")
    return [f"Last validation of the run, at step {metrics.get('step')}:", "", *rows]


def build_model_card(info: dict[str, Any], *, repo_id: str, metrics: dict[str, Any] | None = None) -> str:
    """The model card's Markdown for a model whose ``config.json`` is ``info``, to be uploaded as ``repo_id``.

    ``metrics``: a validation record of ``metrics.jsonl`` (None: the card says there is none)."""
    model = info.get("model") or {}
    data = info.get("data") or {}
    train = info.get("train") or {}
    kind = "vae" if model.get("use_latent", True) else "language-model"
    tags = ["textvae", "pytorch", "text-generation", "variational-autoencoder" if kind == "vae" else "language-model"]
    if model.get("conditional"):
        tags.append("conditional")
    front = ["---", "library_name: textvae", "tags:", *[f"- {t}" for t in tags], "---", ""]
    arch = (
        f"{model.get('encoder')} encoder, {model.get('decoder')} decoder, latent size {model.get('latent_size')}"
        if kind == "vae"
        else f"{model.get('decoder')} language model (no latent)"
    )
    body = [
        f"# {repo_id}",
        "",
        f"A textvae sentence model: {arch}, "
        f"vocabulary of {model.get('vocab_size')} tokens. Trained with textvae {info.get('textvae_version', '?')}.",
        "",
        "## Training data",
        "",
        *_training_data(data, train),
        "",
        "## Evaluation",
        "",
        *_figures(metrics),
        "",
        "## How to load it",
        "",
        "```python",
        "from textvae import TextVAE",
        "",
        f'model = TextVAE.from_pretrained("{repo_id}")',
        "print(model.sample(3))",
        "```",
        "",
        "or from the command line:",
        "",
        "```bash",
        f"textvae sample {repo_id} -n 3",
        "```",
        "",
        "## Config",
        "",
        "```json",
        json.dumps({"model": model, "data": data}, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(front + body)
