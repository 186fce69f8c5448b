"""Speed on this machine: training throughput, generation and importance-weighted NLL.

Every part measures the optimised code and the ``--plain`` baseline side by side, interleaved, in one run
(the machine may be shared: medians of several repetitions, and ratios from the same run):

* **train** -- real (non-padding) target tokens per second of full training steps (forward, backward,
  optimizer), the model FLOPs they amount to (an analytic count for LSTM/GRU models, real tokens only)
  and that as a fraction of the matrix-product peak *of the precision that mode trains in* (bfloat16
  where the hardware has native bf16 units and ``train.precision=auto`` picks it, else float32); both
  peaks are measured at the start of the same run and reported. Repetitions are interleaved and their
  spread is reported too: under load from another process they vary several-fold.
  Plain: random (not length-bucketed) batches padded to the longest, the encoder and the logits computed
  at every padded position, float32, the per-tensor (not fused) AdamW.
* **generate** -- sentences per second from the prior, greedy and nucleus (top-p 0.9), one sentence at a
  time (the plain way) and batched (finished sentences leave the batch).
* **lstm** (``--parts lstm``, CPU) -- one LSTM layer at the config's decoder shape, forward and backward:
  PyTorch's kernel in float32 and bf16 autocast against textvae's fused layer, GFLOP/s.
* **iwnll** -- sentences per second of the K-sample importance-weighted NLL with the K samples batched
  through the decoder, and one sample per decoder call (plain).

    python benchmarks/performance.py                                  # PTB LSTM config, every part
    python benchmarks/performance.py --parts train --repeats 5 --json perf.json
    python benchmarks/performance.py --plain                          # the baseline alone
    python benchmarks/performance.py --config configs/sentences.yaml --parts train \
        --train-file my_corpus.txt --against model.adaptive_softmax=0    # one switch, side by side
    python benchmarks/performance.py --model runs/ptb-lstm --parts generate   # a trained model
    python benchmarks/performance.py --device cuda                    # on a GPU (benchmarks/gpu.sh)

Without ``--model`` the model is the config's architecture with random weights: generation then runs
every sentence to the maximum length (an untrained decoder rarely picks the end token), an upper bound.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from textvae.config import Config, ModelConfig
from textvae.data.batching import batch_indices, collate
from textvae.evaluation.likelihood import iw_nll
from textvae.model.adaptive_softmax import TAIL_DIVISOR
from textvae.model.decoding import DecodingConfig
from textvae.model.fused_rnn import run_fused
from textvae.model.precision import cpu_has_native_bf16
from textvae.model.vae import TextVAE
from textvae.training.devices import resolve_device
from textvae.training.trainer import Trainer

PTB_TEST_SENTENCES = 3761

PLAIN = [
    "train.bucket=false",
    "train.max_batch_tokens=null",
    "model.skip_padding=false",
    "train.precision=float32",
    "train.fused_optimizer=false",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 7, device: torch.device | str = "cpu"
) -> float:
    """Median GFLOP/s of an ``n x n`` matrix product in ``dtype`` on ``device``: the practical matmul limit.
    (On a CPU without bf16 units the bfloat16 figure is PyTorch's emulation: a floor, not a target.)"""
    device = torch.device(device)
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def applicable_peak(trainer: Trainer, peaks: dict[str, float]) -> tuple[str, float]:
    """``(precision, GFLOP/s)``: the peak of the precision this trainer's matmuls run in."""
    precision = "bfloat16" if trainer.autocast_dtype == torch.bfloat16 else "float32"
    return precision, peaks[precision]


def _rnn_flops(cell: str, inp: int, hidden: int) -> int:
    """Forward FLOPs of one RNN step, one direction: gates x (input + recurrent) matrix-vector products."""
    gates = {"lstm": 4, "gru": 3}[cell]
    return 2 * gates * hidden * (inp + hidden)


def _transformer_flops(m: ModelConfig, layers: int, n: np.ndarray, causal: bool, memory: int) -> float:
    """Forward FLOPs of a Transformer stack over sentences of ``n`` positions: per position the input
    projection (when the embedding width differs), QKV, output and feed-forward products; attention
    (scores and weighted values, 4 x width per key) over the keys each position sees (all ``n``, or the
    ``i + 1`` before it when causal, plus ``memory`` z slots)."""
    d, f = m.hidden_size, m.ffn_size or 4 * m.hidden_size
    per_position = layers * (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * f)
    per_position += 2 * m.embedding_size * d if m.embedding_size != d else 0
    keys = (n * (n + 1) / 2 if causal else n * n) + n * memory  # keys seen, summed over positions
    return float((n * per_position).sum() + layers * 4 * d * keys.sum())


def head_flops(m: ModelConfig, positions: int, tail_targets: int = 0) -> float:
    """Forward FLOPs of the output layer at ``positions`` real target positions, ``tail_targets`` of them
    rare tokens: the full vocabulary projection, or with ``model.adaptive_softmax`` the head at every
    position and the narrow tail only at the rare targets (what training computes)."""
    h = m.hidden_size
    if m.adaptive_head:
        width = max(1, h // TAIL_DIVISOR)
        tail = 2 * h * width + 2 * width * (m.vocab_size - m.adaptive_softmax)
        return float(positions * 2 * h * (m.adaptive_softmax + 1) + tail_targets * tail)
    return float(positions * (2 * h * m.vocab_size + (2 * h * m.embedding_size if m.tie_embeddings else 0)))


def training_flops(m: ModelConfig, words: np.ndarray, tail_targets: int = 0) -> float | None:
    """Model FLOPs of one training step (forward + backward = 3x forward) on sentences of ``words`` tokens,
    counting real positions only (``tail_targets``: how many targets fall in an adaptive softmax's tail);
    None for pretrained backbones (not modelled here)."""
    if "pretrained" in (m.encoder, m.decoder):
        return None
    enc_n, dec_n = words + 2, words + 1  # <s> w .. </s> read by the encoder; <s> w .. predicting w .. </s>
    forward = 0.0
    if m.use_latent and m.encoder in ("lstm", "gru"):
        dirs = 2 if m.bidirectional else 1
        enc_step = sum(
            dirs * _rnn_flops(m.encoder, m.embedding_size if i == 0 else dirs * m.hidden_size, m.hidden_size)
            for i in range(m.encoder_layers)
        )
        forward += float(enc_n.sum()) * enc_step
    elif m.use_latent:
        forward += _transformer_flops(m, m.encoder_layers, enc_n, causal=False, memory=0)
    conditioned = m.use_latent or m.conditional
    if m.decoder in ("lstm", "gru"):
        dec_in = m.embedding_size + (m.latent_size if conditioned and m.z_conditioning in ("concat", "both") else 0)
        dec_step = sum(
            _rnn_flops(m.decoder, dec_in if i == 0 else m.hidden_size, m.hidden_size) for i in range(m.decoder_layers)
        )
        forward += float(dec_n.sum()) * dec_step
    else:
        memory = int(conditioned and m.z_conditioning in ("init", "both"))
        forward += _transformer_flops(m, m.decoder_layers, dec_n, causal=True, memory=memory)
    forward += head_flops(m, int(dec_n.sum()), tail_targets)  # real target positions only
    return 3.0 * forward


def make_trainer(args: argparse.Namespace, plain: bool, tag: str, extra: list[str] | None = None) -> Trainer:
    overrides = [
        *args.overrides,
        *(extra or []),
        f"train.output_dir={Path(args.work_dir) / tag}",
        "train.progress=false",
    ]
    if args.device:
        overrides += [f"train.device={args.device}"]
    if args.train_file:
        overrides += [f"data.train={args.train_file}"]
    cfg = Config.from_yaml(args.config).apply_overrides(overrides + (PLAIN if plain else []))
    trainer = Trainer(cfg, log=lambda s: None)
    trainer._setup()  # data, model, optimizer, exactly as `textvae train` builds them
    return trainer


def tail_targets(trainer: Trainer, idx: np.ndarray) -> int:
    """How many of the batch's targets are rare tokens in an adaptive softmax's tail (0 without one)."""
    m = trainer.config.model
    if not m.adaptive_head:
        return 0
    b = trainer.data.train.collate(idx)
    real = torch.arange(b.input_ids.shape[1] - 1) < (b.lengths - 1).unsqueeze(1)
    return int(((b.input_ids[:, 1:] >= m.adaptive_softmax) & real).sum())


def time_training(trainer: Trainer, epoch: int, steps: int, warmup: int) -> dict:
    """Run ``warmup + steps`` real training steps; figures for the timed ones."""
    tc = trainer.config.train
    batches = batch_indices(
        trainer.data.train.lengths + 2,
        tc.batch_size,
        seed=tc.seed,
        epoch=epoch,
        bucket=tc.bucket,
        max_batch_tokens=tc.max_batch_tokens,
    )
    for idx in batches[:warmup]:
        trainer._train_step(idx)
    timed = batches[warmup : warmup + steps]
    _sync(trainer.device)
    t0 = time.perf_counter()
    for idx in timed:
        trainer._train_step(idx)
    _sync(trainer.device)
    seconds = time.perf_counter() - t0
    tokens, flops, padded = 0, 0.0, 0  # counted after the clock stops: none of it is training work
    for idx in timed:
        words = trainer.data.train.lengths[idx]
        tokens += int((words + 1).sum())
        padded += len(idx) * int(words.max() + 1)
        flops += training_flops(trainer.config.model, words, tail_targets(trainer, idx)) or float("nan")
    return {
        "tokens_per_sec": tokens / seconds,
        "gflops_per_sec": flops / seconds / 1e9,
        "padding_fraction": 1 - tokens / padded,
    }


def bench_train(args: argparse.Namespace, peaks: dict[str, float]) -> dict:
    modes = ["plain"] if args.plain else ["optimised", "against" if args.against else "plain"]
    trainers = {
        mode: make_trainer(args, mode == "plain", mode, args.against if mode == "against" else None) for mode in modes
    }
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for r in range(args.repeats):
        for mode in modes:  # interleaved: both modes see the same machine load
            runs[mode].append(time_training(trainers[mode], r, args.steps, args.warmup))
    out = {}
    for mode in modes:
        med = {k: statistics.median(x[k] for x in runs[mode]) for k in runs[mode][0]}
        med["precision"], med["peak_gflops"] = applicable_peak(trainers[mode], peaks)
        med["fraction_of_peak"] = med["gflops_per_sec"] / med["peak_gflops"]
        rates = [x["tokens_per_sec"] for x in runs[mode]]
        med["all_tokens_per_sec"] = [round(x, 1) for x in rates]
        med["spread"] = max(rates) / min(rates)  # > 1.2: the machine was busy; trust the ratio, not the rate
        out[mode] = med
    if len(modes) == 2:  # the config as given against the baseline (plain, or the --against overrides)
        out["speedup"] = out["optimised"]["tokens_per_sec"] / out[modes[1]]["tokens_per_sec"]
    if args.against:
        out["against_overrides"] = args.against
    model = trainers[modes[0]].config.model
    out["model"] = {k: getattr(model, k) for k in ("encoder", "decoder", "embedding_size", "hidden_size", "vocab_size")}
    out["batch_size"] = trainers[modes[0]].config.train.batch_size
    return out


def bench_lstm(args: argparse.Namespace, native: bool) -> dict:
    """GFLOP/s of one LSTM layer's forward + backward at the config's decoder shape (batch x 25 steps):
    PyTorch's kernel in float32 and under bf16 autocast, and textvae's fused layer (model.fused_rnn)."""
    m = Config.from_yaml(args.config).apply_overrides(args.overrides).model
    batch, steps, inp, hidden = 32, 25, m.embedding_size + m.latent_size, m.hidden_size
    rnn = torch.nn.LSTM(inp, hidden, batch_first=True)
    x = torch.randn(batch, steps, inp, requires_grad=True)
    flops = 3 * _rnn_flops("lstm", inp, hidden) * batch * steps

    def run(kind: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=kind != "native float32"):
            y = run_fused(rnn, x, None)[0] if kind == "fused bfloat16" else rnn(x)[0]
        y.float().sum().backward()

    kinds = ["native float32", "native bfloat16", "fused bfloat16"] if native else ["native float32"]
    out = {}
    for kind in kinds:
        run(kind)  # warm-up
        times = []
        for _ in range(max(args.repeats, 5)):
            t0 = time.perf_counter()
            run(kind)
            times.append(time.perf_counter() - t0)
        out[kind] = flops / statistics.median(times) / 1e9
        print(f"lstm layer {inp}->{hidden}, batch {batch} x {steps}, {kind}: {out[kind]:.1f} GFLOP/s", flush=True)
    return out


def load_model(args: argparse.Namespace) -> TextVAE:
    if args.model:
        return TextVAE.from_pretrained(args.model)
    trainer = make_trainer(args, False, "model")
    return trainer.model.eval()


def _rate(fn: Callable[[], int], repeats: int) -> float:
    """Median items per second of ``fn`` (which returns how many items it produced)."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_generate(args: argparse.Namespace, model: TextVAE, precision: str) -> dict:
    """Sentences per second from the prior with the model's matrix products in ``precision``."""
    model.set_precision(precision)
    out = {}
    strategies = {
        "greedy": DecodingConfig(max_length=args.max_length),
        "nucleus": DecodingConfig(strategy="sample", top_p=0.9, max_length=args.max_length),
    }
    g = torch.Generator(model.device).manual_seed(0)
    for name, dec in strategies.items():

        def one_by_one(dec=dec) -> int:
            for _ in range(args.single):
                model.generate(model.sample_prior(1, g), decoding=dec, generator=g)
            return args.single

        def batched(dec=dec) -> int:
            return len(model.generate(model.sample_prior(args.num, g), decoding=dec, generator=g))

        with torch.inference_mode():
            if not args.plain:
                out[f"{name}_batched"] = _rate(batched, args.repeats)
            out[f"{name}_batch1"] = _rate(one_by_one, args.repeats)
    if "greedy_batched" in out:
        out["seconds_for_1000_greedy"] = 1000 / out["greedy_batched"]
    with torch.inference_mode():  # how long the sentences were (a random model runs to --max-length)
        lengths = [len(x) for x in model.generate(model.sample_prior(200, g), decoding=strategies["greedy"])]
    out["mean_greedy_length"] = statistics.mean(lengths)
    return out


def bench_iwnll(args: argparse.Namespace, model: TextVAE, precision: str) -> dict:
    """Sentences per second of the K-sample bound with the matrix products in ``precision``, and the
    bound itself (the same sentences and samples for every precision, so they can be compared)."""
    model.set_precision(precision)
    rng = np.random.default_rng(0)
    words = rng.integers(10, 30, args.iw_sentences)  # PTB-like lengths
    ids = [rng.integers(4, model.config.vocab_size, n).tolist() for n in words]
    specials = (model.config.pad_id, model.config.bos_id, model.config.eos_id)
    batch = collate(ids, *specials)
    out = {}
    modes = {"plain": 1} if args.plain else {"batched": 256, "plain": 1}
    with torch.inference_mode():
        for mode, chunk in modes.items():
            sub = batch if mode == "batched" else collate(ids[: args.iw_plain_sentences], *specials)
            g = torch.Generator(model.device).manual_seed(0)
            out[f"{mode}_sentences_per_sec"] = _rate(
                lambda sub=sub, chunk=chunk, g=g: len(
                    iw_nll(model, sub, args.iw_samples, chunk_size=chunk, generator=g)
                ),
                1 if mode == "plain" else args.repeats,
            )
        g = torch.Generator(model.device).manual_seed(0)
        out["mean_nll"] = float(iw_nll(model, batch, args.iw_samples, chunk_size=256, generator=g).mean())
    if len(modes) == 2:
        out["speedup"] = out["batched_sentences_per_sec"] / out["plain_sentences_per_sec"]
    out["samples"] = args.iw_samples
    out["minutes_for_ptb_test"] = PTB_TEST_SENTENCES / out.get("batched_sentences_per_sec", math.nan) / 60
    return out


def bench_inference(args: argparse.Namespace, parts: list[str], native: bool) -> dict:
    """generate / iwnll in float32 and, where the hardware has native bf16, in bfloat16: side by side."""
    model = load_model(args)
    precisions = ["float32", "bfloat16"] if native else ["float32"]
    if args.precision != "both":
        precisions = [args.precision]
    result: dict = {}
    for part, bench in (("generate", bench_generate), ("iwnll", bench_iwnll)):
        if part not in parts:
            continue
        result[part] = {}
        for precision in precisions:
            r = result[part][precision] = bench(args, model, precision)
            for k, v in r.items():
                print(f"{part} {precision} {k}: {v:.3f}", flush=True)
        if len(precisions) == 2:
            key = "greedy_batched" if part == "generate" else "batched_sentences_per_sec"
            if key in result[part]["float32"]:
                result[part]["bf16_speedup"] = result[part]["bfloat16"][key] / result[part]["float32"][key]
    if "iwnll" in result and len(precisions) == 2:
        nll = [result["iwnll"][p]["mean_nll"] for p in precisions]
        result["iwnll"]["bf16_relative_difference"] = abs(nll[1] - nll[0]) / abs(nll[0])
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/ptb-lstm.yaml")
    p.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    p.add_argument("--train-file", help="corpus for the training part (default: the config's data.train)")
    p.add_argument("--model", help="a trained model directory for generate / iwnll (default: random weights)")
    p.add_argument("--parts", default="train,generate,iwnll")
    p.add_argument("--plain", action="store_true", help="measure only the baseline (every optimisation off)")
    p.add_argument(
        "--against",
        nargs="+",
        metavar="KEY=VALUE",
        help="train part: compare the config with these overrides instead of the plain baseline "
        "(e.g. --against model.adaptive_softmax=0)",
    )
    p.add_argument("--steps", type=int, default=12, help="timed training steps per repetition")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num", type=int, default=1000, help="batched generation: sentences per call")
    p.add_argument("--single", type=int, default=10, help="batch-1 generation: sentences per repetition")
    p.add_argument("--max-length", type=int, default=40)
    p.add_argument("--iw-samples", type=int, default=500)
    p.add_argument("--iw-sentences", type=int, default=8)
    p.add_argument("--iw-plain-sentences", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--precision",
        default="both",
        choices=["both", "float32", "bfloat16"],
        help="generate / iwnll: float32, bfloat16, or both side by side (bf16 only with native units)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the config's train.device)")
    p.add_argument("--work-dir", default="/tmp/textvae-perf")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    device = resolve_device(args.device or Config.from_yaml(args.config).apply_overrides(args.overrides).train.device)
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    # Emulated bf16 is ~400x slower than float32 on an AVX2 CPU (a minute for one 2048 product): measure it
    # on a small product there, for the record only (no mode trains in it).
    bf16 = matmul_peak(torch.bfloat16, device=device) if native else matmul_peak(torch.bfloat16, 256, 3, device)
    peaks = {"float32": matmul_peak(torch.float32, device=device), "bfloat16": bf16}
    result: dict = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "native_bf16": native,
            "matmul_peak_gflops_fp32": peaks["float32"],
            "matmul_peak_gflops_bf16": peaks["bfloat16"],
        },
        "config": args.config,
        "overrides": args.overrides,
    }
    print(
        f"matmul peak on {device}: float32 {peaks['float32']:.1f}, bfloat16 {peaks['bfloat16']:.1f} GFLOP/s "
        f"({torch.get_num_threads()} threads; native bf16: {result['machine']['native_bf16']})",
        flush=True,
    )
    if "train" in parts:
        result["train"] = bench_train(args, peaks)
        for mode in ("optimised", "against", "plain"):
            if mode in result["train"]:
                r = result["train"][mode]
                print(
                    f"train {mode:9s}: {r['tokens_per_sec']:8.1f} real tokens/s, {r['gflops_per_sec']:6.1f} "
                    f"GFLOP/s = {r['fraction_of_peak']:.0%} of the {r['precision']} peak, padding "
                    f"{r['padding_fraction']:.0%}, spread of repetitions {r['spread']:.2f}x",
                    flush=True,
                )
        if "speedup" in result["train"]:
            base = "with " + " ".join(args.against) if args.against else "plain"
            print(f"train speedup (as configured / {base}, same run): {result['train']['speedup']:.2f}x", flush=True)
    if "lstm" in parts and device.type == "cpu":
        result["lstm"] = bench_lstm(args, native)
    if "generate" in parts or "iwnll" in parts:
        result.update(bench_inference(args, parts, native))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {result['peak_rss_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
