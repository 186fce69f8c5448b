"""Encoder-side input perturbation (a denoising autoencoder): what the noise does to a batch, that only the
encoder in training sees it, and that the switches are validated and train."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.config import Config, ModelConfig
from textvae.data.batching import collate
from textvae.errors import ConfigError
from textvae.model.objective import perturb_sentences
from textvae.model.vae import TextVAE

BOS, EOS, PAD, V = 1, 2, 0, 50


def framed(sentences: list[list[int]]):
    b = collate(sentences, PAD, BOS, EOS)
    return b.input_ids, b.lengths


def words_of(ids: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    return [row[1 : n - 1].tolist() for row, n in zip(ids, lengths)]


sentences = st.lists(st.lists(st.integers(4, V - 1), min_size=0, max_size=12), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(sents=sentences, drop=st.floats(0, 1), sub=st.floats(0, 1), shuffle=st.integers(0, 4), seed=st.integers(0, 99))
def test_the_frame_is_kept_and_padding_stays_padding(sents, drop, sub, shuffle, seed):
    ids, lengths = framed(sents)
    g = torch.Generator().manual_seed(seed)
    out, out_len = perturb_sentences(
        ids, lengths, drop=drop, substitute=sub, shuffle=shuffle, vocab=(4, V), pad_id=PAD, generator=g
    )
    assert out.shape[1] <= ids.shape[1] and (out_len <= lengths).all() and (out_len >= 2).all()
    for row, n in zip(out, out_len):
        assert row[0] == BOS and row[n - 1] == EOS and (row[n:] == PAD).all()
        assert ((row[1 : n - 1] >= 4) & (row[1 : n - 1] < V)).all()
    if sub == 0 and drop == 0:
        assert (out_len == lengths).all()
        for a, b in zip(words_of(out, out_len), words_of(ids, lengths)):
            assert sorted(a) == sorted(b)  # only moved


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 15), k=st.integers(0, 5), seed=st.integers(0, 99))
def test_a_local_shuffle_moves_no_word_more_than_k_places(n, k, seed):
    words = list(range(4, 4 + n))  # distinct ids, so each word's new place is known
    ids, lengths = framed([words])
    out, _ = perturb_sentences(ids, lengths, shuffle=k, generator=torch.Generator().manual_seed(seed))
    moved = words_of(out, lengths)[0]
    assert sorted(moved) == words and all(abs(moved.index(w) - i) <= k for i, w in enumerate(words))


def test_drop_and_substitute_at_the_extremes():
    ids, lengths = framed([[5, 6, 7], [8, 9]])
    gone, gone_len = perturb_sentences(ids, lengths, drop=1.0)
    assert gone_len.tolist() == [2, 2] and gone.tolist() == [[BOS, EOS], [BOS, EOS]]
    same, same_len = perturb_sentences(ids, lengths)
    assert torch.equal(same, ids) and torch.equal(same_len, lengths)
    g = torch.Generator().manual_seed(0)
    swapped, _ = perturb_sentences(ids, lengths, substitute=1.0, vocab=(40, 41), generator=g)
    assert words_of(swapped, lengths) == [[40, 40, 40], [40, 40]]
    kept_often = perturb_sentences(*framed([list(range(4, 44))] * 50), drop=0.3, generator=g)[1]
    assert 0.6 < float((kept_often - 2).float().mean() / 40) < 0.8  # about 70% of the words survive


def test_only_the_encoder_in_training_sees_the_noise():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4, encoder_word_drop=0.5,
                      encoder_word_substitute=0.3, encoder_shuffle=2)  # fmt: skip
    noisy = TextVAE(cfg)
    clean = TextVAE(ModelConfig(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4))
    clean.load_state_dict(noisy.state_dict())
    batch = collate([list(range(4, 20)), list(range(20, 30))], PAD, BOS, EOS)
    for m in (noisy, clean):
        m.eval()
    torch.testing.assert_close(noisy(batch, sample=False).loss, clean(batch, sample=False).loss)
    torch.testing.assert_close(noisy.encode_batch(batch).mu, clean.encode_batch(batch).mu)
    noisy.train()
    clean.train()
    torch.manual_seed(1)
    a = noisy(batch, sample=False)
    torch.manual_seed(1)
    b = clean(batch, sample=False)
    assert not torch.allclose(a.mu, b.mu)  # the encoder read another sentence
    assert a.num_tokens == b.num_tokens  # the decoder reconstructs the clean one
    a.loss.backward()
    assert all(p.grad is not None for p in noisy.encoder.parameters())


def test_the_switches_are_validated_and_a_run_trains_with_them(tmp_path):
    for bad in ("model.encoder_word_drop=1.5", "model.encoder_word_substitute=-0.1", "model.encoder_shuffle=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            Config().apply_overrides([bad])
    from textvae.training.trainer import Trainer

    cfg = Config.from_dict({
        "data": {"train": "synthetic", "synthetic_size": 120},
        "model": {"embedding_size": 8, "hidden_size": 12, "latent_size": 4, "encoder_word_drop": 0.2,
                  "encoder_word_substitute": 0.1, "encoder_shuffle": 3},
        "train": {"max_steps": 4, "batch_size": 16, "eval_every": 4, "progress": False, "output_dir": str(tmp_path / "r")},
    })  # fmt: skip
    result = Trainer(cfg, log=lambda s: None).fit()
    assert result["step"] == 4 and result["neg_elbo"] > 0
    assert TextVAE.from_pretrained(tmp_path / "r").config.encoder_shuffle == 3
