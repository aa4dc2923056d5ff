"""The built-in synthetic multitrack corpus (procedural songs rendered stem by stem with FluidSynth).

Modules, in pipeline order: ``styles`` (style recipes) and ``theory`` (keys, chords, idioms) ->
``plan`` (one song's structure and parts) -> ``drums`` / ``parts`` (notes per role) -> ``midi``
(one MIDI file per part) -> ``render`` (FluidSynth) -> ``corpus`` (levels, files, metadata; the
public ``build_corpus``, ``render_song``, ``render_example``). ``gm`` is the General MIDI table,
``tags`` the text tags of a stem, ``metadata`` the metadata.json schema and validator, ``stats`` the
variety statistics, ``cli`` the ``diffariff corpus`` command. Import what you need from those modules;
this package file stays empty so that importing ``render`` alone stays cheap.
"""
