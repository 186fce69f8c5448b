"""An independent judge of style for transfer figures: a linear classifier over hashed word n-grams.

Style-transfer papers score outputs with a classifier trained on labelled sentences apart from the model
being judged (Shen et al. 2017 use a CNN, later work fastText). This is the fastText shape (Joulin et al.
2017) without the embedding layer: lowercased word unigrams and bigrams (NLTK's ``wordpunct_tokenize``, so
raw and pre-tokenized text read the same) hashed into ``buckets`` weights per class, trained with Adam on
the cross-entropy. It is fast on a CPU (seconds for 100k sentences) and needs no pretrained weights, and it
shares nothing with the VAE, so a VAE cannot game it through its own latent space.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from nltk.tokenize import wordpunct_tokenize
from torch import Tensor, nn

from textvae.errors import DataError


def ngram_ids(text: str, buckets: int) -> list[int]:
    """Hashed ids of the lowercased word unigrams and bigrams of ``text`` (a stable hash, not Python's
    salted one, so a classifier gives the same answers in every process)."""
    words = wordpunct_tokenize(text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return [zlib.crc32(g.encode()) % buckets for g in grams]


class StyleClassifier(nn.Module):
    """``styles`` (class names) and a bag-of-n-grams linear layer: ``forward`` gives ``[N, C]`` logits."""

    def __init__(self, styles: Sequence[str], buckets: int = 1 << 18) -> None:
        super().__init__()
        self.styles = list(styles)
        self.buckets = buckets
        self.weights = nn.EmbeddingBag(buckets, len(self.styles), mode="mean")
        nn.init.zeros_(self.weights.weight)
        self.bias = nn.Parameter(torch.zeros(len(self.styles)))

    def _bags(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids = [ngram_ids(t, self.buckets) or [0] for t in texts]  # an empty text reads as one null n-gram
        offsets = torch.tensor([0] + [len(x) for x in ids[:-1]]).cumsum(0)
        return torch.tensor([i for x in ids for i in x]), offsets

    def forward(self, texts: Sequence[str]) -> Tensor:
        return self.weights(*self._bags(texts)) + self.bias

    @torch.no_grad()
    def predict(self, texts: Sequence[str], batch_size: int = 4096) -> list[str]:
        """The most likely style of each text."""
        out: list[str] = []
        for s in range(0, len(texts), batch_size):
            out += [self.styles[i] for i in self(texts[s : s + batch_size]).argmax(-1).tolist()]
        return out

    def share(self, texts: Sequence[str], style: str) -> float:
        """The fraction (0-1) of ``texts`` judged ``style``."""
        if style not in self.styles:
            raise ValueError(f"unknown style {style!r}; the classifier knows {', '.join(self.styles)}")
        if not texts:
            raise ValueError("no texts to judge")
        return sum(p == style for p in self.predict(texts)) / len(texts)

    @classmethod
    def fit(
        cls,
        examples: dict[str, Sequence[str]],
        *,
        epochs: int = 5,
        batch_size: int = 256,
        lr: float = 0.1,
        buckets: int = 1 << 18,
        seed: int = 0,
    ) -> StyleClassifier:
        """Train on ``{style: [sentence, ...]}`` (two or more styles, each non-empty). Classes are weighted
        by inverse frequency, so an unbalanced corpus does not make the majority style the default answer."""
        styles = sorted(examples)
        if len(styles) < 2 or any(not examples[s] for s in styles):
            raise DataError("a style classifier needs sentences of at least two styles")
        texts = [t for s in styles for t in examples[s]]
        labels = torch.tensor([k for k, s in enumerate(styles) for _ in examples[s]])
        counts = torch.bincount(labels, minlength=len(styles)).float()
        model = cls(styles, buckets)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss(weight=counts.sum() / (len(styles) * counts))
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for idx in torch.randperm(len(texts), generator=g).split(batch_size):
                opt.zero_grad()
                loss_fn(model([texts[i] for i in idx.tolist()]), labels[idx]).backward()
                opt.step()
        return model.eval()
