"""Measurements of what users do with the latent space (textvae.evaluation.latent_use), on tiny models."""

import math

import numpy as np
import pytest
import torch

from textvae.config import DataConfig, ModelConfig
from textvae.data import synthetic
from textvae.data.tokenizer import train_tokenizer
from textvae.errors import DataError, ParameterError
from textvae.evaluation import latent_use
from textvae.evaluation.latent_use import (
    choose_alpha,
    interpolation_fluency,
    lm_nll_per_token,
    pick_alpha,
    reconstruction_figures,
    summarize_tradeoff,
    tokenizer_view,
    transfer_tradeoff,
)
from textvae.evaluation.style_classifier import StyleClassifier, ngram_ids
from textvae.model.vae import TextVAE


def by_sentiment(n: int, seed: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"negative": [], "positive": []}
    for s in synthetic.generate(n, seed=seed):
        out[s.factors["sentiment"]].append(s.text)
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [s.text for s in synthetic.generate(200, seed=3)]


def build(texts: list[str], **model) -> TextVAE:
    dcfg = DataConfig(lowercase=True, max_length=20)
    tok = train_tokenizer(texts, dcfg)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=12, latent_size=3, **model)
    return TextVAE(cfg, tok, dcfg).eval()


@pytest.fixture(scope="module")
def vae(texts) -> TextVAE:
    return build(texts)


@pytest.fixture(scope="module")
def lm(texts) -> TextVAE:
    return build(texts, use_latent=False)


@pytest.fixture(scope="module")
def judge() -> StyleClassifier:
    return StyleClassifier.fit(by_sentiment(400, seed=11), epochs=10, batch_size=16, buckets=1 << 12)


# -- the classifier ---------------------------------------------------------------------------------------
def test_the_classifier_learns_a_style_it_can_see_and_is_deterministic(judge):
    held_out = by_sentiment(200, seed=12)
    for style, sents in held_out.items():
        assert judge.share(sents, style) >= 0.95
    again = StyleClassifier.fit(by_sentiment(400, seed=11), epochs=10, batch_size=16, buckets=1 << 12)
    every = held_out["negative"] + held_out["positive"]
    assert again.predict(every) == judge.predict(every)


def test_ngram_hashes_are_stable_in_range_and_read_raw_and_tokenized_text_alike():
    ids = ngram_ids("Great food, GREAT staff!", 1000)
    assert ids == ngram_ids("great food , great staff !", 1000)
    assert len(ids) == 6 + 5 and all(0 <= i < 1000 for i in ids)
    assert ids[0] == ids[3]  # the same word, the same bucket


def test_the_classifier_refuses_what_it_cannot_judge(judge):
    with pytest.raises(DataError, match="two styles"):
        StyleClassifier.fit({"a": ["x"], "b": []})
    with pytest.raises(ValueError, match="unknown style 'neutral'"):
        judge.share(["a dog"], "neutral")
    assert judge.predict(["", "happily"])[1] == "positive"  # an empty text is judged, not an error


# -- reconstruction and transfer --------------------------------------------------------------------------
def test_reconstruction_figures_count_exact_matches(vae, texts, monkeypatch):
    real = reconstruction_figures(vae, texts[:20])
    assert 0 <= real["rec_bleu"] <= 100 and 0 <= real["exact_match"] <= 1 and real["n"] == 20
    refs = tokenizer_view(vae, texts[:4])
    assert tokenizer_view(vae, [t.upper() for t in texts[:4]]) == refs  # read as training normalised it
    fake = {"rec_bleu": 50.0, "reconstructions": [refs[0], "x", refs[2], "y"]}
    monkeypatch.setattr(latent_use, "reconstruction_bleu", lambda *a, **k: fake)
    assert reconstruction_figures(vae, texts[:4])["exact_match"] == 0.5


def test_transfer_rows_cover_every_direction_and_alpha_zero_is_the_reconstruction(vae, judge):
    examples, sources = by_sentiment(60, seed=20), {k: v[:8] for k, v in by_sentiment(60, seed=21).items()}
    rows = transfer_tradeoff(vae, examples, sources, judge, [0.0, 1.0, 2.0])
    assert [(r["source"], r["target"], r["alpha"]) for r in rows] == [
        (s, t, a) for s, t in (("negative", "positive"), ("positive", "negative")) for a in (0.0, 1.0, 2.0)
    ]
    for r in rows:
        assert 0 <= r["target_share"] <= 1 and 0 <= r["bleu"] <= 100 and r["n"] == 8
    neg = sources["negative"]
    rec = reconstruction_figures(vae, neg)["rec_bleu"]
    assert math.isclose(rows[0]["bleu"], rec, rel_tol=1e-9)  # alpha 0 leaves the posterior mean as it is


def test_edit_transfer_rows_and_their_fluency_under_a_language_model(vae, lm, judge, monkeypatch):
    examples, sources = by_sentiment(60, seed=20), {k: v[:6] for k, v in by_sentiment(60, seed=21).items()}
    given = []  # the edit writes only words common in the examples, weighing fluency by edit_lm: both reach it
    shifted = latent_use.shifted_texts
    monkeypatch.setattr(latent_use, "shifted_texts", lambda *a, **k: given.append(k) or shifted(*a, **k))
    rows = transfer_tradeoff(vae, examples, sources, judge, [0.0, 1.0], shift_mode="edit", lm=lm, edit_lm=lm)
    shares = latent_use.example_word_shares(vae, examples)
    assert len(given) == 4 and all(torch.equal(g["word_shares"], shares) and g["edit_lm"] is lm for g in given)
    assert [(r["shift"], r["alpha"]) for r in rows] == [("edit", a) for _ in range(2) for a in (0.0, 1.0)]
    for r in rows:
        assert 0 <= r["target_share"] <= 1 and 0 <= r["bleu"] <= 100 and r["fluency_ratio"] > 0
    src = sources["negative"]
    real = lm_nll_per_token(lm, tokenizer_view(vae, src))
    hyps = shifted(
        vae, vae.encode_text(src).mu, vae.encode_text(examples["negative"]).mu,
        vae.encode_text(examples["positive"]).mu, 1.0, "edit", latent_use._greedy(50), token_ids=vae.token_ids(src),
        word_shares=shares, edit_lm=lm,
    )  # fmt: skip
    assert rows[1]["fluency_ratio"] == pytest.approx(lm_nll_per_token(lm, hyps) / real)
    summary = summarize_tradeoff(rows)
    assert summary[1]["fluency_ratio"] == pytest.approx((rows[1]["fluency_ratio"] + rows[3]["fluency_ratio"]) / 2)
    assert (
        "fluency_ratio"
        not in summarize_tradeoff([{k: v for k, v in r.items() if k != "fluency_ratio"} for r in rows])[0]
    )
    with pytest.raises(ParameterError, match="language model"):
        transfer_tradeoff(vae, examples, sources, judge, [1.0], lm=vae)


def test_transfer_refuses_styles_that_do_not_line_up(vae, judge):
    with pytest.raises(ParameterError, match="styles must match"):
        transfer_tradeoff(vae, {"negative": ["x"], "positive": ["y"]}, {"negative": ["x"]}, judge, [1.0])
    with pytest.raises(ParameterError, match="alpha"):
        transfer_tradeoff(vae, by_sentiment(10, 1), by_sentiment(10, 2), judge, [])


def test_the_summary_averages_directions_and_the_pick_balances_share_and_bleu():
    rows = [
        {"alpha": 1.0, "target_share": 0.4, "bleu": 60.0}, {"alpha": 1.0, "target_share": 0.6, "bleu": 40.0},
        {"alpha": 2.0, "target_share": 0.9, "bleu": 30.0}, {"alpha": 2.0, "target_share": 0.7, "bleu": 50.0},
        {"alpha": 4.0, "target_share": 1.0, "bleu": 5.0}, {"alpha": 4.0, "target_share": 1.0, "bleu": 5.0},
    ]  # fmt: skip
    summary = summarize_tradeoff(rows)
    assert [r["alpha"] for r in summary] == [1.0, 2.0, 4.0]
    assert summary[0]["target_share"] == pytest.approx(0.5) and summary[0]["bleu"] == pytest.approx(50.0)
    assert summary[1]["gm"] == pytest.approx(math.sqrt(80 * 40))
    assert pick_alpha(summary) == 2.0
    tie = [{"alpha": 3.0, "gm": 10.0}, {"alpha": 1.5, "gm": 10.0}]
    assert pick_alpha(tie) == 1.5
    with pytest.raises(ParameterError):
        pick_alpha([])


def test_choose_alpha_holds_out_part_of_the_examples_and_picks_from_their_tradeoff(vae, monkeypatch):
    examples = by_sentiment(80, seed=30)
    seen = {}
    real_tradeoff = latent_use.transfer_tradeoff

    def spy(model, rest, held, judge, alphas, **kw):
        seen.update(rest=rest, held=held, alphas=list(alphas), judge_styles=judge.styles)
        return real_tradeoff(model, rest, held, judge, alphas, **kw)

    monkeypatch.setattr(latent_use, "transfer_tradeoff", spy)
    alpha, summary = choose_alpha(vae, examples, alphas=[0.5, 2.0], held_out=5, seed=1)
    assert [r["alpha"] for r in summary] == [0.5, 2.0] and alpha == pick_alpha(summary)
    for name, texts in examples.items():
        held, rest = seen["held"][name], seen["rest"][name]
        assert len(held) == 5 and not set(held) & set(rest) and sorted(held + rest) == sorted(texts)
    assert seen["judge_styles"] == ["negative", "positive"]
    again = choose_alpha(vae, examples, alphas=[0.5, 2.0], held_out=5, seed=1)
    assert again == (alpha, summary)  # seeded


def test_choose_alpha_refuses_too_few_examples(vae):
    with pytest.raises(ParameterError, match="at least 4"):
        choose_alpha(vae, {"negative": ["the cat sat ."] * 3, "positive": ["a dog ran ."] * 10})
    with pytest.raises(ParameterError, match="two styles"):
        choose_alpha(vae, {"negative": ["the cat sat ."] * 10})


# -- interpolation fluency ---------------------------------------------------------------------------------
def test_lm_nll_per_token_is_the_models_own_sum_over_target_tokens(lm, texts):
    batch = lm.batch_from_text(texts[:6])
    with torch.no_grad():
        out = lm(batch)
    expected = float(out.rec_per_sentence.sum()) / out.num_tokens  # targets: the words and the end token
    assert lm_nll_per_token(lm, texts[:6]) == pytest.approx(expected, rel=1e-5)


def test_interpolation_fluency_scores_every_inner_point(vae, lm, texts, monkeypatch):
    seen = []
    real_score = latent_use.lm_nll_per_token

    def spy(judge, sents, **kw):
        seen.append(list(sents))
        return real_score(judge, sents, **kw)

    monkeypatch.setattr(latent_use, "lm_nll_per_token", spy)
    out = interpolation_fluency(vae, lm, texts, pairs=5, steps=6, seed=1)
    assert len(seen[0]) == 5 * 4 and len(seen[1]) == 10  # inner points; the paired sentences
    assert out["fluency_ratio"] == pytest.approx(out["path_nll"] / out["real_nll"])
    assert 0 <= out["moving_share"] <= 1 and np.isfinite(out["path_nll"])


def test_interpolation_fluency_refuses_a_latent_judge_and_too_few_sentences(vae, lm, texts):
    with pytest.raises(ParameterError, match="language model"):
        interpolation_fluency(vae, vae, texts, pairs=2)
    with pytest.raises(ParameterError, match="need 20 readable"):
        interpolation_fluency(vae, lm, texts[:5], pairs=10)
    with pytest.raises(ParameterError, match="inner points"):
        interpolation_fluency(vae, lm, texts, pairs=2, steps=2)
