"""The values a config key accepts: the choices of string fields, the bounds of numeric ones, and the
conversion of YAML / command-line values to each field's type (with messages that name the key)."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from textvae.errors import ConfigError

#: Allowed values of the string fields that name a choice. Later backbones extend these tuples.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.format": ("auto", "lines", "paragraphs", "jsonl", "csv", "dir", "hf", "disk"),
    "data.word_tokenizer": ("none", "whitespace", "treebank"),
    "data.length_policy": ("drop", "truncate"),
    "data.tokenizer": ("word", "bpe", "unigram", "pretrained"),
    "model.encoder": ("lstm", "gru", "transformer", "pretrained"),
    "model.decoder": ("lstm", "gru", "transformer", "pretrained"),
    "model.z_conditioning": ("init", "concat", "both"),
    "model.positions": ("learned", "sinusoidal"),
    "model.pooling": ("mean", "cls"),
    "model.rnn_pooling": ("last", "mean", "max"),
    "model.free_bits_mode": ("dim", "vector"),
    "model.prior": ("normal", "mog", "vamp", "sphere"),
    "model.posterior": ("gaussian", "iaf", "vmf"),
    "train.lr_schedule": ("constant", "linear", "cosine", "plateau"),
    "train.on_nonfinite": ("skip", "stop"),
    "train.select_by": ("neg_elbo", "objective"),
    "train.beta_schedule": ("constant", "linear", "logistic", "cyclical"),
    "train.precision": ("auto", "float32", "bfloat16"),
    "train.loggers": ("tensorboard", "wandb", "mlflow"),
}

#: Inclusive bounds of numeric fields whose other values would be silently meaningless (None: unbounded).
RANGES: dict[str, tuple[float | None, float | None]] = {
    "model.dropout": (0.0, 1.0),
    "model.word_dropout": (0.0, 1.0),
    "model.encoder_word_drop": (0.0, 1.0),
    "model.encoder_word_substitute": (0.0, 1.0),
    "model.encoder_shuffle": (0, None),
    "model.free_bits": (0.0, None),
    "model.target_rate": (0.0, None),
    "model.mmd_weight": (0.0, None),
    "model.prior_components": (1, None),
    "model.vamp_length": (1, None),
    "model.flow_steps": (1, None),
    "model.flow_hidden_size": (0, None),
    "model.vmf_kappa": (1e-3, 1e4),
    # A zero-width code would train a whole run of a VAE that encodes nothing (model.use_latent=false is
    # the language-model baseline); zero-width layers fail deep inside torch.
    "model.latent_size": (1, None),
    "model.embedding_size": (1, None),
    "model.hidden_size": (1, None),
    "model.adaptive_softmax": (0, None),
    "train.max_skipped_fraction": (0.0, 1.0),
    "model.bn_gamma": (0.0, None),
    "train.lr_decay_factor": (1e-6, 1.0),
    "train.lr_decay_patience": (1, None),
    "train.max_lr_decays": (0, None),
    "train.ae_pretrain_steps": (0, None),
    "train.aggressive_max_inner": (1, None),
}


def unknown_key_message(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not close:  # a misspelt section with a valid key: match on the key part alone
        tail = key.rpartition(".")[2]
        close = [c for c in candidates if c.rpartition(".")[2] == tail][:1]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown config key '{key}'{hint}"


def coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field type (int, float, bool, str, or ``X | None``)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    kind = list if typing.get_origin(hint) is list else hint
    convert = _CONVERTERS.get(kind)
    if convert is None:
        raise ConfigError(f"{key}: unsupported field type {hint}")  # pragma: no cover - config bug
    out = convert(value)
    if out is _INVALID:
        raise ConfigError(f"{key} expects {_EXPECTED[kind].format(key=key)}, got {value!r}")
    return out


_INVALID = object()  # what a converter returns for a value of the wrong type


def _to_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _INVALID


def _to_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else _INVALID


def _to_float(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    return _INVALID


def _to_str(value: Any) -> Any:
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else _INVALID


def _to_names(value: Any) -> Any:
    if isinstance(value, str):  # "a,b" on the command line; "" for none
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        return _INVALID
    return list(value)


_CONVERTERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, list: _to_names}
_EXPECTED = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list of names, e.g. {key}=[a,b]",
}
