"""The score of a bar hypothesis from its named features: a small network fitted on rendered corpus
songs (:mod:`diffariff.timing.fit`) and stored as JSON beside this module (``meter_weights.json``).

With ``x`` a hypothesis' feature vector [F] standardised by the training set's ``mean`` and ``scale``,
the score is ``x . linear + tanh(x @ hidden + bias) . out`` (``hidden`` [F, H]); with ``H = 0`` it is
a linear (softmax / logistic) scorer. Only the ranking of one song's hypotheses matters: the highest
score wins. Training maximises the mean log-probability of the right hypotheses under a softmax over
each song's hypotheses, with an L2 penalty.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

WEIGHTS_FILE = Path(__file__).with_name("meter_weights.json")


@dataclasses.dataclass
class Scorer:
    """Feature ``names`` [F], standardisation ``mean`` / ``scale`` [F], ``linear`` [F] weights and the
    hidden layer ``hidden`` [F, H], ``bias`` [H], ``out`` [H] (module doc)."""

    names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    linear: np.ndarray
    hidden: np.ndarray
    bias: np.ndarray
    out: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores [N] of the feature rows ``x`` [N, F] (columns in the order of ``names``)."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return z @ self.linear + np.tanh(z @ self.hidden + self.bias) @ self.out

    def to_json(self) -> dict:
        return {"names": list(self.names), "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "linear": self.linear.round(5).tolist(), "hidden": self.hidden.round(5).tolist(),
                "bias": self.bias.round(5).tolist(), "out": self.out.round(5).tolist()}

    @classmethod
    def from_json(cls, d: dict) -> Scorer:
        f = len(d["names"])
        hidden = np.asarray(d["hidden"], dtype=np.float64).reshape(f, -1)
        return cls(tuple(d["names"]), np.asarray(d["mean"], float), np.asarray(d["scale"], float),
                   np.asarray(d["linear"], float), hidden, np.asarray(d["bias"], float), np.asarray(d["out"], float))

    @classmethod
    def linear_only(cls, weights: dict[str, float]) -> Scorer:
        """A linear scorer with the given weight per feature name (no standardisation)."""
        names = tuple(weights)
        f = len(names)
        return cls(names, np.zeros(f), np.ones(f), np.array([weights[n] for n in names], float), np.zeros((f, 0)),
                   np.zeros(0), np.zeros(0))


def load_scorer(names: tuple[str, ...], fallback: dict[str, float], path: Path = WEIGHTS_FILE) -> Scorer:
    """The scorer stored at ``path`` if it scores exactly the features ``names``; else a linear scorer
    with the ``fallback`` weights."""
    if path.is_file():
        d = json.loads(path.read_text(encoding="utf-8"))
        if "scorer" in d and tuple(d["scorer"]["names"]) == tuple(names):
            return Scorer.from_json(d["scorer"])
    return Scorer.linear_only({n: float(fallback.get(n, 0.0)) for n in names})


def fit_scorer(songs: list[tuple], names: tuple[str, ...], hidden: int = 8,
               l2: float = 0.01, seed: int = 0, max_iter: int = 500, tempo_weight: float = 0.0) -> Scorer:
    """Fit a :class:`Scorer` on ``songs``: per song the hypotheses' features [N, F], which of them
    are right [N] bool (songs with none right should be left out) and optionally which have the right
    tempo [N] bool; with ``tempo_weight`` > 0 the loss adds that weight times the negative
    log-probability of the right-tempo hypotheses (the tempo, whatever the meter and phase, matters
    most). Deterministic for a ``seed``."""
    from scipy.optimize import minimize

    allx = np.concatenate([s[0] for s in songs])
    mean, scale = allx.mean(axis=0), allx.std(axis=0) + 1e-6
    data = []
    for s in songs:
        z, right = (s[0] - mean) / scale, s[1].astype(bool)
        data.append((z, right, 1.0))
        if tempo_weight > 0 and len(s) > 2 and np.any(s[2]):
            data.append((z, s[2].astype(bool), float(tempo_weight)))
    n_songs = len(songs)
    f, h = len(names), int(hidden)

    def unpack(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return t[:f], t[f:f + f * h].reshape(f, h), t[f + f * h:f + f * h + h], t[f + f * h + h:]

    def loss(t: np.ndarray) -> tuple[float, np.ndarray]:
        w, a, b, v = unpack(t)
        total = l2 * float(t @ t)
        gw, ga, gb, gv = np.zeros_like(w), np.zeros_like(a), np.zeros_like(b), np.zeros_like(v)
        for z, right, weight in data:
            hid = np.tanh(z @ a + b)
            s = z @ w + hid @ v
            p = np.exp(s - s.max())
            p /= p.sum()
            pr = p * right
            total -= weight * float(np.log(pr.sum() + 1e-12)) / n_songs
            d = weight * (p - pr / (pr.sum() + 1e-12)) / n_songs  # d loss / d score
            gw += d @ z
            gv += d @ hid
            dh = np.outer(d, v) * (1 - hid ** 2)
            ga += z.T @ dh
            gb += dh.sum(axis=0)
        return total, 2 * l2 * t + np.concatenate([gw, ga.ravel(), gb, gv])

    rng = np.random.default_rng(seed)
    t0 = np.concatenate([np.zeros(f), 0.1 * rng.standard_normal(f * h), np.zeros(h), 0.1 * rng.standard_normal(h)])
    t = minimize(loss, t0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}).x
    w, a, b, v = unpack(t)
    return Scorer(tuple(names), mean, scale, w, a, b, v)
