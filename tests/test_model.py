import pytest
import torch

from textvae.config import ModelConfig
from textvae.data.batching import collate
from textvae.errors import ModelDirError
from textvae.model.decoding import DecodingConfig, filter_logits
from textvae.model.objective import kl_term, mmd, word_dropout
from textvae.model.vae import TextVAE

V = 30


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4)
    base.update(kw)
    return ModelConfig(**base)


def batch(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(4, V, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]
    return collate(seqs, 0, 1, 2)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("cond", ["init", "concat", "both"])
@pytest.mark.parametrize("tie", [False, True])
def test_forward_backward_shapes(cell, cond, tie):
    torch.manual_seed(0)
    m = TextVAE(tiny(encoder=cell, decoder=cell, z_conditioning=cond, tie_embeddings=tie))
    b = batch()
    out = m(b, beta=0.5)
    assert out.loss.dim() == 0 and out.mu.shape == (5, 4) and out.kl_per_dim.shape == (4,)
    assert out.rec_per_sentence.shape == (5,)
    assert out.num_tokens == int((b.lengths - 1).sum())
    out.loss.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert torch.allclose(out.loss, out.rec + 0.5 * out.kl)


def test_reconstruction_is_sum_over_tokens_mean_over_sentences():
    torch.manual_seed(0)
    m = TextVAE(tiny()).eval()
    b = batch(4)
    out = m(b, sample=False)
    single = [m(collate([b.input_ids[i, 1 : b.lengths[i] - 1].tolist()], 0, 1, 2), sample=False) for i in range(4)]
    assert out.rec.item() == pytest.approx(sum(s.rec.item() for s in single) / 4, rel=1e-5)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_padding_does_not_change_encoding(pooling):
    torch.manual_seed(0)
    m = TextVAE(tiny(rnn_pooling=pooling)).eval()
    short = collate([[5, 6, 7]], 0, 1, 2)
    padded = collate([[5, 6, 7], [5] * 12], 0, 1, 2)
    mu1, _ = m.encode(short.input_ids, short.lengths)
    mu2, _ = m.encode(padded.input_ids, padded.lengths)
    torch.testing.assert_close(mu1[0], mu2[0])


def test_language_model_mode_has_no_latent():
    m = TextVAE(tiny(use_latent=False))
    out = m(batch())
    assert out.mu is None and out.kl.item() == 0.0 and torch.equal(out.loss, out.rec)
    assert len(m.generate(num=3, decoding=DecodingConfig(max_length=5))) == 3
    with pytest.raises(RuntimeError):
        m.encode(batch().input_ids, batch().lengths)


def test_free_bits_dim_blocks_gradient_below_lambda():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]], requires_grad=True)
    term = kl_term(kl, free_bits=0.5, mode="dim")
    term.backward()
    # dim 0 averages 0.2 < 0.5: clamped, no gradient; dim 1 averages 3.0: gradient 1/B per sentence.
    assert term.item() == pytest.approx(0.5 + 3.0)
    assert torch.equal(kl.grad[:, 0], torch.zeros(2))
    assert torch.allclose(kl.grad[:, 1], torch.full((2,), 0.5))


def test_free_bits_vector_mode():
    kl = torch.tensor([[0.1, 0.2]], requires_grad=True)
    term = kl_term(kl, free_bits=1.0, mode="vector")
    term.backward()
    assert term.item() == 1.0 and torch.equal(kl.grad, torch.zeros_like(kl))
    assert kl_term(torch.tensor([[1.0, 2.0]]), 1.0, "vector").item() == 3.0


def test_free_bits_in_model_no_gradient_pushes_small_dimension_down():
    torch.manual_seed(0)
    m = TextVAE(tiny(free_bits=100.0))  # every dimension far below lambda
    out = m(batch())
    kl_only = out.loss - out.rec
    kl_only.backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in m.parameters())


@pytest.mark.parametrize("mode,floor", [("dim", 40.0 / 4), ("vector", 40.0)])
def test_target_rate_sets_the_free_bits_floor_from_nats_per_sentence(mode, floor):
    m = TextVAE(tiny(target_rate=40.0, free_bits_mode=mode))
    assert m.free_bits_floor == floor and TextVAE(tiny(free_bits=0.7)).free_bits_floor == 0.7
    out = m(batch())
    # a fresh encoder's KL is far below 40 nats, so the loss's KL part is the floor and passes no gradient
    assert torch.allclose(out.loss - out.rec, torch.tensor(40.0))
    (out.loss - out.rec).backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in m.parameters())


def test_target_rate_and_free_bits_together_are_refused():
    from textvae.errors import ConfigError

    with pytest.raises(ConfigError, match="drop model.free_bits"):
        TextVAE(tiny(target_rate=10.0, free_bits=1.0))


def test_mmd_is_near_zero_for_one_distribution_and_grows_with_the_gap():
    g = torch.Generator().manual_seed(0)
    prior = torch.randn(256, 8, generator=g)
    same = mmd(torch.randn(256, 8, generator=g), prior)
    assert abs(same.item()) < 0.02
    # a shifted copy and a shrunken copy (a posterior that leaves most of the prior empty) are far off
    gaps = [mmd(prior + s, torch.randn(256, 8, generator=g)).item() for s in (0.5, 1.0, 2.0)]
    assert gaps[0] > 10 * abs(same.item()) and gaps[0] < gaps[1] < gaps[2]
    assert mmd(0.2 * prior, torch.randn(256, 8, generator=g)).item() > 0.3


def test_mmd_weight_adds_the_term_and_its_gradient_pulls_codes_towards_the_prior():
    torch.manual_seed(0)
    plain = TextVAE(tiny())
    m = TextVAE(tiny(mmd_weight=10.0))
    m.load_state_dict(plain.state_dict())
    b = batch(8)
    eps = torch.randn(8, 4)
    torch.manual_seed(1)
    out = m(b, beta=0.5, eps=eps)
    ref = plain(b, beta=0.5, eps=eps)
    assert plain(b).mmd is None and out.mmd is not None
    torch.testing.assert_close(out.loss, ref.loss + 10.0 * out.mmd)
    # codes squeezed far from the prior: a gradient step on the MMD alone spreads them out again
    z = (0.1 * torch.randn(64, 4)).requires_grad_()
    before = mmd(z, torch.randn(64, 4, generator=torch.Generator().manual_seed(2)))
    before.backward()
    with torch.no_grad():
        z -= 5.0 * z.grad
    after = mmd(z, torch.randn(64, 4, generator=torch.Generator().manual_seed(2)))
    assert after < before


def test_word_dropout_rate_and_positions():
    torch.manual_seed(0)
    ids = torch.randint(4, V, (400, 50))
    ids[:, 0] = 1
    lengths = torch.full((400,), 40)
    out = word_dropout(ids, lengths, 0.3, unk_id=3)
    real = out[:, 1:39]
    rate = (real == 3).float().mean().item()
    assert 0.28 < rate < 0.32
    assert torch.equal(out[:, 0], ids[:, 0]) and torch.equal(out[:, 39:], ids[:, 39:])
    assert torch.equal(word_dropout(ids, lengths, 0.0, 3), ids)


def test_word_dropout_only_in_training():
    torch.manual_seed(0)
    m = TextVAE(tiny(word_dropout=0.9))
    b = batch()
    m.eval()
    a1 = m(b, sample=False).rec
    a2 = m(b, sample=False).rec
    assert torch.equal(a1, a2)
    m.train()
    assert not torch.equal(m(b, sample=False).rec, a1)


def test_generate_stops_and_respects_max_length():
    torch.manual_seed(0)
    m = TextVAE(tiny()).eval()
    z = torch.randn(6, 4)
    ids = m.generate(z, decoding=DecodingConfig(max_length=7))
    assert len(ids) == 6 and all(len(x) <= 7 for x in ids) and all(2 not in x for x in ids)
    with pytest.raises(ValueError):
        DecodingConfig(max_length=10_000).validate()


def test_sampling_is_seeded_and_top_k_1_is_greedy():
    torch.manual_seed(0)
    m = TextVAE(tiny()).eval()
    z = torch.randn(4, 4)
    s = DecodingConfig(strategy="sample", max_length=8)
    a = m.generate(z, decoding=s, generator=torch.Generator().manual_seed(1))
    b = m.generate(z, decoding=s, generator=torch.Generator().manual_seed(1))
    assert a == b
    k1 = DecodingConfig(strategy="sample", top_k=1, max_length=8)
    assert m.generate(z, decoding=k1) == m.generate(z, decoding=DecodingConfig(max_length=8))


def test_filter_logits_top_p_keeps_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_logits(logits, top_p=0.75))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1


def test_save_and_load_give_identical_tensors_and_outputs(tmp_path):
    torch.manual_seed(0)
    m = TextVAE(tiny(tie_embeddings=True)).eval()
    m.save_pretrained(tmp_path / "m")
    loaded = TextVAE.from_pretrained(tmp_path / "m")
    for (k, v), (k2, v2) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    b = batch()
    assert torch.equal(m(b, sample=False).loss, loaded(b, sample=False).loss)
    assert loaded.config == m.config


@pytest.mark.parametrize("decoder", ["lstm", "transformer"])
@pytest.mark.parametrize("tie", [False, True])
def test_weights_saved_before_the_shared_output_head_still_load(tmp_path, decoder, tie):
    """Directories written when the output layer's parameters sat on the decoder itself (``decoder.output.*``,
    ``decoder.to_embedding.weight``, ``decoder.out_bias``) load into the shared :class:`OutputHead`."""
    import json

    from safetensors.torch import load_file, save_file

    from textvae.fileio import sha256_file

    torch.manual_seed(0)
    m = TextVAE(tiny(decoder=decoder, tie_embeddings=tie, num_heads=2)).eval()
    m.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    old = {k.replace("decoder.head.", "decoder."): v.contiguous() for k, v in load_file(str(weights)).items()}
    assert "decoder.head.out_bias" not in old and any(k.startswith("decoder.out") for k in old)
    save_file(old, str(weights))
    info = json.loads((tmp_path / "m" / "config.json").read_text())
    info["weights_sha256"] = sha256_file(weights)
    (tmp_path / "m" / "config.json").write_text(json.dumps(info))
    loaded = TextVAE.from_pretrained(tmp_path / "m")
    b = batch()
    assert torch.equal(m(b, sample=False).loss, loaded(b, sample=False).loss)


def test_loading_a_non_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelDirError, match="not found"):
        TextVAE.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="not a textvae model directory"):
        TextVAE.from_pretrained(tmp_path / "empty")
    torch.manual_seed(0)
    TextVAE(tiny()).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="damaged"):
        TextVAE.from_pretrained(tmp_path / "m")
