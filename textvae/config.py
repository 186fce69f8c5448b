"""Typed configuration: one dataclass per concern (data, model, training) and their union.

Every object in the package is built from these, never from argparse namespaces. A config round-trips
through plain dicts, YAML and JSON; overrides are strict ``section.key=value`` strings whose keys must
exist (an unknown key is answered with the nearest valid one) and whose values must have the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textvae.config_values import CHOICES, RANGES, coerce, unknown_key_message
from textvae.errors import ConfigError


@dataclass
class DataConfig:
    """Where the corpus comes from and how it is cleaned, split and tokenized.

    ``train`` is a path (text file, JSONL, CSV, directory of ``.txt`` files, ``save_to_disk`` folder),
    a Hugging Face dataset name, or ``synthetic`` for the embedded generator (:mod:`textvae.data.synthetic`).
    Lengths are counted in words (after word tokenization).
    """

    train: str = "synthetic"
    valid: str | None = None
    format: str = "auto"  # auto | lines | paragraphs | jsonl | csv | dir | hf | disk
    text_column: str = "text"
    label_column: str | None = None
    lowercase: bool = False
    word_tokenizer: str = "none"  # none | whitespace | treebank
    min_length: int = 1
    max_length: int = 50
    length_policy: str = "drop"  # drop | truncate (sentences longer than max_length)
    dedup: bool = False
    valid_fraction: float = 0.05  # used only when ``valid`` is not given
    seed: int = 0
    synthetic_size: int = 20000  # sentences generated when train == "synthetic"
    tokenizer: str = "word"  # word | bpe | unigram | pretrained
    vocab_size: int = 10000  # upper bound for word / bpe / unigram vocabularies, specials included
    min_frequency: int = 1  # word / bpe: rarer words map to <unk>
    pretrained_tokenizer: str | None = None  # local path (or hub name) when tokenizer == "pretrained"
    # A pretrained tokenizer (local folder or hub name) for the encoder alone, e.g. BERT's WordPiece in front of a
    # GPT-2 or trained decoder; None: the encoder reads the decoder's ids. Needed by model.encoder=pretrained
    # unless the decoder's tokenizer is that model's own.
    encoder_tokenizer: str | None = None
    max_tokens: int = 128  # hard cap on token ids per sentence after tokenization (begin/end excluded)


@dataclass
class ModelConfig:
    """Architecture and objective. ``vocab_size`` and the special-token ids are filled in from the tokenizer."""

    encoder: str = "lstm"  # lstm | gru | transformer | pretrained
    decoder: str = "lstm"  # lstm | gru | transformer | pretrained
    embedding_size: int = 256
    hidden_size: int = 512
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = True
    latent_size: int = 32
    use_latent: bool = True  # False: the same network is a plain language model (the baseline)
    # How the decoder sees z. RNN: init (initial state) | concat (concatenated to every input) | both.
    # Transformer and pretrained decoders: init = a key/value memory prefix every layer attends to (Optimus),
    # concat = a projection of z added to every input embedding, both = both.
    z_conditioning: str = "both"
    tie_embeddings: bool = False  # decoder output projection shares the input embedding matrix
    # > 0: an adaptive softmax (Grave et al. 2017) whose head holds the N most frequent tokens; the rest share
    # a narrow tail that training only computes for rare targets. 0, or N >= the vocabulary: a plain softmax.
    adaptive_softmax: int = 0
    dropout: float = 0.0  # on embeddings and decoder outputs
    word_dropout: float = 0.0  # Bowman et al. 2016: decoder inputs -> <unk> with this probability
    # Denoising (Shen et al. 2020): in training, the *encoder* reads a perturbed copy of the sentence (each
    # word deleted / replaced by a random token with these probabilities, then words moved at most
    # encoder_shuffle positions) while the decoder reconstructs the clean one, so similar sentences get
    # similar codes. 0 disables each.
    encoder_word_drop: float = 0.0
    encoder_word_substitute: float = 0.0
    encoder_shuffle: int = 0
    free_bits: float = 0.0  # nats; 0 disables
    free_bits_mode: str = "dim"  # dim: sum_i max(l, KL_i) | vector: max(l, sum_i KL_i)
    # nats per sentence; sets free bits to target_rate / latent_size per dim (mode vector: target_rate). 0: off
    target_rate: float = 0.0
    bn_gamma: float = 0.0  # BN-VAE (Zhu et al. 2020): batch-normed means, fixed scale; KL_i >= gamma^2/2. 0: off
    # InfoVAE (Zhao et al. 2019): + mmd_weight * MMD(batch's z, prior draws), nats per sentence per unit of
    # MMD. Pulls the codes of all sentences together onto N(0, I), so prior draws land where sentences are.
    mmd_weight: float = 0.0
    # The latent family (textvae.model.latent). prior: normal (N(0, I)) | mog (a learned mixture of
    # prior_components diagonal Gaussians) | vamp (VampPrior, Tomczak & Welling 2018: the mixture of the
    # posteriors of prior_components learned pseudo-sentences of vamp_length embedding vectors) | sphere
    # (uniform on the unit sphere, the prior of posterior=vmf). posterior: gaussian (diagonal) | iaf (the
    # Gaussian followed by flow_steps inverse autoregressive flow steps, Kingma et al. 2016) | vmf (von
    # Mises-Fisher of fixed concentration vmf_kappa on the unit sphere, Xu & Durrett 2018: its KL is a
    # constant, so it cannot collapse).
    prior: str = "normal"
    prior_components: int = 10
    vamp_length: int = 8
    posterior: str = "gaussian"
    flow_steps: int = 2
    flow_hidden_size: int = 0  # width of each flow step's autoregressive network; 0: 4 * latent_size
    vmf_kappa: float = 50.0
    conditional: bool = False  # conditional VAE (Sohn et al. 2015): a label embedding feeds encoder and decoder
    label_embedding_size: int = 16
    num_labels: int = 0  # filled in from the data's label column
    # Transformer trained from scratch (encoder and/or decoder): width hidden_size (token embeddings of
    # embedding_size are projected to it when they differ), depth encoder_layers / decoder_layers.
    num_heads: int = 4  # attention heads; hidden_size must be divisible by it
    ffn_size: int = 0  # feed-forward inner width; 0: 4 * hidden_size
    positions: str = "learned"  # learned | sinusoidal
    max_positions: int = 512  # learned positions: the longest sequence, <s> and </s> included
    rnn_pooling: str = "last"  # lstm / gru encoder summary: last (final states) | mean | max over outputs
    # Speed switches. skip_padding: padding never reaches a real position's RNN encoder output nor the output
    # layer (false: the naive baseline that benchmarks/performance.py --plain measures). fused_rnn: LSTMs
    # trained on a CPU in bf16 run textvae.model.fused_rnn (false: nn.LSTM always).
    skip_padding: bool = True
    fused_rnn: bool = True
    pooling: str = "mean"  # transformer / pretrained encoder summary: mean (over real tokens) | cls (first token)
    # Pretrained backbones through 🤗 transformers; a saved textvae model rebuilds them offline from its own files.
    encoder_pretrained: str | None = None  # encoder=pretrained: local folder or hub name (AutoModel, BERT-like)
    decoder_pretrained: str | None = None  # decoder=pretrained: folder or hub name (AutoModelForCausalLM, GPT-2-like)
    freeze_encoder_steps: int = 0  # the encoder's weights stay fixed for the first N optimizer steps
    trust_remote_code: bool = False  # let transformers run code shipped with a backbone: only for sources you trust
    # Derived, not set by users: the trainer fills these from the tokenizer and the label column
    # (textvae.training.runconfig.with_data_values). They live here because a saved config.json must rebuild
    # the weights' shapes and the special ids on its own, before any tokenizer file is read.
    vocab_size: int = 0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 3

    @property
    def adaptive_head(self) -> bool:
        """Whether the decoder's output layer is adaptive: ``adaptive_softmax`` set and below the vocabulary."""
        return 0 < self.adaptive_softmax < self.vocab_size


@dataclass
class TrainConfig:
    """Optimisation, schedules, validation, checkpointing. Steps count optimizer updates."""

    output_dir: str = "runs/default"
    max_steps: int = 2000
    max_minutes: float | None = None  # also stop (evaluate, save) after this much wall-clock time per invocation
    batch_size: int = 64  # sentences per batch
    max_batch_tokens: int | None = None  # if set, batches hold at most this many padded tokens
    bucket: bool = True  # group sentences of similar length into batches
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | linear | cosine (decay to 0 at max_steps) | plateau
    warmup_steps: int = 0
    grad_clip: float = 5.0
    beta_schedule: str = "linear"  # constant | linear | logistic | cyclical
    beta_max: float = 1.0
    beta_warmup_steps: int = 1000  # linear / logistic: steps to reach beta_max
    beta_cycles: int = 4  # cyclical: number of cycles over max_steps
    beta_cycle_ratio: float = 0.5  # cyclical: fraction of each cycle spent increasing
    eval_every: int = 200
    checkpoint_every: int | None = None  # steps between resumable checkpoints (default: eval_every)
    on_nonfinite: str = "skip"  # skip: drop the update (NaN/inf loss or gradient) | stop: end the run
    max_skipped_steps: int = 100  # skip mode gives up after this many skipped updates
    # ... or once this share of the updates so far was skipped (checked from step 20): it has diverged.
    max_skipped_fraction: float = 0.1
    eval_max_sentences: int | None = None  # cap on validation sentences per evaluation
    log_every: int = 20
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    # The validation figure that picks best/ and drives plateau decay and early stopping: neg_elbo (the
    # default) or objective, the loss being trained (free bits, rate target, MMD and beta_max included).
    # They differ only where the loss is not the ELBO: under a rate target the ELBO rises as the model spends
    # more of its allowed rate, so neg_elbo keeps an earlier, worse-reconstructing checkpoint.
    select_by: str = "neg_elbo"
    # lr_schedule=plateau (He et al. 2019): after lr_decay_patience validations without improvement, go back
    # to the best weights and multiply the lr by lr_decay_factor; a plateau after max_lr_decays ends the run.
    lr_decay_factor: float = 0.5
    lr_decay_patience: int = 2
    max_lr_decays: int = 5
    # Autoencoder pretraining (Li et al. 2019): beta = 0 for the first ae_pretrain_steps, then the decoder is
    # re-initialised (reset_decoder) and VAE training starts; the beta schedule counts from there.
    ae_pretrain_steps: int = 0
    reset_decoder: bool = True
    # Aggressive inference-network training (He et al. 2019, textvae.training.aggressive): before each step
    # the encoder alone is updated (at most aggressive_max_inner times) until its loss stops falling.
    aggressive: bool = False
    aggressive_max_inner: int = 100
    seed: int = 0
    resume: str | None = None  # a run directory (or its last/ checkpoint) to continue
    # A trained model (directory, run directory or Hub id) to start from: its weights, tokenizer, architecture
    # and text preparation; the data, the objective's knobs and training come from this config (fine-tuning).
    init_from: str | None = None
    # Experiment trackers besides metrics.jsonl, each an optional extra: tensorboard ([tracking]), wandb,
    # mlflow. They get every record's scalars, KL per dimension, and at each validation a few
    # reconstructions and prior samples as text (and the KL-per-dimension figure, with matplotlib).
    loggers: list[str] = field(default_factory=list)
    log_examples: int = 4  # reconstructions and samples sent to the trackers at each validation
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # Training matmuls in bfloat16 (autocast): auto = where the hardware does it natively (CUDA with bf16,
    # CPUs with AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than float32. Validation is float32.
    precision: str = "auto"  # auto | float32 | bfloat16
    compile: bool = False  # torch.compile the training model (pays a compilation delay at the start)
    fused_optimizer: bool = True  # AdamW's fused kernel (cpu, cuda); false: the per-tensor implementation
    progress: bool = True
    au_threshold: float = 0.01


@dataclass
class Config:
    """The whole configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # -- conversion ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """Build from a nested dict; unknown sections or keys raise :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a mapping of sections, got {type(d).__name__}")
        cfg = cls()
        for section, values in d.items():
            if section not in _SECTIONS:
                raise ConfigError(unknown_key_message(section, list(_SECTIONS)))
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"config section '{section}' must be a mapping")
            for key, value in values.items():
                cfg.set(f"{section}.{key}", value)
        return cfg

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
        return cls.from_dict(d or {})

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    # -- overrides -----------------------------------------------------------------------------
    def set(self, dotted_key: str, value: Any) -> None:
        """Set ``section.key`` to ``value`` (coerced and checked against the field's type)."""
        section, _, key = dotted_key.partition(".")
        if section not in _SECTIONS:
            raise ConfigError(unknown_key_message(dotted_key, all_keys()))
        obj = getattr(self, section)
        fields = {f.name: f for f in dataclasses.fields(obj)}
        if key not in fields:
            raise ConfigError(unknown_key_message(dotted_key, all_keys()))
        hint = typing.get_type_hints(type(obj))[key]
        value = coerce(dotted_key, value, hint)
        choices = CHOICES.get(dotted_key)
        for item in value if isinstance(value, list) else [value]:
            if choices is not None and item is not None and item not in choices:
                raise ConfigError(f"{dotted_key} must be one of {', '.join(choices)}; got {item!r}")
        low, high = RANGES.get(dotted_key, (None, None))
        if value is not None and ((low is not None and value < low) or (high is not None and value > high)):
            where = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{dotted_key} must be {where}; got {value!r}")
        setattr(obj, key, value)

    def apply_overrides(self, overrides: list[str]) -> Config:
        """Apply ``key=value`` strings in order; values are parsed as YAML scalars (``null`` is None)."""
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' must look like section.key=value (e.g. train.max_steps=100)")
            key, _, raw = item.partition("=")
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            self.set(key.strip(), value)
        return self


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def all_keys() -> list[str]:
    """Every valid dotted key, e.g. ``train.max_steps``."""
    return [f"{s}.{f.name}" for s, c in _SECTIONS.items() for f in dataclasses.fields(c)]
