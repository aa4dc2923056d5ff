"""Gaps in generated stems (:mod:`diffariff.pipeline.gaps`): a silent span cut into a rendered stem is
found in its latents by the shipped codec's levels, at the right place, and sampled again by the default
bundle's models while every frame away from it stays bit-equal; a stem without gaps is left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffariff.audio_spool import SpooledAudio
from diffariff.pipeline import Accompanist
from diffariff.pipeline.gaps import (
    FLOOR_DB,
    MIN_GAP_SECONDS,
    audio_frame_levels_db,
    find_gaps,
    frame_levels_db,
)
from diffariff.request import GenerationRequest

SR = 48_000


@pytest.fixture(scope="module")
def acc():
    try:
        return Accompanist.from_pretrained("default", for_sampler="consistency")
    except Exception as e:  # pragma: no cover - a checkout without the shipped bundle
        pytest.skip(f"no default bundle: {e}")


@pytest.fixture(scope="module")
def music(render_notes):
    """12 s of a piano context and a bass stem that plays throughout, and the bass with 3 s (4-7 s) cut out."""
    piano = render_notes(0, [60, 64, 67, 72, 69, 65, 62, 67] * 6, beat_seconds=0.25, seconds=12.0)
    bass = render_notes(33, [36, 43, 41, 38, 36, 45, 43, 40] * 6, beat_seconds=0.25, seconds=12.0)
    holed = bass.copy()
    holed[:, 4 * SR:7 * SR] = 0.0
    return piano + bass, bass, holed


def _latents(acc, audio: np.ndarray) -> torch.Tensor:
    return acc.encode(audio)  # [1, D, T]


def test_a_silent_span_is_found_where_it_was_cut(acc, music):
    context, bass, holed = music
    fps = SR / acc.samples_per_frame
    ctx_db = frame_levels_db(acc.codec, _latents(acc, context))[0]
    min_frames = int(round(MIN_GAP_SECONDS * fps))
    whole, _ = find_gaps(frame_levels_db(acc.codec, _latents(acc, bass))[0], ctx_db, min_frames)
    assert whole == []
    gaps, threshold = find_gaps(frame_levels_db(acc.codec, _latents(acc, holed))[0], ctx_db, min_frames)
    assert len(gaps) == 1
    start, end = gaps[0][0] / fps, gaps[0][1] / fps
    assert abs(start - 4.0) < 0.5 and abs(end - 7.0) < 0.5, (start, end)
    assert np.isfinite(threshold)


def test_the_context_levels_from_its_audio_find_the_same_gap(acc, music):
    """The pipeline reads the context's levels from its audio (no decoder pass): the gap found against
    them is the one found against the codec's levels of the context latents."""
    context, _, holed = music
    hop = acc.samples_per_frame
    min_frames = int(round(MIN_GAP_SECONDS * SR / hop))
    stem_db = frame_levels_db(acc.codec, _latents(acc, holed))[0]
    from_audio = audio_frame_levels_db(context, hop, stem_db.shape[0])
    from_codec = frame_levels_db(acc.codec, _latents(acc, context))[0]
    assert find_gaps(stem_db, from_audio, min_frames)[0] == find_gaps(stem_db, from_codec, min_frames)[0] != []
    # the levels themselves: the cut bass alone is at the floor inside its cut, and a frame's level is its
    # mean square (the last, short frame its own samples' only)
    levels = audio_frame_levels_db(holed, hop, stem_db.shape[0])
    inside = levels[int(4.2 * SR / hop):int(6.8 * SR / hop)]
    assert np.all(inside == FLOOR_DB) and np.median(levels) > -40.0
    j = 10
    frame = holed[:, j * hop:(j + 1) * hop].astype(np.float64)
    assert levels[j] == pytest.approx(10 * np.log10(np.mean(frame ** 2)), abs=1e-9)
    short = holed[:, : 5 * hop + 100]
    tail = audio_frame_levels_db(short, hop, 7)
    assert tail[5] == pytest.approx(10 * np.log10(np.mean(short[:, 5 * hop:].astype(np.float64) ** 2)), abs=1e-9)
    assert tail[6] == FLOOR_DB


def test_context_levels_of_a_spooled_context_equal_the_array_ones(music, tmp_path):
    context, _, _ = music
    spooled = SpooledAudio(2, folder=tmp_path)
    for a in range(0, context.shape[1], 30_000):  # blocks that do not line up with the frames
        spooled.append(context[:, a:a + 30_000])
    hop, frames = 2048, -(-context.shape[1] // 2048)
    np.testing.assert_allclose(audio_frame_levels_db(spooled, hop, frames, block_frames=7),
                               audio_frame_levels_db(context, hop, frames), atol=1e-6)
    spooled.close()


def test_a_gap_is_sampled_again_and_nothing_else_changes(acc, music):
    context, _, holed = music
    z = _latents(acc, holed)
    ctx = acc.prepare_context(context)
    req = GenerationRequest(sampler="consistency", steps=2)
    acc.last_seed, acc.last_windows = 123, [(0, z.shape[-1])]
    out = acc._fill_gaps(z, ctx.latents, None, req, seed=5, ctx_chroma=ctx.chroma)
    assert (acc.last_seed, acc.last_windows) == (123, [(0, z.shape[-1])])  # the generation's own, kept
    assert len(acc.last_gaps) == 1
    gap = acc.last_gaps[0]
    assert gap.filled and gap.silent_after < gap.silent_before
    fps = SR / acc.samples_per_frame
    changed = torch.nonzero((out != z).any(dim=1)[0]).flatten()
    assert changed.numel() > 0
    # only the gap and its two padding frames on each side were sampled again
    assert changed.min() >= int(gap.start_s * fps) - 3 and changed.max() <= int(np.ceil(gap.end_s * fps)) + 2
    levels = frame_levels_db(acc.codec, out)[0, int(gap.start_s * fps) + 1:int(gap.end_s * fps) - 1]
    before = frame_levels_db(acc.codec, z)[0, int(gap.start_s * fps) + 1:int(gap.end_s * fps) - 1]
    assert np.median(levels) > np.median(before) + 20.0


def test_generation_without_gaps_is_unchanged_and_the_repair_can_be_turned_off(acc, music):
    context, _, _ = music
    stems = acc.generate(context, sampler="consistency", steps=2, seed=3, key_lock=False)
    gaps_on = list(acc.last_gaps)
    plain = acc.generate(context, sampler="consistency", steps=2, seed=3, key_lock=False, fill_gaps=False)
    assert acc.last_gaps == []
    if not gaps_on:  # nothing to repair: bit-equal
        np.testing.assert_array_equal(stems, plain)
    else:
        assert all(g.silent_after <= g.silent_before for g in gaps_on)


def test_the_command_option_and_its_summary(acc):
    from diffariff.commands.generate import gaps_note
    from diffariff.pipeline.gaps import Gap

    acc.last_gaps = [Gap(0, 73.47, 75.99, 30, 0), Gap(0, 100.0, 102.0, 20, 20)]
    assert gaps_note(acc) == "; silent gap at 73.5-76.0 s generated again"
    acc.last_gaps = []
    assert gaps_note(acc) == ""


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["consistency", "dpmpp_2m"])
def test_a_long_rendered_context_gets_a_stem_without_holes(acc, render_notes, sampler):
    """60 s of piano and drums (several generation windows): no run of 2 s or more where the stem is
    25 dB under its own level while the context plays (the measure of ``eval controls``)."""
    from diffariff.eval.dropouts import dropout_runs

    piano = render_notes(0, [60, 64, 67, 72, 69, 65, 62, 67] * 30, beat_seconds=0.25, seconds=60.0)
    drums = render_notes(0, [36, 42, 38, 42] * 60, drum=True, beat_seconds=0.25, seconds=60.0)
    context = piano + drums
    full = Accompanist.from_pretrained("default", for_sampler=sampler)
    for seed in (0, 1):
        stem = full.generate(context, sampler=sampler, seed=seed, text="bass")[0]
        assert len(full.last_windows) > 1
        holes = dropout_runs(stem, context)
        assert holes["longest_s"] < 2.0, (seed, holes["runs"], full.last_gaps)
