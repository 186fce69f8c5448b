"""Experiment trackers (``train.loggers``): TensorBoard, Weights & Biases, MLflow.

``metrics.jsonl`` stays the record of a run; a tracker receives the same figures as it goes. Each
tracker's package is an optional extra (:func:`textvae.extras.require` names it when missing). Records
are sent as scalars under ``train/...`` and ``valid/...`` (KL per dimension as ``valid/kl_dim/<i>``), a few
reconstructions and prior samples as text, and the KL-per-dimension bar chart as a figure when matplotlib
is installed. On resume, TensorBoard drops the events after the checkpoint's step (``purge_step``), as
``metrics.jsonl`` drops its records, so curves are not drawn twice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textvae.extras import require

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE


class Tracker:
    """What a tracker receives. Subclasses implement the three ``_`` methods; failures of a tracker must not
    end a run, so callers use :class:`Trackers`, which reports and disables a tracker that raises."""

    name = "tracker"

    def scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def text(self, step: int, tag: str, lines: list[str]) -> None:
        raise NotImplementedError

    def figure(self, step: int, tag: str, fig: Any) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def __init__(self, run_dir: Path, run_name: str, config: dict[str, Any], start_step: int) -> None:
        require("tensorboard", extra="tracking", feature="train.loggers=[tensorboard]")
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events written after the checkpoint a resume starts from (steps > start_step) are
        # discarded, as metrics.jsonl drops its records after that step.
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        if not start_step:
            self.writer.add_text("config", "```\n" + _yaml(config) + "\n```", 0)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def text(self, step: int, tag: str, lines: list[str]) -> None:
        # Markdown: two trailing spaces end a line.
        self.writer.add_text(tag, "  \n".join(lines), step)

    def figure(self, step: int, tag: str, fig: Any) -> None:
        self.writer.add_figure(tag, fig, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, run_dir: Path, run_name: str, config: dict[str, Any], start_step: int) -> None:
        self.wandb = require("wandb", extra="wandb", feature="train.loggers=[wandb]")
        # The run directory's name is the run's id: a resume continues the same W&B run.
        self.run = self.wandb.init(
            name=run_name, id=_safe_id(run_name), resume="allow", dir=str(run_dir), config=config
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def text(self, step: int, tag: str, lines: list[str]) -> None:
        table = self.wandb.Table(columns=["text"], data=[[line] for line in lines])
        self.run.log({tag: table}, step=step)

    def figure(self, step: int, tag: str, fig: Any) -> None:
        self.run.log({tag: self.wandb.Image(fig)}, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, run_dir: Path, run_name: str, config: dict[str, Any], start_step: int) -> None:
        self.mlflow = require("mlflow", extra="mlflow", feature="train.loggers=[mlflow]")
        self.mlflow.start_run(run_name=run_name)
        self.mlflow.log_params(_flat(config))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        # MLflow metric names may not contain "/" on every backend's UI filter; keep them, they are valid keys.
        self.mlflow.log_metrics(values, step=step)

    def text(self, step: int, tag: str, lines: list[str]) -> None:
        self.mlflow.log_text("\n".join(lines), f"{tag}/step_{step:07d}.txt")

    def figure(self, step: int, tag: str, fig: Any) -> None:
        self.mlflow.log_figure(fig, f"{tag}/step_{step:07d}.png")

    def close(self) -> None:
        self.mlflow.end_run()


TRACKERS: dict[str, type[Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "wandb": WandbTracker,
    "mlflow": MLflowTracker,
}


class Trackers:
    """The run's trackers as one. Building one fails loudly (a missing extra is the user's to fix before
    training); a tracker that fails later is reported once through ``log`` and dropped, never the run."""

    def __init__(
        self, names: list[str], run_dir: Path, config: dict[str, Any], start_step: int = 0, log: Any = print
    ) -> None:
        self.log = log
        self.active = [TRACKERS[n](run_dir, run_dir.name, config, start_step) for n in dict.fromkeys(names)]

    def _each(self, method: str, *args: Any) -> None:
        for t in list(self.active):
            try:
                getattr(t, method)(*args)
            except Exception as e:  # a tracker's network or disk trouble is not the run's
                self.log(f"train.loggers: {t.name} failed ({type(e).__name__}: {e}); it is switched off")
                self.active.remove(t)

    def record(self, record: dict[str, Any]) -> None:
        """A ``metrics.jsonl`` record: its numbers as scalars under ``<split>/``, KL per dimension split out."""
        if not self.active:
            return
        split, step = record.get("split", "train"), int(record["step"])
        values = {
            f"{split}/{k}": float(v)
            for k, v in record.items()
            if k not in ("split", "step") and isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v)
        }  # fmt: skip
        for i, v in enumerate(record.get("kl_per_dim") or []):
            values[f"{split}/kl_dim/{i}"] = float(v)
        self._each("scalars", step, values)

    def text(self, step: int, tag: str, lines: list[str]) -> None:
        if self.active:
            self._each("text", step, tag, lines)

    def kl_figure(self, step: int, kl_per_dim: list[float]) -> None:
        """The KL of each latent dimension as a bar chart (needs matplotlib; skipped without it)."""
        if not self.active or not kl_per_dim:
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(range(len(kl_per_dim)), kl_per_dim)
        ax.set_xlabel("latent dimension")
        ax.set_ylabel("KL (nats)")
        ax.set_title(f"KL per dimension, step {step}")
        fig.tight_layout()
        self._each("figure", step, "valid/kl_per_dim", fig)
        plt.close(fig)

    def close(self) -> None:
        self._each("close")
        self.active = []


def send_examples(
    trackers: Trackers, model: TextVAE, texts: list[str], step: int, stats: dict[str, Any], seed: int, max_length: int
) -> None:
    """The KL-per-dimension figure, greedy reconstructions of ``texts`` and as many prior samples, to the
    trackers. In eval mode with its own seeded generator: no dropout, and the training RNG streams are not
    touched (an exact resume stays exact). A conditional model's examples would need a label per
    sentence: it sends the figure only."""
    from textvae.model.decoding import DecodingConfig
    from textvae.model.modes import eval_mode

    trackers.kl_figure(step, stats.get("kl_per_dim") or [])
    if model.config.conditional:
        return
    with eval_mode(model):
        greedy = DecodingConfig(max_length=max_length)
        if model.has_latent:
            recon = model.reconstruct(texts, greedy, strict=False)  # validation sentences: whatever they are
            trackers.text(step, "valid/reconstructions", [f"{a}  →  {b}" for a, b in zip(texts, recon)])
        trackers.text(step, "valid/samples", model.sample(len(texts), greedy, seed=seed))


def _yaml(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _safe_id(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64] or "textvae"
