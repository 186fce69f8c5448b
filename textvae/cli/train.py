"""``textvae train`` and ``textvae demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.config import Config
from textvae.presets import demo_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config", description="Train a sentence VAE.")
    p.add_argument(
        "config",
        help="YAML config file (see configs/); to continue a run, train.resume=RUN_DIR alone reads the run's own config",
    )
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.max_steps=500")
    p.set_defaults(func=run_train)

    d = sub.add_parser(
        "demo",
        help="train a small VAE on the embedded synthetic corpus and show what it does",
        description="Train on generated sentences (no download), then print reconstructions, samples "
        "and an interpolation.",
    )
    d.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.max_steps=200")
    d.set_defaults(func=run_demo)


def run_train(args: argparse.Namespace) -> int:
    from textvae.training.trainer import Trainer

    cfg = _requested_config(args.config, args.overrides)
    trainer = Trainer(cfg)
    result = trainer.fit()
    if trainer.interrupted:
        return _interrupted_exit(trainer.interrupted)
    _print_summary(trainer, result)
    return 0


def _requested_config(config: str, overrides: list[str]) -> Config:
    """``CONFIG key=value...``, or ``train.resume=RUN key=value...``: the run's own ``config.yaml`` as base."""
    if "=" not in config or Path(config).is_file():
        return Config.from_yaml(config).apply_overrides(overrides)
    from textvae.errors import ConfigError
    from textvae.training.checkpoint import find_checkpoint

    overrides = [config, *overrides]
    resume = next((o.partition("=")[2] for o in overrides if o.startswith("train.resume=")), "")
    if not resume.strip():
        raise ConfigError(
            f"{config!r} is not a config file; give a YAML config, or train.resume=RUN_DIR to continue a run"
        )
    run_config = find_checkpoint(resume).parent / "config.yaml"
    if not run_config.is_file():
        raise ConfigError(f"{run_config} not found; give the YAML config the run was started with")
    return Config.from_yaml(run_config).apply_overrides(overrides)


def _interrupted_exit(signal_name: str) -> int:
    """The shell's convention for a run ended by a signal: 128 + its number (130 for SIGINT)."""
    import signal

    return 128 + int(signal.Signals[signal_name])


def run_demo(args: argparse.Namespace) -> int:
    from textvae.inference.showcase import showcase
    from textvae.training.trainer import Trainer

    cfg = demo_config().apply_overrides(args.overrides)
    if not any(o.startswith("train.output_dir=") for o in args.overrides):
        cfg.train.output_dir = str(_free_dir(Path(cfg.train.output_dir)))
    trainer = Trainer(cfg)
    result = trainer.fit()
    if trainer.interrupted:
        return _interrupted_exit(trainer.interrupted)
    _print_summary(trainer, result)
    print()
    showcase(trainer.run_dir, trainer.data.valid.texts(5))
    return 0


def _free_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3`` ... whichever does not exist yet (never reuse a run)."""
    if not base.exists():
        return base
    i = 2
    while base.with_name(f"{base.name}-{i}").exists():
        i += 1
    return base.with_name(f"{base.name}-{i}")


def _print_summary(trainer, result: dict) -> None:
    """What the run produced, and only that: a best/ that was never written is not announced."""
    run_dir, skipped = trainer.run_dir, trainer.state.skipped_steps
    if result:
        print(
            f"done: step {result['step']}, validation -ELBO {result['neg_elbo']:.2f} nats/sentence "
            f"(rec {result['rec']:.2f}, KL {result['kl']:.2f}), active units {result['au']}"
        )
    if skipped:
        print(f"{skipped} of {trainer.state.step} updates were skipped (non-finite loss or gradient)")
    if (run_dir / "best").is_dir():
        print(f"model saved in {run_dir}/best (load it with TextVAE.from_pretrained('{run_dir}'))")
    else:
        print(f"no model was saved in {run_dir}/best: no validation ran")
