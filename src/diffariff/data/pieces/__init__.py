"""Real musical material for the training corpus: multi-part pieces rendered stem by stem.

Modules, in pipeline order: ``inventory`` (what pieces exist: music21's corpus without Bach, the MIDI
files of openttd-openmsx and planetblupi-music-midi; licences; the Bach guard) -> ``music21_load`` /
``midi_load`` (a source into the neutral ``model.Piece``: parts of timed notes, bars, tempo) ->
``harmony`` (keys, chord labels, a derived bass and chords for single-line tunes) -> ``roles`` (each
part's role and GM program) -> ``arrange`` (tempo variation, looping, bar-aligned windows,
transposition, humanisation) -> ``song`` (one window rendered through the in-process FluidSynth
engine into a corpus song folder) -> ``build`` (order, splits by piece, held-out composers,
resumable parallel build; ``build_pieces_corpus`` is what ``diffariff corpus --source pieces`` runs).
This package file stays empty so that importing one module stays cheap (music21 is imported lazily).
"""
