"""Saved models are directories: ``config.json`` + ``model.safetensors`` + the tokenizer's files.

Weights are only ever read from safetensors (no pickle). The config records the tokenizer's vocabulary
size and fingerprint, so a directory whose tokenizer does not match its weights is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from textvae import __version__
from textvae.config import Config, ModelConfig
from textvae.errors import ConfigError, ModelDirError

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_SUBDIR = "tokenizer"


def save_model_dir(model: TextVAE, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the model into ``directory`` (created if needed). ``extra`` is stored in config.json as-is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "textvae_version": __version__,
        "torch_version": torch.__version__,
        "model": dataclasses.asdict(model.config),
        "data": dataclasses.asdict(model.data_config),
        "label_names": list(model.label_names),
    }
    if model.tokenizer is not None:
        tok_dir = directory / TOKENIZER_SUBDIR
        if tok_dir.exists():
            shutil.rmtree(tok_dir)
        model.tokenizer.save(tok_dir)
        info["tokenizer"] = {
            "kind": model.tokenizer.kind,
            "vocab_size": model.tokenizer.vocab_size,
            "fingerprint": model.tokenizer.fingerprint(),
        }
    info.update(extra or {})
    save_model(model, str(directory / WEIGHTS_NAME))
    tmp = directory / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
    os.replace(tmp, directory / CONFIG_NAME)
    return directory


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory, or a run directory (its ``best/``, else ``last/``, checkpoint)."""
    p = Path(path)
    if not p.exists():
        raise ModelDirError(f"model directory not found: {p}")
    if not p.is_dir():
        raise ModelDirError(f"{p} is a file; pass the model directory that contains {CONFIG_NAME}")
    if (p / CONFIG_NAME).is_file():
        return p
    for sub in ("best", "last"):
        if (p / sub / CONFIG_NAME).is_file():
            return p / sub
    raise ModelDirError(f"{p} is not a textvae model directory (no {CONFIG_NAME}); pass a run's best/ or last/")


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model directory."""
    d = resolve_model_dir(directory)
    try:
        info = json.loads((d / CONFIG_NAME).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{d / CONFIG_NAME} is damaged ({e}); restore it or retrain") from None
    if not isinstance(info, dict) or "model" not in info:
        raise ModelDirError(f"{d / CONFIG_NAME} has no 'model' section; it was not written by textvae")
    return info


def load_model_dir(directory: str | Path, device: str | torch.device = "cpu") -> TextVAE:
    """Rebuild a :class:`TextVAE` from a saved directory (see module docstring)."""
    from textvae.data.tokenizer import TextTokenizer
    from textvae.model.vae import TextVAE

    d = resolve_model_dir(directory)
    info = read_config(d)
    try:
        cfg = Config.from_dict({"model": info["model"], "data": info.get("data") or {}})
    except ConfigError as e:
        raise ModelDirError(f"{d / CONFIG_NAME}: {e}") from None
    tokenizer = None
    if (d / TOKENIZER_SUBDIR).is_dir():
        tokenizer = TextTokenizer.load(d / TOKENIZER_SUBDIR)
        _check_tokenizer(d, info, tokenizer, cfg.model)
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelDirError(f"{d} has no {WEIGHTS_NAME}; the checkpoint is incomplete")
    model = TextVAE(cfg.model, tokenizer, cfg.data)
    model.label_names = [str(x) for x in info.get("label_names") or []]
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ModelDirError(f"{weights} cannot be loaded ({str(e).splitlines()[0]}); it is damaged") from None
    if missing or unexpected:
        raise ModelDirError(
            f"{weights} does not match config.json (missing {sorted(missing)[:3]}, unexpected "
            f"{sorted(unexpected)[:3]}); the directory mixes files from different models"
        )
    return model.to(device).eval()


def _check_tokenizer(d: Path, info: dict[str, Any], tokenizer: Any, model_cfg: ModelConfig) -> None:
    recorded = info.get("tokenizer") or {}
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise ModelDirError(
            f"{d}: tokenizer has {tokenizer.vocab_size} tokens but the weights expect {model_cfg.vocab_size}; "
            "the tokenizer files do not belong to this model"
        )
    if recorded.get("fingerprint") and recorded["fingerprint"] != tokenizer.fingerprint():
        raise ModelDirError(
            f"{d}: tokenizer vocabulary differs from the one the model was trained with (fingerprint mismatch)"
        )
