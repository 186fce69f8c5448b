"""Library functions behind evaluate/score/impute/plot/analyze, on constructed inputs (no training)."""

import json

import numpy as np
import pytest
import torch

from textvae.config import DataConfig, ModelConfig
from textvae.data.batching import collate
from textvae.data.eval_data import load_eval_data
from textvae.data.tokenizer import train_tokenizer
from textvae.errors import TextVAEError
from textvae.evaluation.analysis import cluster_agreement, linear_probe, project_2d
from textvae.evaluation.plots import plot_run, read_metrics
from textvae.evaluation.scoring import rank_sentences, sentence_scores
from textvae.inference.imputation import impute
from textvae.model.vae import TextVAE

WORDS = ["the", "a", "dog", "cat", "sees", "likes", "big", "small", "red", "house", "ball", ".", "?"]


@pytest.fixture(scope="module")
def model() -> TextVAE:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(40)]
    dcfg = DataConfig(lowercase=True, max_length=5, max_tokens=8)
    tok = train_tokenizer(texts, dcfg)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=12, latent_size=3)
    return TextVAE(cfg, tok, dcfg).eval()


# -- reading a corpus ---------------------------------------------------------------------------------
def test_eval_data_is_cleaned_like_training_but_not_length_filtered(model, tmp_path):
    f = tmp_path / "c.txt"
    long = "The dog sees the big red house ball ."  # 9 words: over max_length=5 and max_tokens=8
    f.write_text(f"The Dog .\n\n   \n{long}\nA cat\n")
    d = load_eval_data(model, str(f))
    assert d.texts == ["the dog .", long.lower(), "a cat"]  # lowercased as the model's data config says
    assert d.rows == [1, 4, 5]  # rows of the file, blank lines counted
    assert d.stats["blank"] == 2 and d.stats["token_truncated"] == 1 and len(d.token_ids[1]) == 8
    assert "2 blank dropped" in d.describe() and "1 cut to 8 tokens" in d.describe()
    d = load_eval_data(model, str(f), length_filter=True, max_sentences=1)
    assert d.texts == ["the dog ."] and d.stats["dropped_long"] == 1 and d.stats["beyond_max"] == 1


def test_scores_follow_input_order_and_rank(model, tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("the dog .\nthe dog sees a big red ball .\na cat ?\n")
    d = load_eval_data(model, str(f))
    nll = sentence_scores(model, d.token_ids, iw_samples=3, batch_size=2, progress=False)
    # One sentence at a time gives the same numbers: batching (length-sorted) doesn't reorder the output.
    for i, ids in enumerate(d.token_ids):
        one = sentence_scores(model, [ids], iw_samples=1, bound="elbo", progress=False)
        assert one.shape == (1,) and abs(float(one[0]) - float(nll[i])) < 0.1 * float(nll[i])
    ranked = rank_sentences(d, nll, by="nll")
    assert [r["nll"] for r in ranked] == sorted(nll.tolist(), reverse=True)
    assert [r["row"] for r in rank_sentences(d, nll, by="row")] == [1, 2, 3]


# -- imputation ---------------------------------------------------------------------------------------
def test_impute_one_round_picks_the_best_whole_sentence(model):
    """With every token a candidate, one round must pick the token that minimises -log p(x | z0) of the
    whole sentence, z0 being the posterior mean of the sentence with <unk> in the blank."""
    r = impute(model, "the dog ___ a ball .", rounds=1, candidates=10_000)
    tok, c = model.tokenizer, model.config
    ids = tok.encode("the dog") + [c.unk_id] + tok.encode("a ball .")
    b = collate([ids], c.pad_id, c.bos_id, c.eos_id)
    z0 = model.encode(b.input_ids, b.lengths).mu
    best, best_nll = None, float("inf")
    for t in range(c.vocab_size):
        if t in (c.pad_id, c.bos_id, c.eos_id, c.unk_id):
            continue
        ids[2] = t
        bt = collate([ids], c.pad_id, c.bos_id, c.eos_id)
        with torch.no_grad():
            v = float(model.sentence_nll(bt.input_ids, bt.lengths, z0)[0])
        if v < best_nll:
            best, best_nll = t, v
    assert r.fills == [tok.decode([best])] and r.text == f"the dog {r.fills[0]} a ball ."


def test_impute_keeps_the_text_verbatim(model):
    r = impute(model, "  The DOG___sees ___", rounds=3)
    assert r.text.startswith("  The DOG") and "sees " in r.text and len(r.fills) == 2
    assert r.text == f"  The DOG{r.fills[0]}sees {r.fills[1]}" and 1 <= r.rounds <= 3
    with pytest.raises(TextVAEError, match="no blank"):
        impute(model, "nothing missing here")


# -- latent analysis ----------------------------------------------------------------------------------
def test_clusters_and_probe_on_separated_labels():
    rng = np.random.default_rng(0)
    labels = ["a"] * 30 + ["b"] * 30 + ["c"] * 30
    centers = {"a": [10, 0, 0], "b": [0, 10, 0], "c": [0, 0, 10]}
    mu = np.array([centers[y] for y in labels]) + rng.normal(scale=0.1, size=(90, 3))
    k = cluster_agreement(mu, labels)
    assert k["k"] == 3 and k["nmi"] == pytest.approx(1.0) and k["purity"] == pytest.approx(1.0)
    p = linear_probe(mu, labels)
    assert p["accuracy"] == 1.0 and p["per_class"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert p["majority"] == pytest.approx(1 / 3) and p["train"] + p["test"] == 90
    noise = rng.normal(size=(90, 3))  # means that carry no label information: chance-level agreement
    assert cluster_agreement(noise, labels)["nmi"] < 0.2


def test_projection_shapes():
    mu = np.random.default_rng(0).normal(size=(20, 5))
    for method in ("tsne", "pca"):
        xy, used = project_2d(mu, method)
        assert xy.shape == (20, 2) and used == method and np.isfinite(xy).all()
    assert project_2d(mu[:, :1])[0].shape == (20, 2)
    with pytest.raises(TextVAEError):
        project_2d(mu[:3])


# -- plots --------------------------------------------------------------------------------------------
def test_plots_skip_torn_lines_and_a_language_model_has_no_kl_chart(tmp_path):
    recs = [
        {"split": "train", "step": s, "loss": 50.0 - s, "rec": 49.0 - s, "kl": 1.0, "beta": 1.0, "lr": 1e-3}
        for s in (1, 2, 3)
    ] + [{"split": "valid", "step": 3, "neg_elbo": 47.0, "rec": 46.0, "kl": 1.0, "au": 0, "kl_per_dim": []}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + '\n{"split": "tra')
    assert len(read_metrics(tmp_path)) == 4
    paths = plot_run(tmp_path)
    assert [p.name for p in paths] == ["training_curves.png"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    with pytest.raises(TextVAEError, match="no records"):
        plot_run(tmp_path / "empty")
