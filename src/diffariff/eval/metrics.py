"""Distribution metrics over embeddings (Improved Diff-A-Riff, Table 1) and reporting helpers.

All functions take embeddings as numpy arrays or torch tensors shaped ``[N, D]`` (N items, D
embedding dimensions; CLAP audio embeddings in this project) and compute in float64 numpy.

* :func:`frechet_distance` / :func:`fad`: Fréchet distance between Gaussian fits (FAD when the
  embeddings are audio embeddings). The matrix square root goes through symmetric
  eigen-decompositions (exact for PSD covariances, also when N < D and the covariances are
  singular); ``method="sqrtm"`` uses :func:`scipy.linalg.sqrtm` with the usual eps-offset fallback.
* :func:`kernel_distance`: unbiased MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x.y / D + 1) ** 3`` (Binkowski et al. 2018, "KID"). The **raw** value is returned;
  the paper reports it x1e-3, i.e. ``kd * KD_REPORT_SCALE`` is the number to put beside theirs.
* :func:`density_coverage`: Naeem et al. 2020, k-NN balls around the real embeddings (k = 5).
  Written here rather than depending on ``prdc``: it is ~30 lines of numpy, and that package has
  not been maintained since 2020 (and computes full N x M distance matrices in one go).
* :func:`clap_score`: mean cosine between paired embeddings (CS_AA with audio references,
  CS_TA with text embeddings as the references).
* :func:`per_batch`, :func:`batched_distribution_metrics`, :func:`mean_and_ci`: the paper averages
  5 batches of candidates against one reference set; these split, evaluate and summarise.
* :func:`pca_project`: a 2-D PCA projection (numpy SVD) of several embedding sets for plots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg
import scipy.stats

from ..errors import InputError

#: Multiply a raw kernel distance by this to compare with the paper's "KD (x1e-3)" column.
KD_REPORT_SCALE = 1e3
#: Default neighbourhood size of density / coverage (Naeem et al. 2020).
DEFAULT_K = 5
#: Rows per chunk when computing pairwise distances (bounds memory at ~chunk x N floats).
_CHUNK = 1024


def as_embeddings(x, what: str = "embeddings", min_rows: int = 1) -> np.ndarray:
    """``x`` (numpy array / torch tensor / nested list) as a finite float64 ``[N, D]`` array.

    Raises :class:`InputError` for another rank, too few rows or non-finite values.
    """
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{what} must be a 2-D [N, D] array, got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise InputError(f"{what} needs at least {min_rows} rows and 1 column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what} contain NaN or infinite values")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise InputError(f"embedding sizes differ: {a.shape[1]} vs {b.shape[1]}")


# ----------------------------------------------------------------------------------------- FAD


def gaussian_fit(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of embeddings ``[N, D]`` (N >= 2)."""
    arr = as_embeddings(x, min_rows=2)
    return arr.mean(axis=0), np.cov(arr, rowvar=False, ddof=1).reshape(arr.shape[1], arr.shape[1])


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (negative round-off eigenvalues set to 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2); the inner matrix is symmetric PSD.
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    w = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        # Singular product: offset both diagonals by eps (the usual FID/FAD fallback).
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off makes small imaginary parts; a large one means the input was not PSD.
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise InputError("covariance product has a large imaginary square root (not PSD?)")
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
    *, method: str = "eigh", eps: float = 1e-6,
) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)``; means ``[D]``, covariances ``[D, D]``
    (symmetric PSD). ``method``: "eigh" (default, stable for singular covariances) or "sqrtm"
    (scipy, eps-offset fallback, complex round-off dropped). The result is clipped at 0 (round-off
    can make it -1e-12 for identical fits).
    """
    m1, m2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = m1.shape[0]
    if m2.shape[0] != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(f"Gaussian shapes disagree: means {m1.shape}, {m2.shape}; covs {s1.shape}, {s2.shape}")
    if method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(s1, s2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrt_product_sqrtm(s1, s2, eps)
    else:
        raise InputError(f"unknown Fréchet method '{method}' (use 'eigh' or 'sqrtm')")
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fad(candidates, reference, *, method: str = "eigh") -> float:
    """Fréchet distance between Gaussian fits of ``candidates [N, D]`` and ``reference [M, D]``."""
    c = as_embeddings(candidates, "candidate embeddings", min_rows=2)
    r = as_embeddings(reference, "reference embeddings", min_rows=2)
    _check_same_dim(c, r)
    return frechet_distance(*gaussian_fit(c), *gaussian_fit(r), method=method)


# ------------------------------------------------------------------------------------------ KD


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    sum_xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    sum_yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2.0 * kxy.mean())


def kernel_distance(
    candidates, reference, *, subset_size: int | None = None, n_subsets: int = 100, seed: int = 0
) -> float:
    """Unbiased MMD^2 with the kernel ``(x.y / D + 1) ** 3`` (raw; report ``* KD_REPORT_SCALE``).

    ``candidates [N, D]``, ``reference [M, D]``, N, M >= 2. With ``subset_size`` the estimate is
    the mean over ``n_subsets`` random subsets of that size drawn (seeded, without replacement)
    from each set, as in KID; subsets never exceed a set's size. The unbiased estimate can be
    slightly negative when the sets come from one distribution.
    """
    c = as_embeddings(candidates, "candidate embeddings", min_rows=2)
    r = as_embeddings(reference, "reference embeddings", min_rows=2)
    _check_same_dim(c, r)
    if subset_size is None:
        return _mmd2_unbiased(c, r)
    if subset_size < 2 or n_subsets < 1:
        raise InputError(f"kernel distance needs subset_size >= 2 and n_subsets >= 1, got {subset_size}, {n_subsets}")
    rng = np.random.default_rng(seed)
    sc, sr = min(subset_size, c.shape[0]), min(subset_size, r.shape[0])
    values = [
        _mmd2_unbiased(c[rng.choice(c.shape[0], sc, replace=False)], r[rng.choice(r.shape[0], sr, replace=False)])
        for _ in range(n_subsets)
    ]
    return float(np.mean(values))


# --------------------------------------------------------------------------- density / coverage


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def knn_radii(real, k: int = DEFAULT_K) -> np.ndarray:
    """Distance ``[M]`` from each real embedding to its k-th nearest *other* real embedding."""
    r = as_embeddings(real, "real embeddings", min_rows=k + 1)
    radii = np.empty(r.shape[0])
    for start in range(0, r.shape[0], _CHUNK):
        d = _pairwise_distances(r[start:start + _CHUNK], r)
        # Index 0 of each sorted row is the point itself (distance 0), so index k is the k-th neighbour.
        radii[start:start + _CHUNK] = np.partition(d, k, axis=1)[:, k]
    return radii


def density_coverage(real, fake, k: int = DEFAULT_K, *, radii: np.ndarray | None = None) -> tuple[float, float]:
    """Density and coverage of ``fake [N, D]`` against ``real [M, D]`` (Naeem et al. 2020).

    With ``r_i`` the distance from real ``X_i`` to its k-th nearest real neighbour and
    ``B_i = {y : |y - X_i| < r_i}`` (open ball, as in the authors' code):
    density = ``1/(k N) * sum_j #{i : Y_j in B_i}`` (can exceed 1; ~1 for matching distributions),
    coverage = fraction of reals whose ball holds at least one fake (in [0, 1]). Needs M > k.
    ``radii``: :func:`knn_radii` of ``real`` if already computed (reused across batches).
    """
    if k < 1:
        raise InputError(f"density/coverage need k >= 1, got {k}")
    r = as_embeddings(real, "real embeddings", min_rows=k + 1)
    f = as_embeddings(fake, "fake embeddings", min_rows=1)
    _check_same_dim(r, f)
    if radii is None:
        radii = knn_radii(r, k)
    elif radii.shape != (r.shape[0],):
        raise InputError(f"radii must have one value per real embedding, got shape {radii.shape}")
    inside_count = 0
    covered = np.zeros(r.shape[0], dtype=bool)
    for start in range(0, f.shape[0], _CHUNK):
        inside = _pairwise_distances(f[start:start + _CHUNK], r) < radii[None, :]  # [chunk, M]
        inside_count += int(inside.sum())
        covered |= inside.any(axis=0)
    return inside_count / (k * f.shape[0]), float(covered.mean())


# --------------------------------------------------------------------------------- CLAP score


def paired_cosine(a, b) -> np.ndarray:
    """Cosine similarity ``[N]`` between row i of ``a [N, D]`` and row i of ``b [N, D]``."""
    x, y = as_embeddings(a, "embeddings"), as_embeddings(b, "paired embeddings")
    if x.shape != y.shape:
        raise InputError(f"paired embeddings must have the same shape, got {x.shape} and {y.shape}")
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return (x * y).sum(1) / np.maximum(norms, 1e-12)


def clap_score(generated, targets) -> float:
    """Mean paired cosine: CS_AA with reference-audio embeddings, CS_TA with text embeddings."""
    return float(paired_cosine(generated, targets).mean())


# ------------------------------------------------------------------------ batching / reporting


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` values with a two-sided Student-t confidence interval ``mean +- half_width``."""

    mean: float
    half_width: float
    n: int
    confidence: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def as_dict(self) -> dict:
        return asdict(self)


def mean_and_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence half-width of ``values`` (half-width NaN for one value)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise InputError("mean_and_ci needs at least one finite value")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if arr.size == 1:
        return MeanCI(float(arr[0]), float("nan"), 1, confidence)
    sem = arr.std(ddof=1) / np.sqrt(arr.size)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2.0, arr.size - 1) * sem)
    return MeanCI(float(arr.mean()), half, int(arr.size), confidence)


def batch_indices(n_items: int, n_batches: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Split ``range(n_items)`` into ``n_batches`` disjoint, seeded-shuffled, near-equal batches."""
    if n_batches < 1 or n_items < n_batches:
        raise InputError(f"cannot split {n_items} items into {n_batches} batches")
    order = np.random.default_rng(seed).permutation(n_items)
    return [np.sort(part) for part in np.array_split(order, n_batches)]


def per_batch(
    fn: Callable[..., float], *paired, n_batches: int = 5, seed: int = 0
) -> list[float]:
    """``fn`` on ``n_batches`` disjoint row-subsets of the row-aligned arrays ``paired``.

    Every array in ``paired`` is indexed by the same rows, so pairs (generated, target) stay
    together: ``per_batch(clap_score, gen, ref)`` or ``per_batch(lambda c: fad(c, real), gen)``.
    """
    arrays = [as_embeddings(a, "batched embeddings") for a in paired]
    if not arrays:
        raise InputError("per_batch needs at least one array")
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise InputError("per_batch arrays must have the same number of rows")
    return [float(fn(*(a[idx] for a in arrays))) for idx in batch_indices(n, n_batches, seed)]


def batched_distribution_metrics(
    candidates, reference, *, n_batches: int = 5, seed: int = 0, k: int = DEFAULT_K,
    kd_subset_size: int | None = None,
) -> dict[str, MeanCI]:
    """FAD, KD (raw), density and coverage of ``n_batches`` candidate batches vs one reference.

    ``candidates [N, D]`` are split into disjoint seeded batches; each is compared with the full
    ``reference [M, D]`` (the paper: 5 x 1000 candidates vs 5000 references). Returns
    ``{"fad", "kd", "density", "coverage"} -> MeanCI``.
    """
    c = as_embeddings(candidates, "candidate embeddings", min_rows=2 * n_batches)
    r = as_embeddings(reference, "reference embeddings", min_rows=k + 1)
    _check_same_dim(c, r)
    values: dict[str, list[float]] = {"fad": [], "kd": [], "density": [], "coverage": []}
    ref_fit, radii = gaussian_fit(r), knn_radii(r, k)  # the reference side, computed once
    for idx in batch_indices(c.shape[0], n_batches, seed):
        batch = c[idx]
        values["fad"].append(frechet_distance(*gaussian_fit(batch), *ref_fit))
        values["kd"].append(kernel_distance(batch, r, subset_size=kd_subset_size, seed=seed))
        den, cov = density_coverage(r, batch, k, radii=radii)
        values["density"].append(den)
        values["coverage"].append(cov)
    return {name: mean_and_ci(v) for name, v in values.items()}


# ----------------------------------------------------------------------------------- projection


@dataclass(frozen=True)
class PCAProjection:
    """Principal-axis projection of several embedding sets fitted on their union.

    ``points[i]`` is ``[N_i, n_components]``; ``components`` ``[n_components, D]``; ``mean`` ``[D]``;
    ``explained_variance_ratio`` ``[n_components]``.
    """

    points: list[np.ndarray]
    components: np.ndarray
    mean: np.ndarray
    explained_variance_ratio: np.ndarray

    def transform(self, x) -> np.ndarray:
        """Project new embeddings ``[N, D]`` onto the same axes."""
        return (as_embeddings(x) - self.mean) @ self.components.T


def pca_project(*sets, n_components: int = 2) -> PCAProjection:
    """Fit PCA (numpy SVD) on the union of ``sets`` (each ``[N_i, D]``) and project each set.

    Axis signs are fixed (largest-magnitude loading positive) so the plot is deterministic.
    """
    arrays = [as_embeddings(s, "embeddings to project") for s in sets]
    if not arrays:
        raise InputError("pca_project needs at least one embedding set")
    for a in arrays[1:]:
        _check_same_dim(arrays[0], a)
    allx = np.concatenate(arrays, axis=0)
    if n_components < 1 or n_components > min(allx.shape):
        raise InputError(f"cannot take {n_components} components of data shaped {allx.shape}")
    mean = allx.mean(axis=0)
    _, s, vt = np.linalg.svd(allx - mean, full_matrices=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(n_components), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    var = s**2
    ratio = var[:n_components] / max(var.sum(), 1e-300)
    return PCAProjection([(a - mean) @ comps.T for a in arrays], comps, mean, ratio)
