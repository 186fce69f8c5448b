"""The config a run records, what a resume may change of it, and what a fine-tuned model keeps.

A run saves its resolved config as ``RUN/config.yaml`` with local paths made absolute, so a resume from
another working directory finds the same files. A resume trains on the run's own data and model: a
requested config that differs there is refused with the differences named (training on another split
would silently replace ``best/`` with a model scored on different data); the ``train`` section is the
caller's (more steps, another learning rate).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textvae.config import Config, ModelConfig
from textvae.errors import ConfigError, TextVAEError

if TYPE_CHECKING:
    import torch

    from textvae.data.tokenizer import TextTokenizer
    from textvae.model.vae import TextVAE

CONFIG_FILE = "config.yaml"

#: Config values that are local paths when they name an existing file or folder.
PATH_KEYS = (
    ("data", "train"),
    ("data", "valid"),
    ("data", "pretrained_tokenizer"),
    ("data", "encoder_tokenizer"),
    ("model", "encoder_pretrained"),
    ("model", "decoder_pretrained"),
)

#: Model keys the trainer fills in (from the tokenizer and labels) or that come from the caller only.
DERIVED_MODEL_KEYS = frozenset(
    {"vocab_size", "pad_id", "bos_id", "eos_id", "unk_id", "num_labels", "trust_remote_code"}
)


def with_data_values(model: ModelConfig, tokenizer: TextTokenizer, label_names: Sequence[str]) -> ModelConfig:
    """A copy of ``model`` with the values that come from the data filled in (:data:`DERIVED_MODEL_KEYS`
    but ``trust_remote_code``): the vocabulary size and special ids of ``tokenizer``, and the number of
    labels of a conditional model. The only place the trainer writes into a model config; the user's
    settings are never changed."""
    if model.conditional and not label_names:
        raise ConfigError("model.conditional needs labels: set data.label_column (or use a labelled corpus)")
    return dataclasses.replace(
        model,
        num_labels=len(label_names) if model.conditional else 0,
        vocab_size=tokenizer.vocab_size,
        pad_id=tokenizer.pad_id,
        bos_id=tokenizer.bos_id,
        eos_id=tokenizer.eos_id,
        unk_id=tokenizer.unk_id,
    )


def with_absolute_paths(cfg: Config) -> Config:
    """A copy of ``cfg`` whose local paths (those that exist) are absolute; names, ids and ``synthetic`` stay."""
    out = copy.deepcopy(cfg)
    for section, key in PATH_KEYS:
        value = getattr(getattr(out, section), key)
        if value and value != "synthetic" and Path(value).exists():
            setattr(getattr(out, section), key, str(Path(value).resolve()))
    return out


def _same(section: str, key: str, saved: Any, asked: Any) -> bool:
    if saved == asked:
        return True
    if (section, key) in PATH_KEYS and isinstance(saved, str) and isinstance(asked, str):
        if Path(asked).exists():
            return Path(asked).resolve() == Path(saved).resolve()
        # The relative path the run was started with, typed from another directory: the same setting.
        return not Path(asked).is_absolute() and Path(saved).as_posix().endswith("/" + Path(asked).as_posix())
    return False


def differences(saved: Config, asked: Config) -> list[str]:
    """``section.key (run: A, now: B)`` for each data / model setting in which ``asked`` differs from ``saved``."""
    out = []
    for section in ("data", "model"):
        old, new = dataclasses.asdict(getattr(saved, section)), dataclasses.asdict(getattr(asked, section))
        for key, value in old.items():
            if section == "model" and key in DERIVED_MODEL_KEYS:
                continue
            if not _same(section, key, value, new.get(key)):
                out.append(f"{section}.{key} (run: {value!r}, now: {new.get(key)!r})")
    return out


def resume_config(asked: Config, run_dir: Path) -> Config:
    """The config to resume ``run_dir`` with: its saved data and model sections, ``asked``'s train section.

    Raises :class:`ConfigError` naming each data / model setting of ``asked`` that differs from the run's."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():  # a run from before config.yaml was written: nothing to compare against
        return asked
    saved = Config.from_yaml(path)
    diff = differences(saved, asked)
    if diff:
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise ConfigError(
            f"train.resume: the config differs from the run's own ({path}) in {shown}. A resume trains the "
            f"same model on the same data: drop those settings (or resume with `textvae train "
            f"train.resume={run_dir}`, which reads the run's config), or start a new run"
        )
    out = copy.deepcopy(asked)
    out.data = saved.data
    trust = asked.model.trust_remote_code  # the caller's decision, never the saved file's
    out.model = saved.model
    out.model.trust_remote_code = trust
    return out


#: Model settings a fine-tuning run takes from its own config: regularisation and the objective's knobs,
#: which change how the weights are trained, not their shapes. Everything else comes from the model.
FINE_TUNE_MODEL_KEYS = frozenset(
    {
        "dropout",
        "word_dropout",
        "encoder_word_drop",
        "encoder_word_substitute",
        "encoder_shuffle",
        "free_bits",
        "free_bits_mode",
        "target_rate",
        "mmd_weight",
        "freeze_encoder_steps",
        "trust_remote_code",
    }
)

#: Data settings that shape the ids a model reads: a fine-tuning corpus is prepared as the model's was.
MODEL_DATA_KEYS = frozenset(
    {"lowercase", "word_tokenizer", "max_tokens", "tokenizer", "vocab_size", "min_frequency", "pretrained_tokenizer",
     "encoder_tokenizer"}
)  # fmt: skip


def fine_tune_config(asked: Config, model_config: Any, model_data: Any) -> Config:
    """The config of a run that starts from a trained model (``train.init_from``): the model's architecture
    and text preparation, the asked corpus, objective knobs (:data:`FINE_TUNE_MODEL_KEYS`) and training."""
    out = copy.deepcopy(asked)
    model = copy.deepcopy(model_config)
    for key in FINE_TUNE_MODEL_KEYS:
        setattr(model, key, getattr(asked.model, key))
    out.model = model
    for key in MODEL_DATA_KEYS:
        setattr(out.data, key, getattr(model_data, key))
    return out


def load_initial_model(source: str, device: torch.device, trust_remote_code: bool) -> TextVAE:
    """The trained model a fine-tuning run starts from (``train.init_from``): its weights and tokenizer."""
    from textvae.model.vae import TextVAE

    try:
        model = TextVAE.from_pretrained(source, device=device, trust_remote_code=trust_remote_code)
    except TextVAEError as e:
        raise ConfigError(f"train.init_from: {e}") from None
    if model.tokenizer is None:
        raise ConfigError(f"train.init_from: {source} has no tokenizer to read a new corpus with")
    return model


def check_resumed_model(saved: ModelConfig, current: ModelConfig) -> None:
    """A resume trains the checkpoint's model: refuse a model config that differs from it, naming the key."""
    before = dataclasses.asdict(saved)
    diff = [k for k, v in dataclasses.asdict(current).items() if before.get(k) != v]
    if diff:
        raise ConfigError(f"train.resume: model.{diff[0]} differs from the checkpoint's; resume with its config")


def with_budget(cfg: Config, max_steps: int | None) -> Config:
    """``cfg`` (changed in place and returned) trained for ``max_steps`` instead, with the KL warm-up, the
    autoencoder pretraining and the validation interval scaled by the same factor, so a shortened run still
    reaches ``beta_max`` and keeps a best checkpoint. ``None`` or the config's own budget leaves it as it is."""
    t = cfg.train
    if max_steps is not None and max_steps != t.max_steps:
        scale = max_steps / t.max_steps
        t.beta_warmup_steps = max(1, round(t.beta_warmup_steps * scale))
        t.ae_pretrain_steps = round(t.ae_pretrain_steps * scale)
        t.eval_every = max(1, min(max_steps, round(t.eval_every * scale)))
        t.max_steps = max_steps
    return cfg
