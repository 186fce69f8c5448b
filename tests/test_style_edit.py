"""Style transfer by editing (textvae.inference.style_edit), on tiny models."""

import dataclasses

import pytest
import torch
from test_latent_use import by_sentiment  # synthetic sentences grouped by their sentiment

from textvae.config import DataConfig, ModelConfig
from textvae.data import synthetic
from textvae.data.tokenizer import train_tokenizer
from textvae.errors import ParameterError
from textvae.inference import style_edit
from textvae.inference.style import SHIFT_MODES, shifted_texts, transfer_attribute
from textvae.inference.style_edit import EditSettings, _Scorer, edit_transfer, example_word_shares
from textvae.model.vae import TextVAE


@pytest.fixture(scope="module")
def vae() -> TextVAE:
    texts = [s.text for s in synthetic.generate(200, seed=3)]
    dcfg = DataConfig(lowercase=True, max_length=20)
    tok = train_tokenizer(texts, dcfg)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=12, latent_size=3)
    return TextVAE(cfg, tok, dcfg).eval()


@pytest.fixture(scope="module")
def codes(vae) -> dict[str, torch.Tensor]:
    return {k: vae.encode_text(v).mu for k, v in by_sentiment(80, seed=5).items()}


def scorer(vae, ids, codes, alpha=1.0) -> _Scorer:
    z = vae.encode_batch(vae.batch_from_ids(ids)).mu
    moved = style_edit.shift(z, style_edit.local_attribute_vectors(z, codes["negative"], codes["positive"]), alpha)
    return _Scorer(vae, z, moved, codes["negative"], codes["positive"])


def objective(sc: _Scorer, ids, cfg: EditSettings) -> torch.Tensor:
    return sc.style(ids).clamp(max=cfg.goal) - cfg.fluency_weight * sc.nll(ids, torch.arange(len(ids)))


def edits_apart(a: list[int], b: list[int]) -> int:
    """Levenshtein distance of two id lists."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def test_word_log_probs_line_up_with_the_sentence_nll(vae, codes):
    """Position p of word_log_probs scores word p (and position n the end token): off by one, the sum
    would not be the decoder's own NLL."""
    ids = vae.token_ids(by_sentiment(20, seed=1)["negative"][:4])
    sc = scorer(vae, ids, codes)
    with torch.no_grad():
        logp = sc.word_log_probs(ids, sc.moved)
    for i, x in enumerate(ids):
        total = logp[i, torch.arange(len(x)), x].sum() + logp[i, len(x), vae.config.eos_id]
        assert float(-total) == pytest.approx(float(sc.nll([x], torch.tensor([i])).detach()), rel=1e-4)


def test_style_gain_is_zero_for_the_word_already_there_and_first_order_right(vae, codes):
    ids = vae.token_ids(by_sentiment(20, seed=1)["negative"][:3])
    sc = scorer(vae, ids, codes)
    gain = sc.style_gain(ids)
    for i, x in enumerate(ids):
        assert torch.allclose(gain[i, torch.arange(len(x)), x], torch.zeros(len(x)), atol=1e-5)
        assert (gain[i, :, sc.banned] == style_edit.NEVER).all()
    # Moving one word's embedding a little along another's changes the style score as the gain says.
    table = vae.encoder.input_embeddings()
    x, p, v = ids[0], 1, 7
    b = vae.batch_from_ids([x])
    emb = table(b.input_ids).detach()
    eps = 1e-3
    moved = emb.clone()
    moved[0, p + 1] += eps * (table.weight[v] - table.weight[x[p]])  # +1: after <s>

    def score(e):
        mu, logvar = vae.to_posterior(vae.encoder.forward_embeddings(e, b.lengths)).float().chunk(2, -1)
        return (vae.posterior_from_head(mu, logvar)[0] @ sc.w - sc.low) / sc.gap

    with torch.no_grad():
        finite = (score(moved) - score(emb)) / eps
    assert float(finite) == pytest.approx(float(gain[0, p, v]), rel=1e-2, abs=1e-4)
    assert all(p.grad is None for p in vae.parameters())  # the model's own gradients are left alone


def test_edits_raise_the_objective_within_the_edit_budget_and_never_write_special_tokens(vae, codes):
    ids = vae.token_ids(by_sentiment(30, seed=2)["negative"][:6]) + [[]]
    settings = (EditSettings(max_edits=2), EditSettings(max_edits=3, fluency_weight=0.0, goal=5.0))
    for cfg in settings:
        out = style_edit._edit_batch(vae, [list(x) for x in ids], codes["negative"], codes["positive"], 1.5, cfg)
        assert out[-1] == []  # an empty sentence comes back as it was
        sc = scorer(vae, ids[:-1], codes, alpha=1.5)
        before, after = objective(sc, ids[:-1], cfg), objective(sc, out[:-1], cfg)
        assert (after >= before - 1e-5).all() and (after > before + 1e-6).any()
        for x, y in zip(ids, out):
            assert edits_apart(x, y) <= cfg.max_edits and len(y) >= len(x) - cfg.max_edits
            assert not set(y) & {vae.config.pad_id, vae.config.bos_id, vae.config.eos_id, vae.config.unk_id}


def test_a_sentence_already_at_the_goal_is_left_alone(vae, codes):
    ids = vae.token_ids(by_sentiment(30, seed=2)["positive"][:5])
    # Source examples far on the other side: every sentence scores most of the way to the target style.
    far = codes["negative"] - 10 * (codes["positive"].mean(0) - codes["negative"].mean(0))
    z = vae.encode_batch(vae.batch_from_ids(ids)).mu
    assert (_Scorer(vae, z, z, far, codes["positive"]).style(ids) > 0.5).all()
    assert edit_transfer(vae, ids, far, codes["positive"], settings=EditSettings(goal=0.5)) == ids


def test_the_edit_shift_runs_through_the_text_functions_and_checks_its_input(vae, codes):
    assert "edit" in SHIFT_MODES
    sents = by_sentiment(20, seed=4)["negative"][:3]
    out = transfer_attribute(vae, sents, codes, "positive", alpha=1.0, shift_mode="edit")
    direct = edit_transfer(vae, vae.token_ids(sents), codes["negative"], codes["positive"], 1.0)
    assert out == vae.decode_ids(direct, readable=True)
    z = vae.encode_text(sents).mu
    with pytest.raises(ParameterError, match="token ids"):
        shifted_texts(vae, z, codes["negative"], codes["positive"], 1.0, "edit")
    with pytest.raises(ParameterError, match="negative"):
        edit_transfer(vae, vae.token_ids(sents), codes["negative"], codes["positive"], -1.0)
    with pytest.raises(ParameterError, match="goal"):
        edit_transfer(vae, vae.token_ids(sents), codes["negative"], codes["positive"], settings=EditSettings(goal=0))


def test_without_embedding_gradients_the_search_still_edits(vae, codes, monkeypatch):
    ids = vae.token_ids(by_sentiment(30, seed=2)["negative"][:4])
    monkeypatch.setattr(vae.encoder, "input_embeddings", lambda: None)
    assert scorer(vae, ids, codes).style_gain(ids) is None
    out = edit_transfer(vae, ids, codes["negative"], codes["positive"], 1.5, EditSettings(max_edits=2))
    assert len(out) == len(ids) and any(x != y for x, y in zip(ids, out))


@pytest.mark.parametrize(
    "model",
    [
        {"encoder": "gru", "decoder": "gru", "rnn_pooling": "mean", "z_conditioning": "both"},
        {"encoder": "transformer", "decoder": "transformer", "num_heads": 2},
        {"adaptive_softmax": 12},
        {"precision": "bfloat16"},
    ],
    ids=["gru", "transformer", "adaptive-softmax", "bf16"],
)
def test_every_architecture_edits_within_its_budget(model):
    texts = [s.text for s in synthetic.generate(200, seed=3)]
    dcfg = DataConfig(lowercase=True, max_length=20)
    tok = train_tokenizer(texts, dcfg)
    torch.manual_seed(0)
    precision = model.pop("precision", None)
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=12, latent_size=3, **model)
    vae = TextVAE(cfg, tok, dcfg).eval()
    if precision:
        vae.set_precision(precision)
    if cfg.adaptive_softmax:
        assert cfg.adaptive_head
    codes = {k: vae.encode_text(v).mu for k, v in by_sentiment(80, seed=5).items()}
    ids = vae.token_ids(by_sentiment(30, seed=2)["negative"][:5])
    out = edit_transfer(vae, ids, codes["negative"], codes["positive"], 2.0, EditSettings(max_edits=2))
    assert len(out) == len(ids) and any(x != y for x, y in zip(ids, out))
    for x, y in zip(ids, out):
        assert edits_apart(x, y) <= 2 and not set(y) & {cfg.pad_id, cfg.bos_id, cfg.eos_id, cfg.unk_id}


def test_an_unknown_word_is_never_edited(vae, codes):
    unk = vae.config.unk_id
    ids = [x[:2] + [unk] + x[2:] for x in vae.token_ids(by_sentiment(30, seed=2)["negative"][:6])]
    out = edit_transfer(vae, ids, codes["negative"], codes["positive"], 2.0, EditSettings(max_edits=3, goal=9.0))
    assert any(x != y for x, y in zip(ids, out))
    assert all(y.count(unk) == 1 for y in out)  # kept where it was: neither replaced nor deleted


def test_word_shares_count_sentences_not_tokens(vae):
    a, b = by_sentiment(20, seed=6)["negative"][:2]
    shares = example_word_shares(vae, {"x": [a, f"{a} {a}", ""], "y": [b]})  # "" is no example
    ids_a, ids_b = (set(x) for x in vae.token_ids([a, b]))
    expected = torch.zeros(vae.config.vocab_size)
    for ids, n in ((ids_a, 2), (ids_b, 1)):
        expected[sorted(ids)] += n
    assert torch.equal(shares, expected / 3)  # a word said twice in one sentence counts once
    assert float(shares.max()) <= 1.0


def test_only_words_common_in_the_examples_are_written(vae, codes):
    examples = by_sentiment(80, seed=5)
    shares = example_word_shares(vae, examples)
    ids = vae.token_ids(by_sentiment(30, seed=2)["negative"][:8])
    cfg = EditSettings(max_edits=3, goal=9.0, min_share=0.2)
    free = edit_transfer(vae, ids, codes["negative"], codes["positive"], 2.0, cfg)
    kept = edit_transfer(vae, ids, codes["negative"], codes["positive"], 2.0, cfg, word_shares=shares)
    written = [set(y) - set(x) for x, y in zip(ids, kept)]
    assert any(x != y for x, y in zip(ids, kept))
    assert all(float(shares[w]) >= 0.2 for new in written for w in new)
    # Without the shares the search does write rarer words: the limit is what kept them out.
    assert any(float(shares[w]) < 0.2 for x, y in zip(ids, free) for w in set(y) - set(x))
    # min_share 0 lets any word be written: the same edits as without shares.
    anyword = EditSettings(max_edits=3, goal=9.0, min_share=0.0)
    assert edit_transfer(vae, ids, codes["negative"], codes["positive"], 2.0, anyword, word_shares=shares) == free
    # So few words allowed that a position has fewer than `words` of them: still none of the others.
    only = torch.zeros_like(shares)
    only[sorted(set(ids[0]))[:2]] = 1.0
    few = edit_transfer(vae, ids, codes["negative"], codes["positive"], 2.0, cfg, word_shares=only)
    special = {vae.config.pad_id, vae.config.bos_id, vae.config.eos_id, vae.config.unk_id}
    assert all(float(only[w]) == 1.0 and w not in special for x, y in zip(ids, few) for w in set(y) - set(x))
    with pytest.raises(ParameterError, match="one value per word"):
        edit_transfer(vae, ids, codes["negative"], codes["positive"], word_shares=shares[:-1])
    with pytest.raises(ParameterError, match="min_share"):
        EditSettings(min_share=1.5).validate()


def test_a_language_model_adds_its_nll_to_the_cost_and_is_checked(vae, codes):
    torch.manual_seed(1)
    cfg = ModelConfig(vocab_size=vae.config.vocab_size, embedding_size=8, hidden_size=12, use_latent=False)
    lm = TextVAE(cfg, vae.require_tokenizer(), vae.data_config).eval()
    ids = vae.token_ids(by_sentiment(30, seed=2)["negative"][:6])
    settings = EditSettings(max_edits=3, lm_weight=0.5)
    out = edit_transfer(vae, ids, codes["negative"], codes["positive"], 1.5, settings, lm=lm)
    sc = scorer(vae, ids, codes, alpha=1.5)

    def with_lm(seqs):
        b = lm.batch_from_ids(seqs)
        return objective(sc, seqs, settings) - settings.lm_weight * lm.sentence_nll(b.input_ids, b.lengths, None)[0]

    assert (with_lm(out) >= with_lm(ids) - 1e-5).all()  # the search climbs the objective with the LM's term
    assert out != edit_transfer(vae, ids, codes["negative"], codes["positive"], 1.5, settings)  # and it counts
    with pytest.raises(ParameterError, match="language model"):
        edit_transfer(vae, ids, codes["negative"], codes["positive"], lm=vae)
    other = train_tokenizer(["a different corpus of words"], DataConfig(lowercase=True))
    stranger = TextVAE(dataclasses.replace(cfg, vocab_size=other.vocab_size), other, vae.data_config)
    with pytest.raises(ParameterError, match="vocabulary"):
        edit_transfer(vae, ids, codes["negative"], codes["positive"], lm=stranger)
    with pytest.raises(ParameterError, match="weights"):
        EditSettings(lm_weight=-1).validate()
