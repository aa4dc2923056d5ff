"""context_chroma on FluidSynth-rendered notes: the pitch classes of triads, exact zeros for silence,
frames aligned with the latent frames, shapes for any length, batch and channel layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffariff.data import context_chroma as chroma_module
from diffariff.data.context_chroma import CHROMA_BINS, PITCH_CLASSES, context_chroma
from diffariff.errors import InputError

SPF = 4096
SR = 48_000


def top_classes(chroma: torch.Tensor, k: int = 3) -> set[str]:
    """The ``k`` pitch classes with the most energy over all frames of ``chroma`` [12, T]."""
    return {PITCH_CLASSES[i] for i in chroma.sum(dim=-1).argsort(descending=True)[:k].tolist()}


def note_classes(chroma: torch.Tensor, notes: int, beat_seconds: float) -> list[set[str]]:
    """For each of ``notes`` notes (one per beat), the pitch classes that peak in its frames well inside
    its beat (from 20 % to 80 % of it)."""
    out = []
    for k in range(notes):
        first = int((k + 0.2) * beat_seconds * SR) // SPF
        last = int((k + 0.8) * beat_seconds * SR) // SPF
        out.append({PITCH_CLASSES[i] for i in chroma[:, first:last].argmax(dim=0).tolist()})
    return out


@pytest.mark.parametrize(("pitches", "triad"), [([60, 64, 67], {"C", "E", "G"}), ([62, 66, 69], {"D", "F#", "A"})])
def test_a_rendered_triad_peaks_on_its_three_pitch_classes(render_notes, pitches, triad):
    audio = render_notes(0, pitches, beat_seconds=0.5, seconds=1.6)  # piano, one note per half second
    c = context_chroma(audio, SPF)[0]
    assert c.shape == (CHROMA_BINS, -(-audio.shape[1] // SPF))
    assert top_classes(c) == triad
    assert note_classes(c, 3, 0.5) == [{PITCH_CLASSES[p % 12]} for p in pitches]


def test_bass_notes_are_resolved(render_notes):
    """Fingered bass C2 E2 G2 (65 to 98 Hz: semitones 4 to 6 Hz apart, about one 8192-point bin)."""
    bass = render_notes(33, [36, 40, 43], beat_seconds=0.5, seconds=1.6)
    assert note_classes(context_chroma(bass, SPF)[0], 3, 0.5) == [{"C"}, {"E"}, {"G"}]


def test_silence_is_exactly_zero_and_frames_follow_the_latent_grid(render_notes):
    note = render_notes(0, [69], beat_seconds=0.5, seconds=0.5)  # A4
    audio = np.zeros((2, 12 * SPF), dtype=np.float32)
    audio[:, 5 * SPF:9 * SPF] = note[:, :4 * SPF]  # sound in latent frames 5..8 only
    c = context_chroma(audio, SPF)[0]
    audible = (c.amax(dim=0) > 0).tolist()
    assert audible == [False] * 5 + [True] * 4 + [False] * 3
    assert torch.all(c[:, :5] == 0) and torch.all(c[:, 9:] == 0)
    assert c[:, 5:9].argmax(dim=0).tolist() == [PITCH_CLASSES.index("A")] * 4
    assert torch.allclose(c[:, 5:9].amax(dim=0), torch.ones(4))  # each audible frame scaled to max 1
    assert float(c.min()) >= 0.0
    assert torch.all(context_chroma(np.zeros((2, 3 * SPF), np.float32), SPF) == 0)


@pytest.mark.parametrize("n", [1, 100, SPF - 1, SPF, SPF + 1, 3 * SPF + 17])
def test_shapes_for_any_length(render_notes, n):
    audio = render_notes(0, [60, 64], beat_seconds=0.3, seconds=1.0)[:, :n]
    c = context_chroma(audio, SPF)
    assert c.shape == (1, CHROMA_BINS, -(-n // SPF)) and c.dtype == torch.float32
    assert float(c.min()) >= 0.0 and float(c.max()) <= 1.0


def test_layouts_agree_and_results_are_deterministic(render_notes):
    a = render_notes(0, [60, 64, 67], beat_seconds=0.25, seconds=1.0)
    b = render_notes(33, [36, 43, 41], beat_seconds=0.25, seconds=1.0)
    one = context_chroma(a, SPF)
    assert torch.equal(one, context_chroma(a, SPF))  # deterministic
    assert torch.equal(one, context_chroma(torch.from_numpy(a), SPF))  # torch in, same out
    batch = context_chroma(np.stack([a, b]), SPF)  # [B, C, N]
    assert batch.shape == (2, CHROMA_BINS, one.shape[-1])
    assert torch.equal(batch[0], one[0]) and torch.equal(batch[1], context_chroma(b, SPF)[0])
    mono = a.mean(axis=0, keepdims=True)
    assert torch.allclose(context_chroma(mono, SPF), context_chroma(np.repeat(mono, 2, axis=0), SPF), atol=1e-5)


def test_blocks_of_a_long_context_join_seamlessly(render_notes, monkeypatch):
    audio = np.tile(render_notes(0, [60, 65, 67, 71], beat_seconds=0.2, seconds=0.8), (1, 3))
    whole = context_chroma(audio, SPF)
    monkeypatch.setattr(chroma_module, "BLOCK_FRAMES", 4)
    assert torch.allclose(context_chroma(audio, SPF), whole, atol=1e-5)


def test_bad_audio_raises_input_errors():
    with pytest.raises(InputError, match=r"\[C, N\]"):
        context_chroma(np.zeros(4096, np.float32), SPF)
    with pytest.raises(InputError, match=r"N >= 1"):
        context_chroma(np.zeros((2, 0), np.float32), SPF)
    bad = np.zeros((2, 4096), np.float32)
    bad[0, 7] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        context_chroma(bad, SPF)
    with pytest.raises(InputError, match="samples_per_frame"):
        context_chroma(np.zeros((1, 10), np.float32), 0)
