"""Decoding strategies: greedy, sampling, beam search (tiny random models, plus a fixed-distribution stub)."""

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

import textvae.model.decoding as decoding
from textvae.config import ModelConfig
from textvae.model.decoders import Decoder
from textvae.model.decoding import MAX_GENERATION_LENGTH, DecodingConfig, filter_logits, generate
from textvae.model.vae import TextVAE

V, BOS, EOS = 30, 1, 2
GREEDY = DecodingConfig(max_length=12)


def tiny_model(seed: int = 0, vocab_size: int = V, eos_bias: float = 0.0, **kw) -> TextVAE:
    """A random tiny model; ``eos_bias`` makes the end token likelier (shorter, more varied lengths)."""
    torch.manual_seed(seed)
    m = TextVAE(ModelConfig(vocab_size=vocab_size, embedding_size=8, hidden_size=12, latent_size=4, **kw)).eval()
    with torch.no_grad():
        m.decoder.head.output.bias[EOS] += eos_bias
    return m


def decode(m: TextVAE, z: Tensor | None, cfg: DecodingConfig, num: int | None = None, generator=None) -> list:
    n = num if num is not None else z.shape[0]
    return generate(m.decoder, z, n, BOS, EOS, cfg, generator)


def beam(k: int, lp: float = 1.0, max_length: int = 12) -> DecodingConfig:
    return DecodingConfig(strategy="beam", beam_size=k, length_penalty=lp, max_length=max_length)


@torch.no_grad()
def log_probs(m: TextVAE, z: Tensor | None, outputs: list[list[int]], max_length: int) -> list[float]:
    """Teacher-forced log p(output | z) for each output (``z [N, Z]`` or None), in one decoder call; the
    end token is scored unless the output was cut at ``max_length``."""
    targets = [ids + ([EOS] if len(ids) < max_length else []) for ids in outputs]
    width = max(len(t) for t in targets)
    inp = torch.tensor([[BOS] + t[:-1] + [0] * (width - len(t)) for t in targets])
    tgt = torch.tensor([t + [0] * (width - len(t)) for t in targets])
    mask = torch.tensor([[i < len(t) for i in range(width)] for t in targets])
    hidden, _ = m.decoder(inp, z)
    logp = m.decoder.project(hidden).log_softmax(dim=-1).gather(2, tgt.unsqueeze(2)).squeeze(2)
    return (logp * mask).sum(dim=1).tolist()


class FixedDecoder(Decoder):
    """Ignores its inputs: every step's next-token distribution is ``probs`` (zeros allowed)."""

    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        self.vocab_size = len(probs)
        self.register_buffer("logits", torch.tensor(probs).log())
        self.dummy = nn.Parameter(torch.zeros(1))  # generate finds the device through the parameters

    def forward(self, input_ids: Tensor, z: Tensor | None, state=None) -> tuple[Tensor, int]:
        return torch.zeros(*input_ids.shape, 1), (state or 0) + input_ids.shape[1]

    def project(self, hidden: Tensor) -> Tensor:
        return self.logits.expand(*hidden.shape[:-1], -1).clone()

    def reorder_state(self, state, index: Tensor):
        return state


# Token 4 has 0.5, 5 has 0.3, 3 has 0.15, 0 has 0.05; <s> and </s> can't be drawn (max_length 1: one token each).
PROBS = [0.05, 0.0, 0.0, 0.15, 0.5, 0.3]


def token_freqs(cfg: DecodingConfig, n: int = 4000, seed: int = 0) -> Tensor:
    out = generate(FixedDecoder(PROBS), None, n, BOS, EOS, cfg, torch.Generator().manual_seed(seed))
    assert all(len(x) == 1 for x in out)
    return torch.bincount(torch.tensor([x[0] for x in out]), minlength=len(PROBS)).float() / n


# -- greedy equivalences ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("lp", [0.0, 1.0])
def test_beam_width_1_is_greedy(cell, lp):
    lengths = set()
    for seed in range(3):
        m = tiny_model(seed, decoder=cell, eos_bias=0.5)
        z = torch.randn(8, 4)
        greedy = decode(m, z, GREEDY)
        lengths |= {len(x) for x in greedy}
        assert decode(m, z, beam(1, lp)) == greedy
    assert len(lengths) > 2  # lengths vary: stopping and dropping finished sentences are exercised


def test_top_k_1_and_tiny_temperature_sampling_are_greedy():
    for seed in range(3):
        m = tiny_model(seed)
        z = torch.randn(8, 4)
        greedy = decode(m, z, GREEDY)
        g = torch.Generator().manual_seed(seed)
        assert decode(m, z, DecodingConfig(strategy="sample", top_k=1, max_length=12), generator=g) == greedy
        cold = DecodingConfig(strategy="sample", temperature=1e-8, max_length=12)
        assert decode(m, z, cold, generator=g) == greedy
        # An absurdly small temperature still gives greedy, not NaN.
        assert decode(m, z, DecodingConfig(strategy="sample", temperature=1e-30, max_length=12)) == greedy


# -- beam search quality ---------------------------------------------------------------------------


def test_beam_log_prob_at_least_greedy():
    # "Beam >= greedy" is not a theorem: the greedy prefix can be pushed out of the beam by K prefixes
    # that are better *so far* and then all end badly. On these near-uniform random models that happens
    # for 1 of the 50 codes (seed 1, code 4: greedy -36.495, beam 5 -36.555, both cut at max_length;
    # beam 8 finds greedy's again); test_beam_is_exact_when_it_holds_every_prefix checks optimality exactly.
    diffs = []
    for seed in range(5):
        m = tiny_model(seed)
        z = torch.randn(10, 4)
        lg = log_probs(m, z, decode(m, z, GREEDY), 12)
        lb = log_probs(m, z, decode(m, z, beam(5, lp=0.0)), 12)
        diffs += [b - g for g, b in zip(lg, lb)]
    diffs = torch.tensor(diffs)
    assert (diffs < -1e-4).sum() <= 1 and diffs.min() > -0.1  # never worse by more than a hair
    assert (diffs > 1e-4).sum() >= 30 and diffs.mean() > 1.0  # and usually clearly better


@pytest.mark.parametrize("lp", [0.0, 0.5, 1.0])
def test_beam_is_exact_when_it_holds_every_prefix(lp):
    # Vocabulary 6, max_length 3: 156 possible outputs; beam 36 keeps every prefix, so it must return the
    # best output by log p / len**lp (len counts the end token) -- checks scoring, truncation and stopping.
    m = tiny_model(1, vocab_size=6)
    words = [t for t in range(6) if t != EOS]
    outputs = [list(s) for n in range(4) for s in itertools.product(words, repeat=n)]
    norm = [(len(s) + (len(s) < 3)) ** lp for s in outputs]
    for zi in torch.randn(3, 4):
        scores = log_probs(m, zi.expand(len(outputs), -1), outputs, 3)
        best_score, best = max((s / n, o) for s, n, o in zip(scores, norm, outputs))
        (got,) = decode(m, zi.unsqueeze(0), beam(36, lp, max_length=3))
        assert got == best, (got, best)
        (got_score,) = log_probs(m, zi.unsqueeze(0), [got], 3)
        assert got_score / (len(got) + (len(got) < 3)) ** lp == pytest.approx(best_score, abs=1e-5)


def test_beam_wider_than_vocabulary_and_max_length_1():
    m = tiny_model(0, vocab_size=6)
    z = torch.randn(4, 4)
    assert decode(m, z, beam(10, max_length=1)) == decode(m, z, DecodingConfig(max_length=1))
    assert all(len(x) <= 5 and EOS not in x for x in decode(m, z, beam(50, max_length=5)))


# -- sampling ----------------------------------------------------------------------------------------


def test_sampling_is_seeded_and_reproducible():
    m = tiny_model(0)
    z = torch.randn(6, 4)
    cfg = DecodingConfig(strategy="sample", max_length=12, top_p=0.9)
    a = decode(m, z, cfg, generator=torch.Generator().manual_seed(1))
    assert a == decode(m, z, cfg, generator=torch.Generator().manual_seed(1))
    assert a != decode(m, z, cfg, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    b = decode(m, z, cfg)  # generator=None: the global generator
    torch.manual_seed(5)
    assert b == decode(m, z, cfg)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, PROBS),
        ({"temperature": 0.5}, [p * p / 0.365 for p in PROBS]),  # p**2, renormalised
        ({"top_p": 0.75}, [0, 0, 0, 0, 0.625, 0.375]),  # smallest set reaching 0.75: {4, 5}
        ({"top_p": 0.81}, [0, 0, 0, 0.15 / 0.95, 0.5 / 0.95, 0.3 / 0.95]),
        ({"top_p": 0.01}, [0, 0, 0, 0, 1, 0]),
        ({"top_k": 2}, [0, 0, 0, 0, 0.625, 0.375]),
        ({"top_k": 3, "top_p": 0.75}, [0, 0, 0, 0, 0.625, 0.375]),  # nucleus of the renormalised top 3
    ],
)
def test_sampling_distribution(kw, expected):
    freqs = token_freqs(DecodingConfig(strategy="sample", max_length=1, **kw))
    expected = torch.tensor(expected, dtype=torch.float)
    assert torch.all(freqs[expected == 0] == 0)  # filtered tokens are never drawn
    torch.testing.assert_close(freqs, expected, atol=0.03, rtol=0)


def test_nucleus_outside_the_candidates_falls_back_to_a_full_sort(monkeypatch):
    cfg = DecodingConfig(strategy="sample", max_length=1, top_p=0.75)
    fast = token_freqs(cfg, n=500)
    monkeypatch.setattr(decoding, "NUCLEUS_CANDIDATES", 1)  # the nucleus {4, 5} no longer fits
    assert torch.equal(token_freqs(cfg, n=500), fast)


def test_filter_logits_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    kept = lambda **kw: torch.isfinite(filter_logits(logits, **kw)).tolist()[0]  # noqa: E731
    assert kept(top_p=0.75) == [False, True, False, True]
    assert kept(top_p=0.81) == [False, True, True, True]
    assert kept(top_p=0.01) == [False, True, False, False]
    assert kept(top_k=3, top_p=0.5) == [False, True, False, False]


# -- length, end token, batching, language model ---------------------------------------------------


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
@pytest.mark.parametrize("max_length", [1, 3, 9])
def test_max_length_respected_and_no_end_token(strategy, max_length):
    lengths = set()
    for seed in range(3):
        m = tiny_model(seed)
        cfg = DecodingConfig(strategy=strategy, max_length=max_length, beam_size=3)
        out = decode(m, torch.randn(16, 4), cfg, generator=torch.Generator().manual_seed(seed))
        assert len(out) == 16 and all(len(x) <= max_length and EOS not in x for x in out)
        assert all(isinstance(t, int) and 0 <= t < V for x in out for t in x)
        lengths |= {len(x) for x in out}
    assert max_length in lengths and (max_length == 1 or len(lengths) > 1)


@pytest.mark.parametrize("cfg", [GREEDY, beam(4, lp=0.0), beam(4, lp=1.0)], ids=["greedy", "beam-lp0", "beam-lp1"])
def test_batched_equals_one_at_a_time(cfg):
    lengths = set()
    for seed in (1, 3):
        m = tiny_model(seed, eos_bias=0.5)
        z = torch.randn(6, 4)
        together = decode(m, z, cfg)
        assert together == [decode(m, z[i : i + 1], cfg)[0] for i in range(6)]
        lengths |= {len(x) for x in together}
    assert len(lengths) > 2  # sentences leave the batch at different steps


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_language_model_mode(strategy):
    m = tiny_model(0, use_latent=False)
    cfg = DecodingConfig(strategy=strategy, max_length=8)
    out = decode(m, None, cfg, num=4, generator=torch.Generator().manual_seed(0))
    assert len(out) == 4 and all(len(x) <= 8 and EOS not in x for x in out)
    assert len(m.generate(num=3, decoding=cfg)) == 3
    if strategy == "beam":
        assert decode(m, None, beam(1), num=2) == decode(m, None, GREEDY, num=2)


def test_zero_sentences():
    assert decode(tiny_model(0), torch.zeros(0, 4), beam(3)) == []
    assert decode(tiny_model(0), torch.zeros(0, 4), GREEDY) == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"strategy": "nucleus"}, "unknown decoding strategy 'nucleus'"),
        ({"strategy": "beam", "beam_size": 0}, "beam_size must be >= 1"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_length": 0}, "max_length"),
        ({"max_length": MAX_GENERATION_LENGTH + 1}, "max_length"),
        ({"length_penalty": -1.0}, "length_penalty"),
        ({"length_penalty": math.inf}, "length_penalty"),
    ],
)
def test_invalid_configs_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        DecodingConfig(**kw).validate()
    with pytest.raises(ValueError, match=match):
        decode(tiny_model(0), torch.randn(2, 4), DecodingConfig(**kw))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cpu_generator_drives_gpu_sampling():
    m = tiny_model(0).cuda()
    z = torch.randn(6, 4, device="cuda")
    cfg = DecodingConfig(strategy="sample", max_length=10)
    a = decode(m, z, cfg, generator=torch.Generator().manual_seed(3))
    assert a == decode(m, z, cfg, generator=torch.Generator().manual_seed(3))
    assert decode(m, z, beam(3)) == decode(m.cpu(), z.cpu(), beam(3))
