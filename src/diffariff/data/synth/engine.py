"""An in-process FluidSynth engine: each soundfont is loaded ONCE per process, then any number of
note lists or MIDI files are rendered offline to ``float32 [2, N]``.

The command-line path (:func:`.render.render_midi`) starts one ``fluidsynth`` process per stem and
loads the soundfont every time (FluidR3_GM is 148 MB). Here one ``fluidsynth.Synth`` (pyfluidsynth,
no audio driver) per soundfont and sample rate lives for the whole process. A render resets it to
the state of a fresh synthesiser (every voice off, also those in release; controllers and programs
reset; every render runs on a synthesiser made for it, because FluidSynth's reverb keeps state no
reset clears; its samples come from the process's sample cache, kept by the loaded one), plays the events in time order and pulls audio between them with
``fluid_synth_write_float``, so output is float like the CLI's ``-O float`` (pyfluidsynth's own
``get_samples`` is 16-bit). Same library, same settings (gain 0.5, reverb on, chorus off by
default): the audio matches the CLI's after its one-block (64-sample, 1.3 ms) latency, to ~0.03-2 %
RMS, and the tail ends when no voice sounds, as the CLI's does. The residue: FluidSynth measures a
sample's loop level on its first use in a process and until then keeps decaying voices alive a
little longer (every CLI render is a first use). So renders are bit-identical whatever was rendered
before, except for a sample's first use in the process.

Events are :class:`Event` (seconds, kind, channel, two data values): ``note_on``, ``note_off``,
``program`` (program, bank), ``cc`` (controller, value: pan 10, volume 7, expression 11, reverb send
91, chorus send 93, sustain 64, bank select 0) and ``bend`` (-8192..8191). Presets are chosen per
soundfont with fallbacks (missing drum kit -> kit 0; missing variation bank -> bank 0); a drum-only
bank (``kind == "drums-only"``, e.g. the avldrums kits) answers the drum channel with its one kit.

Worker processes: the cache is per process id, so a forked worker never touches its parent's
synths; it builds (and loads) its own on first use. :data:`LOAD_COUNTS` counts ``sfload`` calls.
libfluidsynth loads samples with OpenMP, whose thread pool does not survive ``fork``; the engine
keeps that OpenMP runtime to one thread so that a process that rendered can still fork workers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from ...errors import InputError, MissingDependencyError
from .notes import Note
from .render import check_soundfont_file, find_soundfont, soundfont_info

SAMPLE_RATE = 48_000
DRUM_CHANNEL = 9
DRUM_BANK = 128
#: FluidSynth processes audio in blocks of this many samples; events land on block boundaries.
BLOCK = 64
#: Longest tail (release + reverb) kept after the last event when no length is asked for (seconds).
MAX_TAIL_SECONDS = 8.0
#: Event kinds and their order at equal times (set-up before note-offs before note-ons).
KIND_ORDER = {"program": 0, "cc": 1, "bend": 2, "note_off": 3, "note_on": 4}

#: ``sfload`` calls made in this process, per soundfont path (what "loaded once" is tested with).
LOAD_COUNTS: Counter[str] = Counter()


@dataclass(frozen=True)
class Event:
    """One synthesiser event at ``time`` seconds: ``kind`` in :data:`KIND_ORDER`, MIDI ``channel``
    0..15 and data ``a`` / ``b`` (note, velocity | program, bank | controller, value | bend, 0)."""

    time: float
    kind: str
    channel: int
    a: int = 0
    b: int = 0


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:  # the module raises ImportError when libfluidsynth is missing
        raise MissingDependencyError(
            "pyfluidsynth needs libfluidsynth (Debian: apt-get install libfluidsynth3; pip install pyfluidsynth)"
        ) from exc
    return fluidsynth


def _bind(lib, name: str, restype, argtypes):
    fn = getattr(lib, name, None)
    if fn is not None:
        fn.restype, fn.argtypes = restype, argtypes
    return fn


def _single_thread_openmp() -> None:
    """Make the system OpenMP runtime (libgomp, which libfluidsynth uses to load samples) run one thread.

    Once a process has run an OpenMP parallel region, its forked children hang in their first one
    (GNU OpenMP's thread pool does not survive fork): a process that loaded a soundfont and then forked
    workers (a Pool) deadlocked in ``sfload``. With one thread no pool is ever created. Only the system
    libgomp is affected (torch wheels bundle their own copy)."""
    global _OMP_SETTER
    if _OMP_SETTER is None:
        name = ctypes.util.find_library("gomp")
        try:
            setter = getattr(ctypes.CDLL(name), "omp_set_num_threads", None) if name else None
        except OSError:
            setter = None
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
        _OMP_SETTER = setter or (lambda n: None)
    _OMP_SETTER(1)  # per calling thread (an OpenMP setting is per thread): called before every sfload


_OMP_SETTER = None


class _Lib:
    """The few libfluidsynth calls pyfluidsynth does not wrap the way we need."""

    def __init__(self) -> None:
        fs = _fluidsynth()
        lib = fs._fl
        vp, ci, cf = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        self.write_float = _bind(lib, "fluid_synth_write_float", ci, [vp, ci, vp, ci, ci, vp, ci, ci])
        self.set_gain = _bind(lib, "fluid_synth_set_gain", None, [vp, cf])
        self.reverb_on = _bind(lib, "fluid_synth_reverb_on", ci, [vp, ci, ci])
        self.chorus_on = _bind(lib, "fluid_synth_chorus_on", ci, [vp, ci, ci])
        self.voices = _bind(lib, "fluid_synth_get_active_voice_count", ci, [vp])
        # re-initialises the reverb and chorus (their delay lines are cleared; nothing else clears them)
        self.set_sample_rate = _bind(lib, "fluid_synth_set_sample_rate", None, [vp, cf])
        set_log = _bind(lib, "fluid_set_log_function", vp, [ci, vp, vp])
        if set_log is not None:  # warnings (missing presets, unknown RIFF chunks) would flood stderr
            for level in (2, 3, 4):  # FLUID_WARN, FLUID_INFO, FLUID_DBG
                set_log(level, None, None)
        if self.write_float is None:
            raise MissingDependencyError("this libfluidsynth has no fluid_synth_write_float")


_LIB: _Lib | None = None


def _lib() -> _Lib:
    global _LIB
    if _LIB is None:
        _LIB = _Lib()
    return _LIB


class _Font:
    """One soundfont loaded into its own synthesiser."""

    def __init__(self, path: Path, sample_rate: int, *, counted: bool = True) -> None:
        fs = _fluidsynth()
        lib = _lib()
        self.path = path
        self.kind = soundfont_info(path).kind
        self.sample_rate = int(sample_rate)
        self.synth = fs.Synth(gain=0.5, samplerate=float(sample_rate), channels=16)
        self.synth.setting("synth.reverb.active", 1)
        self.synth.setting("synth.chorus.active", 1)
        _single_thread_openmp()
        self.sfid = self.synth.sfload(str(path))
        LOAD_COUNTS[str(path)] += int(counted)
        if self.sfid < 0:
            self.synth.delete()
            raise InputError(f"fluidsynth could not load the soundfont {path}")
        self.lib = lib
        self.pulled = 0  # samples rendered so far (FluidSynth's 64-sample block phase)
        self._presets: dict[tuple[int, int], bool] = {}
        self.drum_preset = (0, 0) if self.kind == "drums-only" else (DRUM_BANK, 0)

    def pull(self, n: int) -> None:
        """Render ``n`` samples into a scratch buffer (lets queued voice events take effect)."""
        if n > 0:
            scratch = np.zeros((2, n), dtype=np.float32)
            self.write(scratch, 0, n)

    def write(self, out: np.ndarray, start: int, n: int) -> None:
        """Render ``n`` samples into ``out[:, start:start + n]`` (``out`` float32, C-contiguous rows)."""
        self.lib.write_float(self.synth.synth, n, out[0].ctypes.data, start, 1, out[1].ctypes.data, start, 1)
        self.pulled += n

    def reset(self) -> None:
        """Back to the state of a fresh synthesiser: no voice (also none in release), empty reverb and
        chorus, controllers and programs at their defaults. Every render starts with it, so a render
        depends only on its own events."""
        self.pull(-self.pulled % BLOCK)  # finish FluidSynth's current block: events land on a fresh one
        for ch in range(16):
            self.synth.all_sounds_off(ch)  # system_reset alone leaves releasing voices sounding
        self.pull(BLOCK)
        if self.lib.set_sample_rate is not None:
            self.lib.set_sample_rate(self.synth.synth, float(self.sample_rate // 2))
            self.pull(BLOCK)
            self.lib.set_sample_rate(self.synth.synth, float(self.sample_rate))
            self.pull(BLOCK)
        self.synth.system_reset()
        self.pull(BLOCK)

    def has_preset(self, bank: int, program: int) -> bool:
        key = (int(bank), int(program))
        if key not in self._presets:
            self._presets[key] = bool(self.synth.sfpreset_name(self.sfid, key[0], key[1]))
        return self._presets[key]

    def resolve(self, channel: int, bank: int, program: int) -> tuple[int, int] | None:
        """The (bank, program) this soundfont plays for a program change, or None (silent channel)."""
        if channel == DRUM_CHANNEL:
            cands = [self.drum_preset] if self.kind == "drums-only" else [(DRUM_BANK, program), (DRUM_BANK, 0)]
        elif self.kind == "drums-only":
            return None
        else:
            cands = [(bank, program), (0, program), (0, 0)]
        return next((c for c in cands if self.has_preset(*c)), None)

    def select(self, channel: int, bank: int, program: int) -> tuple[int, int] | None:
        preset = self.resolve(channel, bank, program)
        if preset is None:
            self.synth.program_unset(channel)
        else:
            self.synth.program_select(channel, self.sfid, preset[0], preset[1])
        return preset


class FluidEngine:
    """Renders events with FluidSynth in this process; soundfonts are loaded on first use and kept.

    Args:
        sample_rate: output rate (Hz); one synthesiser per soundfont at this rate.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = int(sample_rate)
        self._fonts: dict[str, _Font] = {}
        self._pid = os.getpid()

    def font(self, soundfont: str | os.PathLike) -> _Font:
        """The loaded soundfont (loaded now if this process has not loaded it yet)."""
        if os.getpid() != self._pid:  # a forked child: the parent's synths are not ours to use
            self._fonts, self._pid = {}, os.getpid()
        key = str(Path(soundfont))
        if key not in self._fonts:
            self._fonts[key] = _Font(check_soundfont_file(soundfont), self.sample_rate)
        return self._fonts[key]

    def resolve_preset(self, soundfont: str | os.PathLike, channel: int, bank: int,
                       program: int) -> tuple[int, int] | None:
        """The (bank, program) ``soundfont`` would play for this program change (None: silent)."""
        return self.font(soundfont).resolve(channel, bank, program)

    def render(self, events: Iterable[Event], soundfont: str | os.PathLike, *, seconds: float | None = None,
               gain: float = 0.5, reverb: bool = True, chorus: bool = False,
               max_tail_seconds: float = MAX_TAIL_SECONDS) -> np.ndarray:
        """Render ``events`` through ``soundfont`` to ``float32 [2, N]``.

        With ``seconds``, N is exactly that long (later events are dropped). Without it, rendering
        goes on after the last event until no voice sounds (at most ``max_tail_seconds``), as the
        command-line renderer does.
        """
        evs = list(events)
        bad = {e.kind for e in evs} - set(KIND_ORDER)
        if bad:
            raise ValueError(f"unknown event kind(s) {sorted(bad)}; kinds are {sorted(KIND_ORDER)}")
        font = self.font(soundfont)
        # FluidSynth keeps state that no reset clears (its reverb: re-initialising the sample rate
        # leaves 1e-5..2e-3 of the previous render), so every render gets a synthesiser of its own.
        # The loaded one keeps the samples in the process's sample cache: ~0.15 s, not a load.
        fresh = _Font(font.path, self.sample_rate, counted=False)
        try:
            return self._render(fresh, evs, seconds, gain, reverb, chorus, max_tail_seconds)
        finally:
            fresh.synth.delete()

    def _render(self, font: _Font, evs: list[Event], seconds: float | None, gain: float, reverb: bool,
                chorus: bool, max_tail_seconds: float) -> np.ndarray:
        synth, lib = font.synth, font.lib
        evs.sort(key=lambda e: (e.time, KIND_ORDER[e.kind]))
        sr = self.sample_rate
        font.reset()
        lib.set_gain(synth.synth, float(gain))
        if lib.reverb_on is not None:
            lib.reverb_on(synth.synth, -1, int(bool(reverb)))
        if lib.chorus_on is not None:
            lib.chorus_on(synth.synth, -1, int(bool(chorus)))
        for ch in sorted({e.channel for e in evs}):  # default presets, also for drum-only banks
            font.select(ch, 0, 0)
        total = None if seconds is None else int(round(float(seconds) * sr))
        last = int(round(evs[-1].time * sr)) if evs else 0
        cap = total if total is not None else last + int(round(max_tail_seconds * sr)) + BLOCK
        out = np.zeros((2, max(cap, 1)), dtype=np.float32)
        pos = 0
        banks = [0] * 16

        def pull(upto: int) -> None:
            nonlocal pos
            upto = min(upto, cap)
            if upto > pos:
                font.write(out, pos, upto - pos)
                pos = upto

        for e in evs:
            at = int(round(e.time * sr))
            if total is not None and at >= total:
                break
            pull(at)
            ch = int(e.channel)
            if e.kind == "note_on":
                if e.b > 0:
                    synth.noteon(ch, int(e.a), int(e.b))
                else:
                    synth.noteoff(ch, int(e.a))
            elif e.kind == "note_off":
                synth.noteoff(ch, int(e.a))
            elif e.kind == "program":
                font.select(ch, int(e.b) if e.b else banks[ch], int(e.a))
            elif e.kind == "cc":
                if e.a == 0:
                    banks[ch] = int(e.b)
                else:
                    synth.cc(ch, int(e.a), int(e.b))
            elif e.kind == "bend":
                synth.pitch_bend(ch, int(e.a))
        if total is not None:
            pull(total)
            return out
        pull(last)
        step = 16 * BLOCK  # the tail: until no voice sounds, like the CLI's fast renderer
        while pos < cap and lib.voices(synth.synth) > 0:
            pull(pos + step)
        return out[:, : max(pos, 1)]

    def render_midi(self, midi: str | os.PathLike | mido.MidiFile, soundfont: str | os.PathLike, *,
                    seconds: float | None = None, **kwargs) -> np.ndarray:
        """Render a MIDI file (path or ``mido.MidiFile``); ``kwargs`` as for :meth:`render`."""
        return self.render(midi_events(midi), soundfont, seconds=seconds, **kwargs)


_ENGINES: dict[tuple[int, int], FluidEngine] = {}


def get_engine(sample_rate: int = SAMPLE_RATE) -> FluidEngine:
    """This process's engine for ``sample_rate`` (created on first use, then shared)."""
    key = (os.getpid(), int(sample_rate))
    if key not in _ENGINES:
        _ENGINES[key] = FluidEngine(sample_rate)
    return _ENGINES[key]


def midi_events(midi: str | os.PathLike | mido.MidiFile) -> list[Event]:
    """The synthesiser events of a MIDI file (type 0 or 1), times in seconds (tempo map applied)."""
    try:
        mid = midi if isinstance(midi, mido.MidiFile) else mido.MidiFile(os.fspath(midi))
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise InputError(f"not a readable MIDI file: {midi} ({exc})") from exc
    if mid.type == 2:
        raise InputError(f"{midi}: MIDI type 2 (independent sequences) is not supported")
    events: list[Event] = []
    now = 0.0
    for msg in mid:  # merged tracks, msg.time = seconds since the previous message
        now += msg.time
        if msg.is_meta:
            continue
        if msg.type == "note_on":
            events.append(Event(now, "note_on" if msg.velocity > 0 else "note_off", msg.channel, msg.note,
                                msg.velocity))
        elif msg.type == "note_off":
            events.append(Event(now, "note_off", msg.channel, msg.note))
        elif msg.type == "program_change":
            events.append(Event(now, "program", msg.channel, msg.program))
        elif msg.type == "control_change":
            events.append(Event(now, "cc", msg.channel, msg.control, msg.value))
        elif msg.type == "pitchwheel":
            events.append(Event(now, "bend", msg.channel, msg.pitch))
    return events


def part_events(notes: Sequence[Note], *, tempo: float, program: int, is_drum: bool, pan: float = 0.0,
                reverb: int = 40, chorus: int = 0, volume: int = 100, bank: int = 0,
                bends: Sequence[tuple[float, int]] = ()) -> list[Event]:
    """The events of one part, as :func:`.midi.write_part_midi` would write them: ``notes`` in
    quarter-note beats at ``tempo`` (quarter notes per minute), one channel (10 for drums), program,
    volume, pan (-1..1), reverb and chorus sends at time 0; ``bends`` are (beat, value) pitch bends."""
    ch = DRUM_CHANNEL if is_drum else 0
    spb = 60.0 / float(tempo)
    evs = [Event(0.0, "program", ch, int(program), int(bank)),
           Event(0.0, "cc", ch, 7, int(np.clip(volume, 0, 127))),
           Event(0.0, "cc", ch, 10, int(np.clip(round(64 + pan * 63), 0, 127))),
           Event(0.0, "cc", ch, 91, int(np.clip(reverb, 0, 127))),
           Event(0.0, "cc", ch, 93, int(np.clip(chorus, 0, 127)))]
    for n in notes:
        on = max(0.0, n.start * spb)
        off = max(on + 1.0 / SAMPLE_RATE, (n.start + n.dur) * spb)
        evs.append(Event(on, "note_on", ch, int(n.pitch), int(np.clip(n.velocity, 1, 127))))
        evs.append(Event(off, "note_off", ch, int(n.pitch)))
    evs += [Event(max(0.0, b * spb), "bend", ch, int(np.clip(v, -8192, 8191))) for b, v in bends]
    return evs


def render_midi_engine(
    midi_path: str | os.PathLike,
    soundfont: str | os.PathLike | None = None,
    sample_rate: int = 48_000,
    *,
    gain: float = 0.5,
    reverb: bool = True,
    chorus: bool = False,
    seconds: float | None = None,
) -> np.ndarray:
    """Drop-in for :func:`.render.render_midi` (same arguments, same ``float32 [2, N]`` with the tail
    kept), rendered in this process with the soundfont loaded once per process. ``seconds`` (not in
    ``render_midi``) renders exactly that long instead, skipping a tail the caller would cut anyway."""
    sf2 = find_soundfont(soundfont)
    return get_engine(sample_rate).render_midi(midi_path, sf2, seconds=seconds, gain=gain, reverb=reverb,
                                               chorus=chorus)
