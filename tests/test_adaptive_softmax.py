"""The adaptive softmax (``model.adaptive_softmax``): a proper distribution whose scores match the fast
target-only path, the switch's fallbacks and refusals, and a model that trains, decodes and reloads with it."""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.config import Config, ModelConfig
from textvae.data.batching import collate
from textvae.errors import ConfigError
from textvae.model.adaptive_softmax import AdaptiveHead
from textvae.model.base import OutputHead
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE

V = 40


def tiny(**kw) -> TextVAE:
    torch.manual_seed(0)
    base = dict(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4, adaptive_softmax=10, num_heads=2)
    return TextVAE(ModelConfig(**(base | kw)))


BATCH = collate([[5, 6, 30, 8, 39], [11, 12], [13, 25, 15]], 0, 1, 2)


@settings(max_examples=25, deadline=None)
@given(head=st.integers(1, 29), seed=st.integers(0, 1000))
def test_log_probabilities_are_normalised_and_match_the_target_only_scores(head, seed):
    torch.manual_seed(seed)
    layer = AdaptiveHead(hidden_size=12, vocab_size=30, head_size=head)
    hidden = torch.randn(9, 12)
    targets = torch.randint(0, 30, (9,))
    logp = layer(hidden)
    assert logp.shape == (9, 30)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(9), atol=1e-5)
    assert torch.allclose(layer.token_nll(hidden, targets), -logp.gather(1, targets[:, None]).squeeze(1), atol=1e-5)


def test_only_rare_targets_reach_the_tail():
    layer = AdaptiveHead(hidden_size=12, vocab_size=30, head_size=10)
    hidden = torch.randn(4, 12)
    layer.token_nll(hidden, torch.tensor([0, 3, 9, 9])).sum().backward()
    assert all(p.grad is None for p in layer.tail.parameters())
    layer.token_nll(hidden, torch.tensor([0, 3, 9, 29])).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.tail.parameters())


@pytest.mark.parametrize("decoder", ["gru", "lstm", "transformer"])
def test_a_vae_with_the_adaptive_head_agrees_with_its_own_log_probabilities(decoder):
    m = tiny(encoder="gru", decoder=decoder).eval()
    assert isinstance(m.decoder.head, AdaptiveHead)
    out = m(BATCH, sample=False)
    code = m.decoder_code(out.mu, None)
    hidden, _ = m.decoder(BATCH.input_ids[:, :-1], code)
    logp = m.decoder.project(hidden)  # [B, T, V]
    targets = BATCH.input_ids[:, 1:]
    mask = torch.arange(targets.shape[1]) < (BATCH.lengths - 1)[:, None]
    per_sentence = -(logp.gather(2, targets.unsqueeze(-1)).squeeze(-1) * mask).sum(1)
    assert torch.allclose(out.rec_per_sentence, per_sentence, atol=1e-4)
    out = m.train()(BATCH, beta=0.5)
    out.loss.backward()
    assert m.decoder.head.head.weight.grad is not None and m.decoder.head.tail[0].weight.grad is not None


def test_greedy_decoding_and_reloading_work_with_the_adaptive_head(tmp_path):
    m = tiny().eval()
    z = torch.randn(3, 4)
    ids = m.generate(z, decoding=DecodingConfig(strategy="greedy", max_length=6))
    assert len(ids) == 3 and all(0 <= t < V for row in ids for t in row)
    m.save_pretrained(tmp_path / "m")
    loaded = TextVAE.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.adaptive_softmax == 10 and isinstance(loaded.decoder.head, AdaptiveHead)
    assert torch.equal(m(BATCH, sample=False).loss, loaded(BATCH, sample=False).loss)
    assert loaded.generate(z, decoding=DecodingConfig(strategy="greedy", max_length=6)) == ids


def test_a_head_as_large_as_the_vocabulary_falls_back_to_the_plain_softmax():
    assert isinstance(tiny(adaptive_softmax=V).decoder.head, OutputHead)
    assert isinstance(tiny(adaptive_softmax=0).decoder.head, OutputHead)
    assert isinstance(tiny(adaptive_softmax=V - 1).decoder.head, AdaptiveHead)


def test_refused_combinations_and_values():
    with pytest.raises(ConfigError, match="tie_embeddings"):
        tiny(tie_embeddings=True)
    with pytest.raises(ConfigError, match="pretrained decoder"):
        tiny(decoder="pretrained")
    with pytest.raises(ConfigError, match="at least 0"):
        Config().apply_overrides(["model.adaptive_softmax=-5"])


def test_training_through_the_cli_with_an_adaptive_head_then_reconstructing(tmp_path, capsys):
    from textvae.cli import main

    corpus = tmp_path / "mine.txt"
    words = [f"w{i}" for i in range(30)]
    corpus.write_text("".join(f"the {words[i % 30]} saw {words[(7 * i) % 30]} .\n" for i in range(200)))
    run = tmp_path / "run"
    config = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    args = ["train", str(config), f"data.train={corpus}", f"train.output_dir={run}", "model.adaptive_softmax=8",
            "model.embedding_size=16", "model.hidden_size=24", "model.latent_size=4", "train.max_steps=6",
            "train.eval_every=6", "train.batch_size=16", "train.progress=false"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    model = TextVAE.from_pretrained(run / "best")
    assert isinstance(model.decoder.head, AdaptiveHead) and model.config.vocab_size > 8
    assert main(["reconstruct", str(run / "best"), "the w3 saw w21 ."]) == 0
    assert capsys.readouterr().out.strip()
