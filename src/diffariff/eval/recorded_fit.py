"""Musical fit on recorded music: does a generated stem follow a context nobody here wrote?

Recorded soundtracks come as mixtures, without stems, so the distribution metrics (FAD, APA) have no
real target to compare with. What can be measured is the fit of a generated stem to its context: for
``n`` random spans of recorded mixtures (seeded; the ``test_ood`` split holds sources never trained
on) a stem is generated per prompt, and its rhythm fit and key fit (:mod:`.musical_fit`) are scored
against its own context and, as the chance level, against the next span's context (another song, or
another part of one). A model that follows its context scores clearly higher on the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from .metrics import mean_and_ci
from .musical_fit import key_fit, rhythm_fit

SAMPLE_RATE = 48_000
#: The fits scored, each against the stem's own context and against another span's.
FITS = {"rhythm": rhythm_fit, "key": key_fit}


@dataclasses.dataclass(frozen=True)
class RecordedFitConfig:
    """``n`` spans of ``seconds`` drawn with ``seed``; one stem per prompt in ``prompts`` for each."""

    n: int = 12
    seconds: float = 10.0
    seed: int = 0
    prompts: tuple[str, ...] = ("bass", "piano")

    def __post_init__(self) -> None:
        if int(self.n) < 2:
            raise ValueError(f"n must be >= 2 (the chance level uses another span), got {self.n}")
        if not float(self.seconds) > 0 or not self.prompts:
            raise ValueError("seconds must be > 0 and at least one prompt given")


def recorded_spans(root, split: str, config: RecordedFitConfig) -> list[np.ndarray]:
    """``config.n`` spans float32 ``[2, N]`` at 48 kHz of the recordings of ``split`` under ``root``."""
    from ..data.mixtures import load_mixtures, random_spans

    return random_spans(load_mixtures(root, split=split), int(config.n), float(config.seconds), int(config.seed),
                        SAMPLE_RATE, 2)


def score_fits(generate: Callable[[np.ndarray, str, int], np.ndarray], spans: Sequence[np.ndarray],
               config: RecordedFitConfig) -> dict:
    """Generate with ``generate(context [2, N], prompt, seed) -> stem [2, N]`` for every span and prompt;
    returns ``{"stems": [per-stem fits], "summary": {"<fit>_own" / "<fit>_other": mean and 95 % CI}}``."""
    rows = []
    for i, context in enumerate(spans):
        other = spans[(i + 1) % len(spans)]
        for p, prompt in enumerate(config.prompts):
            seed = int(config.seed) + i * len(config.prompts) + p
            stem = generate(context, prompt, seed)
            row = {"span": i, "prompt": prompt, "seed": seed}
            for name, fit in FITS.items():
                row[f"{name}_own"] = fit(stem, context, SAMPLE_RATE)
                row[f"{name}_other"] = fit(stem, other, SAMPLE_RATE)
            rows.append(row)
    keys = [f"{name}_{which}" for name in FITS for which in ("own", "other")]
    summary = {k: mean_and_ci([r[k] for r in rows]).as_dict() for k in keys}
    return {"stems": rows, "summary": summary}


def recorded_fit_table(results: dict) -> str:
    """Markdown table of :func:`score_fits`' summary."""
    s = results["summary"]
    cfg = results["config"]

    def cell(key: str) -> str:
        return f"{s[key]['mean']:.3f} ± {s[key]['half_width']:.3f}"

    lines = ["# Musical fit on recorded music", "",
             "| stems | Rhythm, own context ↑ | Rhythm, another span's | Key, own context ↑ | Key, another span's |",
             "|---|---|---|---|---|",
             f"| {len(results['stems'])} | {cell('rhythm_own')} | {cell('rhythm_other')} | {cell('key_own')} | "
             f"{cell('key_other')} |", "",
             f"- {cfg['n']} spans of {cfg['seconds']:g} s of recorded mixtures (split {results['split']}, seed "
             f"{cfg['seed']}), prompts {', '.join(cfg['prompts'])}; 95 % intervals over the stems.",
             "- 'Another span's': the same stems scored against the next span's context (the chance level)."]
    return "\n".join(lines) + "\n"
