"""Decoding strategies for any :class:`~textvae.model.decoders.Decoder`: greedy, sampling (temperature,
top-k, nucleus) and beam search.

Everything is batched: one decoder call per step covers every live sentence (every live hypothesis in beam
search), and the step loop does no Python work per sentence. Sentences that have stopped are dropped from
the batch with :meth:`Decoder.reorder_state`, so a few long sentences don't make the finished ones keep
paying for the decoder.

Length semantics, shared by all strategies: at most ``max_length`` decoder steps. A sentence that emits the
end token within them has fewer than ``max_length`` tokens; one that doesn't is cut at ``max_length`` tokens
and has no end token (so it is also scored without one). Outputs never contain ``<s>`` or ``</s>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from textvae.model.decoders import Decoder

#: A hard ceiling on generated length, whatever the caller asks for (bounds time and memory).
MAX_GENERATION_LENGTH = 512

STRATEGIES = ("greedy", "sample", "beam")


@dataclass
class DecodingConfig:
    """How to turn a latent code into tokens.

    ``temperature``, ``top_k`` and ``top_p`` apply to ``strategy="sample"``; ``beam_size`` and
    ``length_penalty`` to ``strategy="beam"``. Beam search ranks finished hypotheses by
    ``log p(y | z) / len(y) ** length_penalty`` (simple length normalisation, not GNMT's
    ``((5 + len) / 6) ** alpha``), where ``len(y)`` counts the end token; ``length_penalty=0`` ranks by
    the pure log-probability, ``1`` by the mean per-token log-probability.
    """

    strategy: str = "greedy"  # greedy | sample | beam
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filtering
    top_p: float = 1.0  # 1.0: no nucleus filtering
    max_length: int = 50  # generated tokens, end token excluded
    beam_size: int = 4
    length_penalty: float = 1.0  # >= 0; 0: pure log-probability
    # Every strategy: token ids never generated (bad_ids; ban_unk adds the model's <unk>), CTRL's repetition
    # penalty (Keskar et al. 2019: a generated token's logit is divided by it when > 0, multiplied when < 0;
    # 1: off), and a minimum number of tokens before the end token may come.
    bad_ids: tuple[int, ...] = ()
    ban_unk: bool = False
    repetition_penalty: float = 1.0
    min_length: int = 0
    detokenize: bool = True  # text from a word vocabulary made readable (textvae.data.detokenize); False: raw

    def validate(self) -> DecodingConfig:
        """Return ``self`` or raise ``ValueError`` naming the bad field. (``not x > 0`` also catches NaN.)"""
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown decoding strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"top_k must be >= 0 and top_p in (0, 1], got top_k={self.top_k}, top_p={self.top_p}")
        if not 1 <= self.max_length <= MAX_GENERATION_LENGTH:
            raise ValueError(f"max_length must be in [1, {MAX_GENERATION_LENGTH}], got {self.max_length}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if not (self.length_penalty >= 0 and math.isfinite(self.length_penalty)):
            raise ValueError(f"length_penalty must be a finite number >= 0, got {self.length_penalty}")
        if not (self.repetition_penalty >= 1.0 and math.isfinite(self.repetition_penalty)):
            raise ValueError(f"repetition_penalty must be a finite number >= 1, got {self.repetition_penalty}")
        if not 0 <= self.min_length <= self.max_length:
            raise ValueError(f"min_length must be in [0, max_length={self.max_length}], got {self.min_length}")
        return self

    def banned(self, eos_id: int, unk_id: int | None) -> list[int]:
        """The ids to mask at every step; refuses to ban the end token (generation could never stop)."""
        ids = set(int(i) for i in self.bad_ids)
        if self.ban_unk and unk_id is not None:
            ids.add(int(unk_id))
        if eos_id in ids:
            raise ValueError("the end token cannot be banned: generation would never stop")
        return sorted(ids)


class LogitsProcessor:
    """The constraints every strategy applies to a step's logits ``[R, V]`` (in place): banned ids, the
    minimum length, the repetition penalty. ``seen [R, V]`` marks the tokens each row has generated."""

    def __init__(self, cfg: DecodingConfig, eos_id: int, unk_id: int | None, device: torch.device) -> None:
        banned = cfg.banned(eos_id, unk_id)
        self.banned = torch.tensor(banned, dtype=torch.long, device=device) if banned else None
        self.penalty, self.min_length, self.eos_id = cfg.repetition_penalty, cfg.min_length, eos_id

    @property
    def tracks_history(self) -> bool:
        return self.penalty != 1.0

    def __call__(self, logits: Tensor, t: int, seen: Tensor | None = None) -> Tensor:
        if self.banned is not None:
            logits.index_fill_(1, self.banned, float("-inf"))
        if t < self.min_length:
            logits[:, self.eos_id] = float("-inf")
        if seen is not None and self.penalty != 1.0:
            penalised = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
            logits = torch.where(seen, penalised, logits)
        return logits


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Mask (to -inf) all but the ``top_k`` largest logits and the smallest set of tokens whose
    probability mass reaches ``top_p``. ``logits [B, V]`` -> ``[B, V]``; the best token always survives."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # A token is dropped when the mass *before* it already reaches top_p.
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


#: Nucleus sampling without top-k first looks for the nucleus among this many best tokens (exact when their
#: mass reaches top_p, which is the usual case); only rows whose nucleus is larger pay for a full sort.
NUCLEUS_CANDIDATES = 256


def _pick(
    weights: Tensor, u: Tensor, top_p: float = 1.0, total: Tensor | None = None, out: Tensor | None = None
) -> Tensor:
    """Invert the CDF: ``weights [R, N]`` (unnormalised, >= 0; sorted descending when ``top_p < 1``),
    ``u [R]`` in (0, 1] -> column index [R]. ``total [R, 1]``: the row's full mass when ``weights`` hold
    only its best tokens (default: their sum). ``out``: a reusable ``[R, N]`` buffer for the cumsum."""
    cdf = torch.cumsum(weights, dim=-1, out=out) if out is not None else weights.cumsum(dim=-1)
    total = cdf[:, -1:] if total is None else total
    limit = cdf[:, -1:]
    if top_p < 1.0:
        # Nucleus: keep a token while the mass *before* it is below top_p (so the best token always stays);
        # the kept tokens are a prefix, and sampling stops at the mass of the last one.
        n_keep = ((cdf - weights) < top_p * total).sum(dim=-1, keepdim=True)
        limit = cdf.gather(1, n_keep - 1)
    # First column whose cdf reaches u * limit: u > 0 never lands on a zero-weight token, and u * limit
    # <= limit (IEEE rounding can't exceed it) never runs past the last kept one.
    return torch.searchsorted(cdf, u.to(cdf.dtype).unsqueeze(1) * limit).squeeze(1)


def _sample_next(
    logits: Tensor, u: Tensor, temperature: float, top_k: int, top_p: float, buf: Tensor | None = None
) -> Tensor:
    """One token per row: ``logits [R, V]`` (overwritten), ``u [R]`` uniform in (0, 1] -> ids [R].

    Same distribution as ``multinomial(softmax(filter_logits(logits / temperature, top_k, top_p)))``
    (ties at the k-th logit aside: exactly ``top_k`` tokens are kept), but it needs just one uniform per
    row, made by any generator on any device, and it works in place: every fresh ``[R, V]`` tensor costs
    a page-faulting allocation on CPU. ``buf``: optional reusable buffer of at least ``[R, V]``.
    """
    R, V = logits.shape
    if 0 < top_k < V:
        vals, order = logits.topk(top_k, dim=-1)  # sorted, descending
        # Subtract the best logit *before* dividing: a tiny temperature then gives weights 1 and 0 (greedy)
        # rather than inf - inf = nan.
        weights = vals.sub_(vals[:, :1].clone()).div_(temperature).exp_()  # clone: no aliasing
        return order.gather(1, _pick(weights, u, top_p).unsqueeze(1)).squeeze(1)
    weights = logits.sub_(logits.amax(dim=-1, keepdim=True))
    if temperature != 1.0:
        weights = weights.div_(temperature)
    weights = weights.exp_()
    if top_p >= 1.0:
        return _pick(weights, u, out=buf[:R] if buf is not None else None)
    total = weights.sum(dim=-1, keepdim=True)
    cand, order = weights.topk(min(V, NUCLEUS_CANDIDATES), dim=-1)
    pick = order.gather(1, _pick(cand, u, top_p, total).unsqueeze(1)).squeeze(1)
    # Rows whose nucleus doesn't fit in the candidates (same cumsum as _pick's, so the test agrees with it).
    too_big = (cand.cumsum(dim=-1)[:, -1] < top_p * total.squeeze(1)).nonzero().squeeze(1)  # a host sync
    if too_big.numel():
        sorted_w, order = weights[too_big].sort(dim=-1, descending=True)
        cols = _pick(sorted_w, u[too_big], top_p, total[too_big])
        pick[too_big] = order.gather(1, cols.unsqueeze(1)).squeeze(1)
    return pick


def _uniforms(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Uniforms in (0, 1], drawn on the generator's own device and then moved: a CPU generator can drive
    decoding on an accelerator (and the draws don't depend on where the model lives)."""
    where = generator.device if generator is not None else device
    return (1.0 - torch.rand(shape, generator=generator, device=where)).to(device)


def _sync_every(device: torch.device) -> int:
    """Steps between host syncs (the "which sentences are still going" check). Free on CPU; on an
    accelerator a sync stalls the queue, so check less often (finished rows are masked meanwhile)."""
    return 1 if device.type == "cpu" else 4


def _trim(tokens: Tensor, lengths: Tensor) -> list[list[int]]:
    """``tokens [N, L]``, ``lengths [N]`` -> python lists cut to length (the only host transfer)."""
    return [row[:n] for row, n in zip(tokens.tolist(), lengths.tolist())]


@torch.no_grad()
def generate(
    decoder: Decoder,
    z: Tensor | None,
    num: int,
    bos_id: int,
    eos_id: int,
    cfg: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
    unk_id: int | None = None,
) -> list[list[int]]:
    """Decode ``num`` sentences (``z [num, Z]``, or None for a language model) -> token ids without
    ``<s>``/``</s>``. ``unk_id``: the id ``cfg.ban_unk`` bans.

    ``generator`` (on any device; None: the global one) seeds sampling: it draws ``max_length * num``
    uniforms up front, so a seed gives the same sentences for the same ``num`` and ``max_length``, on any
    device. Greedy and beam search ignore it. The tensor ``decoder.project`` returns is treated as scratch
    (overwritten in place) -- it must be a fresh tensor, as a ``Linear`` output is.
    """
    cfg = (cfg or DecodingConfig()).validate()
    if num == 0:
        return []
    device = next(decoder.parameters()).device
    process = LogitsProcessor(cfg, eos_id, unk_id, device)
    if cfg.strategy == "beam":
        return _beam_search(decoder, z, num, bos_id, eos_id, cfg, process)
    steps = cfg.max_length
    out = torch.full((num, steps), eos_id, dtype=torch.long, device=device)
    # Uniforms for every (step, sentence) up front: one draw and one transfer, and sentence i always
    # uses column i, whoever else is still in the batch.
    u = _uniforms((steps, num), device, generator) if cfg.strategy == "sample" else None
    rows = torch.arange(num, device=device)  # sentence index of each row still in the batch
    live = torch.ones(num, dtype=torch.bool, device=device)
    tokens = torch.full((num, 1), bos_id, dtype=torch.long, device=device)
    sync_every = _sync_every(device)
    state = buf = seen = None
    for t in range(steps):
        hidden, state = decoder(tokens, z, state)
        logits = process(decoder.project(hidden[:, -1]).float(), t, seen)
        if u is None:
            nxt = logits.argmax(dim=-1)
        else:
            if buf is None:
                buf = torch.empty((num, logits.shape[1]), dtype=logits.dtype, device=device)
            nxt = _sample_next(logits, u[t, rows], cfg.temperature, cfg.top_k, cfg.top_p, buf)
        nxt = nxt.masked_fill_(~live, eos_id)  # rows that ended since the last compaction
        if process.tracks_history:
            if seen is None:
                seen = torch.zeros(logits.shape, dtype=torch.bool, device=device)
            seen.scatter_(1, nxt.unsqueeze(1), True)
        out[rows, t] = nxt
        live &= nxt != eos_id
        if t == steps - 1 or (t + 1) % sync_every:
            tokens = nxt.unsqueeze(1)
            continue
        keep = live.nonzero().squeeze(1)  # the loop's one host sync
        if keep.numel() == 0:
            break
        if keep.numel() < live.numel():  # drop finished sentences from the batch
            state = decoder.reorder_state(state, keep)
            z = z.index_select(0, keep) if z is not None else None
            rows, live, nxt = rows[keep], live[keep], nxt[keep]
            seen = seen[keep] if seen is not None else None
        tokens = nxt.unsqueeze(1)
    is_eos = out == eos_id
    lengths = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), steps)
    return _trim(out, lengths)


def _beam_search(
    decoder: Decoder,
    z: Tensor | None,
    num: int,
    bos_id: int,
    eos_id: int,
    cfg: DecodingConfig,
    process: LogitsProcessor | None = None,
) -> list[list[int]]:
    """Beam search, batched over sentences: the S live sentences' K hypotheses are rows ``s * K + j`` of
    one decoder batch.

    Each step extends every hypothesis by every token, keeps the K best by log-probability per sentence
    (all live hypotheses have the same length, so this is also the order by normalised score), and moves
    those that chose the end token into the sentence's best-finished record; their slot is refilled from
    the other hypotheses' extensions at the next step. At ``max_length`` every hypothesis finishes
    (truncated). A sentence stops as soon as no live hypothesis can beat its best finished one: log-probs
    only fall and lengths are at most ``max_length``, so a live hypothesis with log-prob ``s`` can reach
    at most ``s / max_length ** length_penalty``. Stopping early thus never changes the result.
    """
    device = next(decoder.parameters()).device
    K, steps, alpha = cfg.beam_size, cfg.max_length, cfg.length_penalty
    neg_inf = float("-inf")
    best_score = torch.full((num,), neg_inf, device=device)
    best_tokens = torch.full((num, steps), eos_id, dtype=torch.long, device=device)
    best_len = torch.zeros(num, dtype=torch.long, device=device)
    sent = torch.arange(num, device=device)  # sentence index of each live sentence [S]
    # Before the first step each sentence has one hypothesis (<s>), so k = 1 and the decoder sees S rows;
    # the first selection expands them to K.
    scores = torch.zeros(num, 1, device=device)  # [S, k] log p of each hypothesis; -inf: empty slot
    hist = torch.zeros(num, 1, 0, dtype=torch.long, device=device)  # [S, k, t] tokens so far
    tokens = torch.full((num, 1), bos_id, dtype=torch.long, device=device)  # [S * k, 1]
    zk = z
    state = None
    for t in range(steps):
        S, k = scores.shape
        hidden, state = decoder(tokens, zk, state)
        logits = decoder.project(hidden[:, -1]).float()
        if process is not None:
            seen = None
            if process.tracks_history and t > 0:  # tokens of each hypothesis so far, from its history
                seen = torch.zeros(logits.shape, dtype=torch.bool, device=device)
                seen.scatter_(1, hist.reshape(S * k, t), True)
            logits = process(logits, t, seen)
        logp = logits.log_softmax(dim=-1)  # [S * k, V]
        V = logp.shape[-1]
        cand = (scores.unsqueeze(2) + logp.view(S, k, V)).view(S, k * V)
        if k * V < K:  # tiny vocabularies: pad so topk has K columns; the padding stays empty (-inf)
            cand = F.pad(cand, (0, K - k * V), value=neg_inf)
        top, flat = cand.topk(K, dim=1)  # [S, K]
        parent = torch.div(flat, V, rounding_mode="floor").clamp_max_(k - 1)
        tok = flat % V
        hist = torch.cat([hist.gather(1, parent.unsqueeze(2).expand(-1, -1, t)), tok.unsqueeze(2)], dim=2)
        alive = torch.isfinite(top)
        ends = alive & (tok == eos_id) if t < steps - 1 else alive  # at max_length all end, truncated

        # Best hypothesis finishing now, per sentence; its length (end token counted) is t + 1.
        normed = torch.where(ends, top / float(t + 1) ** alpha, neg_inf)
        cand_best, j = normed.max(dim=1)
        better = cand_best > best_score[sent]  # ties keep the earlier (shorter) one
        row = F.pad(hist.gather(1, j.view(S, 1, 1).expand(-1, 1, t + 1)).squeeze(1), (0, steps - t - 1), value=eos_id)
        length = t + (tok.gather(1, j.unsqueeze(1)).squeeze(1) != eos_id).long()  # drop the end token
        best_tokens[sent] = torch.where(better.unsqueeze(1), row, best_tokens[sent])
        best_len[sent] = torch.where(better, length, best_len[sent])
        best_score[sent] = torch.where(better, cand_best, best_score[sent])
        if t == steps - 1:
            break

        scores = top.masked_fill(ends, neg_inf)  # finished hypotheses leave the beam
        can_improve = scores.amax(dim=1) / float(steps) ** alpha > best_score[sent]
        keep = can_improve.nonzero().squeeze(1)  # the loop's one host sync
        if keep.numel() == 0:
            break
        src = (torch.arange(S, device=device).unsqueeze(1) * k + parent).view(-1)  # [S * K] old rows
        if keep.numel() < S:  # drop finished sentences from the batch
            src = src.view(S, K)[keep].view(-1)
            scores, hist, tok, sent = scores[keep], hist[keep], tok[keep], sent[keep]
        state = decoder.reorder_state(state, src)
        zk = z.index_select(0, sent).repeat_interleave(K, dim=0) if z is not None else None
        tokens = tok.reshape(-1, 1)
    return _trim(best_tokens, best_len)
