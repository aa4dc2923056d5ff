"""Where the stems to score come from: candidate files, generators and the noise / random bounds.

Every source gives one stem per evaluated pair, float32 ``[2, N]`` at 48 kHz (N: the pair's target length):

* candidate files: ``<index>.wav`` files of a folder, or ``<setting>/<index>.wav`` sub-folders
  (:func:`scan_candidates`, :func:`folder_source`), cropped or zero-padded by :func:`fit_length`;
* generators: a **generator** is a plain callable ``(pair_item, setting_name, seed) -> stem [C, N]``
  (float, 48 kHz, C = 1 or 2), run for every pair by :func:`generator_source`; :func:`bundle_generators`
  builds them for Table 1's settings from a model bundle (:func:`setting_inputs`: what each setting
  gives it), :func:`codec_generators` the ``"codec"`` ceiling row from a codec file alone;
* the bounds: :func:`noise_stems` (white noise at each target's loudness) and :func:`random_stems`
  (true stems of other pairs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..audio import gain_db, load_audio, loudness, to_channels
from ..errors import InputError
from .apa import derangement
from .settings import CHANNELS, SAMPLE_RATE, SETTINGS, SETTINGS_BY_NAME, Setting

#: Audio files accepted in a candidates folder.
_CANDIDATE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")

Generator = Callable[[dict, str, int], object]


def _disable(progress) -> bool | None:
    """tqdm's ``disable``: None (auto: only on a terminal) unless progress is forced on/off."""
    return None if progress is None else not progress


def fit_length(audio, length: int) -> np.ndarray:
    """Candidate audio as float32 ``[2, length]``: channels to stereo, cropped or zero-padded."""
    arr = audio.detach().float().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio, np.float32)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] not in (1, 2) or arr.shape[1] == 0:
        raise InputError(f"a candidate stem must be mono or stereo [C, N] audio, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("a candidate stem contains NaN or infinite samples")
    arr = to_channels(arr, CHANNELS)
    if arr.shape[1] >= length:
        return np.ascontiguousarray(arr[:, :length])
    return np.pad(arr, ((0, 0), (0, length - arr.shape[1])))


def _indexed_audio(folder: Path) -> dict[int, Path]:
    out = {}
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in _CANDIDATE_SUFFIXES and p.stem.isdigit():
            out.setdefault(int(p.stem), p)
    return out


def scan_candidates(folder, n: int) -> dict[str, dict[int, Path]]:
    """Candidate files of ``folder``: ``<index>.wav`` files (one setting, named after the folder) or
    ``<setting>/<index>.wav`` sub-folders. Raises InputError when a setting lacks a pair index < n."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--candidates {root}: no such folder")
    sets = {}
    direct = _indexed_audio(root)
    if direct:
        sets[root.name or "candidates"] = direct
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _indexed_audio(sub)
        if files:
            sets[sub.name] = files
    if not sets:
        raise InputError(f"--candidates {root}: no <index>.wav files (nor <setting>/<index>.wav)")
    for name, files in sets.items():
        missing = [i for i in range(n) if i not in files]
        if missing:
            shown = ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(f"--candidates {root}: setting '{name}' lacks stems for pairs {shown} "
                             f"({len(missing)} of {n} missing)")
    return sets


def folder_source(files: Mapping[int, Path], items: Sequence[Mapping]) -> Callable[[], list[np.ndarray]]:
    """A loader of one candidate setting's files, aligned with ``items`` (48 kHz stereo, target length)."""
    def load() -> list[np.ndarray]:
        out = []
        for it in items:
            audio, _ = load_audio(files[int(it["index"])], sample_rate=SAMPLE_RATE, channels=CHANNELS,
                                  max_seconds=None)
            out.append(fit_length(audio, it["target"].shape[-1]))
        return out
    return load


def generator_source(generator: Generator, items: Sequence[Mapping], setting: str, seed: int,
                     progress=None) -> Callable[[], list[np.ndarray]]:
    """A loader that runs ``generator(item, setting, seed + index)`` for every pair."""
    def load() -> list[np.ndarray]:
        bar = tqdm(items, desc=f"generate {setting}", unit="pair", disable=_disable(progress))
        return [fit_length(generator(it, setting, int(seed) + int(it["index"])), it["target"].shape[-1])
                for it in bar]
    return load


def setting_inputs(item: Mapping, setting: Setting) -> dict:
    """What a setting gives the generator for one pair: ``context`` ``[2, N]`` or None (another pair's,
    ``item["other_context"]``, for ``context_from="other"``), ``reference`` ``[2, Nref]`` or None, ``text``
    or None, and ``bridge`` (None, "text" or "uncond")."""
    clap = setting.clap
    context = item["other_context"] if setting.context_from == "other" else item["context"]
    return {
        "context": context if setting.context else None,
        "reference": item["reference"] if clap == "audio" else None,
        "text": item["prompt"] if clap in ("text", "bridge-text") else None,
        "bridge": {"bridge-text": "text", "bridge-uncond": "uncond"}.get(clap),
    }


def bundle_generators(bundle, names: Sequence[str] | None = None, *, sampler: str | None = None,
                      steps: int | None = None, cfg_context: float | None = None,
                      cfg_clap: float | None = None, prior_guidance: float | None = None,
                      guidance_interval: tuple[float, float] | None = None,
                      key_lock: bool | None = None, harmony: float | None = None,
                      precision: str = "auto") -> dict[str, Generator]:
    """Generators for Table 1's settings from a model bundle: each runs
    ``Accompanist.generate`` with the inputs of :func:`setting_inputs` and returns one stem ``[2, N]``.

    No context -> the pair's length of silence is the context (the model's unconditional-context
    branch); ``"text"`` uses the raw text embedding (bridge off), ``"bridge-text"`` maps it through the
    bundle's bridge, ``"bridge-uncond"`` conditions on an embedding sampled by the unconditional
    bridge (seeded by the pair), ``"prior"`` lets the bundle's context prior pick the CLAP condition;
    every other setting runs with the prior off (``prior_guidance``: its guidance on the context; None:
    the prior's own default). ``names`` None: every setting the bundle supports (bridge / prior settings
    only with a bridge / prior). ``sampler`` / ``steps`` / ``cfg_context`` / ``cfg_clap`` /
    ``guidance_interval`` / ``key_lock`` / ``harmony`` / ``precision``: as in ``Accompanist.generate``
    (default: the bundle's preferred model with its config's sampler, steps and guidance strengths)."""
    from ..pipeline import Accompanist  # noqa: PLC0415  (heavy; only needed with --bundle)

    model = Accompanist.from_pretrained(bundle)
    if names is None:
        names = [s.name for s in SETTINGS if (model.bridge is not None or not s.clap.startswith("bridge"))
                 and (model.prior is not None or s.clap != "prior")]
    unknown = [n for n in names if n not in SETTINGS_BY_NAME]
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(SETTINGS_BY_NAME)})")
    chosen = [SETTINGS_BY_NAME[n] for n in names]
    if model.bridge is None and any(s.clap.startswith("bridge") for s in chosen):
        raise InputError("the bridge settings need a bundle with a CLAP bridge")
    if model.prior is None and any(s.clap == "prior" for s in chosen):
        raise InputError("the ctx_prior setting needs a bundle with a context prior")

    def make(setting: Setting) -> Generator:
        if setting.clap == "codec":
            return _reconstruction(model)

        def generate(item: dict, name: str, seed: int):
            inputs = setting_inputs(item, setting)
            kw = {"context": inputs["context"], "text": inputs["text"], "reference": inputs["reference"],
                  "use_bridge": inputs["bridge"] == "text", "use_prior": setting.clap == "prior",
                  "prior_guidance": prior_guidance, "seed": seed, "sampler": sampler, "steps": steps,
                  "cfg_context": cfg_context, "cfg_clap": cfg_clap, "guidance_interval": guidance_interval,
                  "key_lock": key_lock, "harmony": harmony, "precision": precision}
            if inputs["context"] is None:
                kw["seconds"] = item["target"].shape[-1] / SAMPLE_RATE
            if inputs["bridge"] == "uncond":
                kw["reference"] = model.bridge.sample(None, seed=seed)
            return model.generate(**kw)[0]
        return generate

    return {s.name: make(s) for s in chosen}


def codec_generators(codec_path: str | Path, clap) -> dict[str, Generator]:
    """The ``"codec"`` setting alone, from a codec file rather than a bundle: each pair's true stem through
    that codec (``Accompanist.reconstruct``: encode, pseudo-stereo decode, the generated stems' loudness).
    For a codec whose latent models are not trained yet, this row is what they could reach at best."""
    from ..codec import load_codec  # noqa: PLC0415
    from ..pipeline import Accompanist  # noqa: PLC0415

    return {"codec": _reconstruction(Accompanist(load_codec(codec_path), clap, {}))}


def _reconstruction(model) -> Generator:
    """The ``"codec"`` setting's generator: each pair's true stem through ``model``'s codec."""
    def generate(item: dict, name: str, seed: int):
        return model.reconstruct(item["target"], item["context"], seed=seed)
    return generate


def noise_stems(items: Sequence[Mapping], seed: int) -> list[np.ndarray]:
    """White noise ``[2, N]`` per pair, seeded by ``(seed, index)``, at the target's loudness (LUFS)."""
    out = []
    for it in items:
        target = it["target"]
        rng = np.random.default_rng([int(seed), 7, int(it["index"])])
        noise = rng.standard_normal(target.shape).astype(np.float32) * np.float32(0.1)
        noise = gain_db(noise, loudness(target, SAMPLE_RATE) - loudness(noise, SAMPLE_RATE))
        out.append(np.clip(noise, -1.0, 1.0))
    return out


def random_stems(items: Sequence[Mapping], seed: int) -> list[np.ndarray]:
    """True stems re-paired at random: pair i gets the target of pair ``p[i] != i`` (derangement)."""
    perm = derangement(len(items), int(seed))
    return [items[int(j)]["target"] for j in perm]
