"""Saved models are directories: ``config.json`` + ``model.safetensors`` + the tokenizer's files.

Weights are only ever read from safetensors (no pickle). The config records the tokenizer's vocabulary
size and fingerprint, so a directory whose tokenizer does not match its weights is refused.

Optional parts: ``encoder_tokenizer/`` (an encoder with a tokenizer of its own) and, for pretrained
backbones, ``backbone_encoder/`` / ``backbone_decoder/`` holding the backbone's 🤗 ``config.json`` only: loading
builds the architecture from it and fills it from ``model.safetensors``, so nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from textvae.config import Config, ModelConfig
from textvae.errors import ConfigError, ModelDirError
from textvae.fileio import atomic_write_text, fsync_path, sha256_file
from textvae.version import __version__

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_SUBDIR = "tokenizer"
ENCODER_TOKENIZER_SUBDIR = "encoder_tokenizer"
BACKBONE_SUBDIRS = {"encoder": "backbone_encoder", "decoder": "backbone_decoder"}
MODEL_TYPE = "textvae"  # config.json's "model_type"; directories saved before it existed load the same


def save_model_dir(model: TextVAE, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the model into ``directory`` (created if needed). ``extra`` is stored in config.json as-is."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "model_type": MODEL_TYPE,  # lets transformers.AutoConfig read this file (textvae.hf_config)
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
    _save_backbone_parts(model, directory, info)
    info.update(extra or {})
    weights = directory / WEIGHTS_NAME
    save_model(model, str(weights))
    fsync_path(weights)
    # The checksum lets a load tell a damaged (truncated, bit-flipped) weights file from a valid one.
    info["weights_sha256"] = sha256_file(weights)
    atomic_write_text(directory / CONFIG_NAME, json.dumps(info, indent=2))
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


def load_model_dir(
    model_class: type[TextVAE],
    directory: str | Path,
    device: str | torch.device = "cpu",
    *,
    trust_remote_code: bool = False,
) -> TextVAE:
    """Rebuild a ``model_class`` (:class:`TextVAE`) from a saved local directory (see module docstring);
    :meth:`TextVAE.from_pretrained` resolves Hub ids to one first. The class is passed in, not imported, so
    this module depends on the model only through its constructor.

    ``trust_remote_code`` comes from the caller only: the directory's own ``config.json`` records the flag
    it was trained with, but a downloaded directory could set it to run its code, so that value is ignored.
    """
    from textvae.data.tokenizer import TextTokenizer

    d = resolve_model_dir(directory)
    info = read_config(d)
    try:
        cfg = Config.from_dict({"model": info["model"], "data": info.get("data") or {}})
    except ConfigError as e:
        raise ModelDirError(f"{d / CONFIG_NAME}: {e}") from None
    cfg.model.trust_remote_code = trust_remote_code
    tokenizer = None
    if (d / TOKENIZER_SUBDIR).is_dir():
        tokenizer = TextTokenizer.load(d / TOKENIZER_SUBDIR, trust_remote_code)
        _check_tokenizer(d, info, tokenizer, cfg.model)
    elif info.get("tokenizer"):  # saved with one: a model that cannot turn text into ids is incomplete
        raise ModelDirError(
            f"{d} has no {TOKENIZER_SUBDIR}/ folder although it was saved with a {info['tokenizer'].get('kind')} "
            "tokenizer; copy it back from the original model directory or retrain"
        )
    weights = d / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelDirError(f"{d} has no {WEIGHTS_NAME}; the checkpoint is incomplete")
    recorded = info.get("weights_sha256")
    if not recorded:
        warn_unverified(weights)
    elif sha256_file(weights) != recorded:
        raise ModelDirError(f"{weights} is damaged (checksum mismatch); restore it from a backup or retrain")
    encoder_tokenizer = _load_encoder_tokenizer(d, info, cfg)
    model = model_class(cfg.model, tokenizer, cfg.data, backbone_configs=_load_backbone_configs(d, cfg.model))
    model.encoder_tokenizer = encoder_tokenizer
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


def warn_unverified(path: Path) -> None:
    """Loading a file whose checksum is not recorded: say so, since damage can then go unnoticed."""
    warnings.warn(
        f"{path.parent / CONFIG_NAME} records no checksum for {path.name}; its integrity cannot be checked "
        "(an entry removed by hand, or a directory written by another tool)",
        UserWarning,
        stacklevel=3,
    )


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


# -- encoder tokenizer and pretrained backbones ----------------------------------------------------------


def _replace_dir(path: Path, write: Any) -> None:
    """Write a sub-folder from scratch (``write(path)``), so no file of an older save lingers in it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    write(path)


def _save_backbone_parts(model: TextVAE, directory: Path, info: dict[str, Any]) -> None:
    """Write the encoder's own tokenizer (recorded in ``info``) and the pretrained backbones' 🤗 configs."""
    enc_tok = model.encoder_tokenizer if model.has_latent else None
    if enc_tok is not None:
        _replace_dir(directory / ENCODER_TOKENIZER_SUBDIR, enc_tok.save)
        info["encoder_tokenizer"] = {
            "kind": enc_tok.kind,
            "vocab_size": enc_tok.vocab_size,
            "fingerprint": enc_tok.fingerprint(),
        }
    for role, sub in BACKBONE_SUBDIRS.items():
        hf_config = getattr(getattr(model, role), "hf_config", None)
        if hf_config is not None:
            _replace_dir(directory / sub, lambda d, c=hf_config: c.save_pretrained(str(d)))


def _load_encoder_tokenizer(d: Path, info: dict[str, Any], cfg: Config) -> Any:
    """The saved ``encoder_tokenizer/`` of a model whose encoder has its own tokenizer, else None."""
    from textvae.data.tokenizer import TextTokenizer

    if not (cfg.data.encoder_tokenizer and cfg.model.use_latent):
        return None
    sub = d / ENCODER_TOKENIZER_SUBDIR
    if not sub.is_dir():
        raise ModelDirError(f"{d} has no {ENCODER_TOKENIZER_SUBDIR}/ for its encoder; the checkpoint is incomplete")
    tok = TextTokenizer.load(sub, cfg.model.trust_remote_code)
    recorded = (info.get("encoder_tokenizer") or {}).get("fingerprint")
    if recorded and recorded != tok.fingerprint():
        raise ModelDirError(f"{sub}: the encoder's tokenizer differs from the one it was trained with")
    return tok


def _load_backbone_configs(d: Path, model_cfg: ModelConfig) -> dict[str, Any]:
    """The saved 🤗 configs of the pretrained backbones, ``{"encoder": ..., "decoder": ...}``."""
    wanted = {
        "encoder": model_cfg.use_latent and model_cfg.encoder == "pretrained",
        "decoder": model_cfg.decoder == "pretrained",
    }
    out: dict[str, Any] = {}
    for role, sub in BACKBONE_SUBDIRS.items():
        if not wanted[role]:
            continue
        if not (d / sub / CONFIG_NAME).is_file():
            raise ModelDirError(
                f"{d} has no {sub}/{CONFIG_NAME} for its pretrained {role}; the checkpoint is incomplete"
            )
        from transformers import AutoConfig

        try:
            out[role] = AutoConfig.from_pretrained(str(d / sub), trust_remote_code=model_cfg.trust_remote_code)
        except Exception as e:  # unreadable JSON, unknown model type, remote code not allowed
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelDirError(f"{d / sub} cannot be read ({reason}); restore it or retrain") from None
    return out
