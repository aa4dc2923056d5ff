"""The General MIDI level-1 program table: 128 melodic programs, their families and descriptive tags.

Programs are 0-based (0 = Acoustic Grand Piano ... 127 = Gunshot). The family of program ``p`` is
``FAMILIES[p // 8]``. Tags describe the timbre truthfully (how the sound is produced and how it
sounds) and feed the text prompts of the CLAP model, together with role/style tags added per stem.
Drum kits (channel 10, bank 128) have their own small table, :data:`DRUM_KITS`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: GM family names, one per block of 8 programs.
FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects",
)

# (name, descriptive tags) for programs 0..127.
_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Acoustic Grand Piano", ("acoustic piano", "grand piano", "piano", "acoustic", "struck strings")),
    ("Bright Acoustic Piano", ("acoustic piano", "bright piano", "piano", "bright", "acoustic")),
    ("Electric Grand Piano", ("electric grand piano", "electric piano", "piano", "electric")),
    ("Honky-tonk Piano", ("honky-tonk piano", "detuned piano", "piano", "saloon", "acoustic")),
    ("Electric Piano 1", ("electric piano", "rhodes", "tine piano", "warm", "mellow", "electric")),
    ("Electric Piano 2", ("electric piano", "fm electric piano", "dx7 piano", "glassy", "electric")),
    ("Harpsichord", ("harpsichord", "plucked keyboard", "baroque", "bright", "acoustic")),
    ("Clavinet", ("clavinet", "clav", "funky keyboard", "percussive", "electric")),
    ("Celesta", ("celesta", "bell-like", "sparkling", "bright", "keyboard")),
    ("Glockenspiel", ("glockenspiel", "bells", "metallic", "bright", "mallet")),
    ("Music Box", ("music box", "tinkling", "delicate", "bright", "bell-like")),
    ("Vibraphone", ("vibraphone", "vibes", "mallet", "metallic", "mellow")),
    ("Marimba", ("marimba", "mallet", "wooden", "warm", "percussive")),
    ("Xylophone", ("xylophone", "mallet", "wooden", "bright", "percussive")),
    ("Tubular Bells", ("tubular bells", "chimes", "bells", "metallic", "ringing")),
    ("Dulcimer", ("dulcimer", "hammered dulcimer", "struck strings", "metallic", "folk")),
    ("Drawbar Organ", ("drawbar organ", "hammond organ", "organ", "electric", "sustained")),
    ("Percussive Organ", ("percussive organ", "organ", "electric", "clicky", "sustained")),
    ("Rock Organ", ("rock organ", "organ", "gritty", "electric", "sustained")),
    ("Church Organ", ("church organ", "pipe organ", "organ", "majestic", "sustained")),
    ("Reed Organ", ("reed organ", "harmonium", "organ", "reedy", "sustained")),
    ("Accordion", ("accordion", "reedy", "folk", "bellows", "sustained")),
    ("Harmonica", ("harmonica", "blues harp", "reedy", "breathy", "blown")),
    ("Tango Accordion", ("bandoneon", "tango accordion", "accordion", "reedy", "sustained")),
    ("Acoustic Guitar (nylon)", ("nylon guitar", "classical guitar", "acoustic guitar", "plucked", "warm")),
    ("Acoustic Guitar (steel)", ("steel-string guitar", "acoustic guitar", "plucked", "bright", "folk")),
    ("Electric Guitar (jazz)", ("jazz guitar", "hollow-body guitar", "electric guitar", "clean", "mellow")),
    ("Electric Guitar (clean)", ("clean electric guitar", "electric guitar", "clean", "plucked", "bright")),
    ("Electric Guitar (muted)", ("muted electric guitar", "palm-muted guitar", "electric guitar", "muted",
                                 "percussive")),
    ("Overdriven Guitar", ("overdriven guitar", "electric guitar", "overdrive", "crunchy", "rock")),
    ("Distortion Guitar", ("distorted electric guitar", "distortion guitar", "electric guitar", "distorted",
                           "heavy")),
    ("Guitar Harmonics", ("guitar harmonics", "electric guitar", "chiming", "glassy", "bell-like")),
    ("Acoustic Bass", ("acoustic bass", "upright bass", "double bass", "plucked", "warm")),
    ("Electric Bass (finger)", ("electric bass", "fingered bass", "fingerstyle", "warm", "round")),
    ("Electric Bass (pick)", ("electric bass", "picked bass", "pick", "punchy", "bright")),
    ("Fretless Bass", ("fretless bass", "electric bass", "smooth", "singing", "warm")),
    ("Slap Bass 1", ("slap bass", "electric bass", "slapped", "funky", "percussive")),
    ("Slap Bass 2", ("slap bass", "electric bass", "popped", "funky", "bright")),
    ("Synth Bass 1", ("synth bass", "analog bass", "synthesizer", "electronic", "fat")),
    ("Synth Bass 2", ("synth bass", "resonant bass", "synthesizer", "electronic", "punchy")),
    ("Violin", ("violin", "bowed strings", "solo strings", "expressive", "acoustic")),
    ("Viola", ("viola", "bowed strings", "solo strings", "warm", "acoustic")),
    ("Cello", ("cello", "bowed strings", "solo strings", "rich", "warm")),
    ("Contrabass", ("contrabass", "double bass", "bowed strings", "deep", "acoustic")),
    ("Tremolo Strings", ("tremolo strings", "string section", "bowed strings", "tremolo", "tense")),
    ("Pizzicato Strings", ("pizzicato strings", "string section", "plucked strings", "pizzicato",
                           "short")),
    ("Orchestral Harp", ("harp", "orchestral harp", "plucked strings", "delicate", "acoustic")),
    ("Timpani", ("timpani", "kettle drums", "orchestral percussion", "booming", "deep")),
    ("String Ensemble 1", ("string ensemble", "string section", "orchestral strings", "lush", "bowed strings")),
    ("String Ensemble 2", ("slow strings", "string section", "orchestral strings", "soft attack", "lush")),
    ("Synth Strings 1", ("synth strings", "string machine", "synthesizer", "lush", "electronic")),
    ("Synth Strings 2", ("synth strings", "synthesizer", "soft", "electronic", "airy")),
    ("Choir Aahs", ("choir", "voices", "aah vocals", "vocal ensemble", "airy")),
    ("Voice Oohs", ("voices", "ooh vocals", "vocal", "soft", "airy")),
    ("Synth Voice", ("synth voice", "vocal synth", "synthesizer", "airy", "electronic")),
    ("Orchestra Hit", ("orchestra hit", "stab", "orchestral", "punchy", "dramatic")),
    ("Trumpet", ("trumpet", "brass", "bright", "blown", "acoustic")),
    ("Trombone", ("trombone", "brass", "warm", "blown", "acoustic")),
    ("Tuba", ("tuba", "brass", "deep", "blown", "acoustic")),
    ("Muted Trumpet", ("muted trumpet", "trumpet", "brass", "muted", "jazzy")),
    ("French Horn", ("french horn", "horn", "brass", "mellow", "round")),
    ("Brass Section", ("brass section", "horns", "brass", "punchy", "bright")),
    ("Synth Brass 1", ("synth brass", "synthesizer", "brassy", "electronic", "punchy")),
    ("Synth Brass 2", ("synth brass", "synthesizer", "brassy", "electronic", "soft")),
    ("Soprano Sax", ("soprano saxophone", "saxophone", "reed", "bright", "blown")),
    ("Alto Sax", ("alto saxophone", "saxophone", "reed", "expressive", "blown")),
    ("Tenor Sax", ("tenor saxophone", "saxophone", "reed", "breathy", "warm")),
    ("Baritone Sax", ("baritone saxophone", "saxophone", "reed", "deep", "gritty")),
    ("Oboe", ("oboe", "double reed", "woodwind", "nasal", "acoustic")),
    ("English Horn", ("english horn", "cor anglais", "double reed", "woodwind", "dark")),
    ("Bassoon", ("bassoon", "double reed", "woodwind", "low", "reedy")),
    ("Clarinet", ("clarinet", "woodwind", "reed", "woody", "mellow")),
    ("Piccolo", ("piccolo", "flute", "woodwind", "shrill", "bright")),
    ("Flute", ("flute", "woodwind", "breathy", "airy", "blown")),
    ("Recorder", ("recorder", "woodwind", "pure", "soft", "blown")),
    ("Pan Flute", ("pan flute", "pan pipes", "breathy", "airy", "blown")),
    ("Blown Bottle", ("blown bottle", "breathy", "hollow", "airy", "blown")),
    ("Shakuhachi", ("shakuhachi", "bamboo flute", "breathy", "japanese", "blown")),
    ("Whistle", ("whistle", "whistling", "pure", "bright", "blown")),
    ("Ocarina", ("ocarina", "vessel flute", "pure", "soft", "blown")),
    ("Lead 1 (square)", ("square lead", "synth lead", "synthesizer", "chiptune", "hollow")),
    ("Lead 2 (sawtooth)", ("sawtooth lead", "synth lead", "synthesizer", "buzzy", "bright")),
    ("Lead 3 (calliope)", ("calliope lead", "synth lead", "synthesizer", "flute-like", "airy")),
    ("Lead 4 (chiff)", ("chiff lead", "synth lead", "synthesizer", "breathy", "percussive attack")),
    ("Lead 5 (charang)", ("charang lead", "synth lead", "synthesizer", "distorted", "guitar-like")),
    ("Lead 6 (voice)", ("voice lead", "synth lead", "synthesizer", "vocal", "airy")),
    ("Lead 7 (fifths)", ("fifths lead", "synth lead", "synthesizer", "parallel fifths", "hollow")),
    ("Lead 8 (bass + lead)", ("bass and lead", "synth lead", "synthesizer", "fat", "buzzy")),
    ("Pad 1 (new age)", ("new age pad", "synth pad", "synthesizer", "ethereal", "sustained")),
    ("Pad 2 (warm)", ("warm pad", "synth pad", "synthesizer", "warm", "sustained")),
    ("Pad 3 (polysynth)", ("polysynth pad", "synth pad", "synthesizer", "bright", "sustained")),
    ("Pad 4 (choir)", ("choir pad", "synth pad", "synthesizer", "vocal", "airy")),
    ("Pad 5 (bowed)", ("bowed pad", "synth pad", "synthesizer", "glassy", "soft attack")),
    ("Pad 6 (metallic)", ("metallic pad", "synth pad", "synthesizer", "metallic", "sustained")),
    ("Pad 7 (halo)", ("halo pad", "synth pad", "synthesizer", "ethereal", "airy")),
    ("Pad 8 (sweep)", ("sweep pad", "synth pad", "synthesizer", "filter sweep", "evolving")),
    ("FX 1 (rain)", ("rain fx", "synth effects", "synthesizer", "atmospheric", "sparkling")),
    ("FX 2 (soundtrack)", ("soundtrack fx", "synth effects", "synthesizer", "cinematic", "evolving")),
    ("FX 3 (crystal)", ("crystal fx", "synth effects", "synthesizer", "bell-like", "glassy")),
    ("FX 4 (atmosphere)", ("atmosphere fx", "synth effects", "synthesizer", "atmospheric", "plucked")),
    ("FX 5 (brightness)", ("brightness fx", "synth effects", "synthesizer", "bright", "shimmering")),
    ("FX 6 (goblins)", ("goblins fx", "synth effects", "synthesizer", "eerie", "evolving")),
    ("FX 7 (echoes)", ("echoes fx", "synth effects", "synthesizer", "echoing", "atmospheric")),
    ("FX 8 (sci-fi)", ("sci-fi fx", "synth effects", "synthesizer", "eerie", "electronic")),
    ("Sitar", ("sitar", "indian", "plucked strings", "buzzing", "ethnic")),
    ("Banjo", ("banjo", "plucked", "twangy", "bright", "folk")),
    ("Shamisen", ("shamisen", "japanese", "plucked strings", "twangy", "ethnic")),
    ("Koto", ("koto", "japanese", "plucked strings", "delicate", "ethnic")),
    ("Kalimba", ("kalimba", "thumb piano", "plucked", "mellow", "ethnic")),
    ("Bagpipe", ("bagpipe", "drone", "reedy", "nasal", "ethnic")),
    ("Fiddle", ("fiddle", "violin", "bowed strings", "folk", "bright")),
    ("Shanai", ("shehnai", "double reed", "nasal", "indian", "ethnic")),
    ("Tinkle Bell", ("tinkle bell", "bells", "metallic", "bright", "percussive")),
    ("Agogo", ("agogo bells", "cowbells", "metallic", "percussive", "latin")),
    ("Steel Drums", ("steel drums", "steelpan", "caribbean", "metallic", "percussive")),
    ("Woodblock", ("woodblock", "wooden", "percussive", "clicky", "short")),
    ("Taiko Drum", ("taiko drum", "japanese drum", "booming", "percussive", "deep")),
    ("Melodic Tom", ("melodic tom", "tom drum", "percussive", "pitched drum", "punchy")),
    ("Synth Drum", ("synth drum", "electronic drum", "percussive", "electronic", "punchy")),
    ("Reverse Cymbal", ("reverse cymbal", "swell", "cymbal", "sound effect", "rising")),
    ("Guitar Fret Noise", ("guitar fret noise", "squeak", "sound effect", "noisy", "short")),
    ("Breath Noise", ("breath noise", "breathy", "sound effect", "noisy", "airy")),
    ("Seashore", ("seashore", "waves", "sound effect", "noisy", "ambient")),
    ("Bird Tweet", ("bird tweet", "birdsong", "sound effect", "chirping", "high")),
    ("Telephone Ring", ("telephone ring", "ringing", "sound effect", "electronic", "high")),
    ("Helicopter", ("helicopter", "rotor", "sound effect", "noisy", "mechanical")),
    ("Applause", ("applause", "crowd", "sound effect", "noisy", "clapping")),
    ("Gunshot", ("gunshot", "bang", "sound effect", "noisy", "impact")),
)


@dataclass(frozen=True)
class Program:
    """One GM melodic program: 0-based ``number``, GM ``name``, ``family`` and timbre ``tags``."""

    number: int
    name: str
    family: str
    tags: tuple[str, ...]


#: All 128 melodic programs, indexed by program number.
PROGRAMS: tuple[Program, ...] = tuple(
    Program(i, name, FAMILIES[i // 8], tags) for i, (name, tags) in enumerate(_TABLE)
)

#: GM2 / GS drum kits (bank 128 presets) both installed soundfonts answer: program -> (name, tags).
DRUM_KITS: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("Standard Kit", ("drum kit", "acoustic drums", "standard kit")),
    8: ("Room Kit", ("drum kit", "acoustic drums", "room kit", "roomy")),
    16: ("Power Kit", ("drum kit", "power kit", "punchy", "big drums")),
    24: ("Electronic Kit", ("drum kit", "electronic drums", "drum machine", "electronic")),
    25: ("TR-808 Kit", ("drum kit", "808", "drum machine", "electronic", "boomy")),
    32: ("Jazz Kit", ("drum kit", "jazz kit", "acoustic drums", "light")),
    40: ("Brush Kit", ("drum kit", "brushes", "brush kit", "soft", "jazzy")),
    48: ("Orchestra Kit", ("drum kit", "orchestral percussion", "concert drums")),
}

#: Drum kits a soundfont lacks (FluidSynth then plays its standard kit): soundfont file name -> programs.
MISSING_KITS: dict[str, frozenset[int]] = {"TimGM6mb.sf2": frozenset({32}),
                                           # the OPL-3 bank has one kit (0): every other kit plays it
                                           "OPL-3_FM_128M.sf2": frozenset(DRUM_KITS) - {0}}

#: Comfortable MIDI pitch range (lowest, highest) per program; programs not listed use their family's.
_FAMILY_RANGE = {
    "piano": (36, 96), "chromatic percussion": (53, 96), "organ": (36, 96), "guitar": (40, 86),
    "bass": (28, 60), "strings": (55, 96), "ensemble": (40, 88), "brass": (52, 84), "reed": (49, 84),
    "pipe": (60, 96), "synth lead": (48, 91), "synth pad": (36, 88), "synth effects": (40, 90),
    "ethnic": (48, 86), "percussive": (48, 84), "sound effects": (48, 84),
}
_PROGRAM_RANGE = {
    8: (60, 96), 9: (72, 105), 10: (60, 96), 12: (45, 96), 14: (60, 77), 41: (48, 84), 42: (36, 76),
    43: (28, 60), 47: (36, 57), 57: (40, 74), 58: (28, 58), 60: (41, 77), 64: (56, 87), 66: (44, 76),
    67: (36, 69), 68: (58, 91), 69: (52, 81), 70: (34, 72), 71: (50, 91), 72: (74, 102), 73: (60, 96),
    87: (28, 60), 105: (48, 84), 109: (55, 84), 110: (55, 96),
}


def program(number: int) -> Program:
    """The :class:`Program` for a 0-based GM program number (0..127)."""
    if not 0 <= int(number) < 128:
        raise ValueError(f"GM program numbers are 0..127, not {number}")
    return PROGRAMS[int(number)]


def pitch_range(number: int) -> tuple[int, int]:
    """Comfortable (lowest, highest) MIDI pitch of a GM program."""
    return _PROGRAM_RANGE.get(int(number), _FAMILY_RANGE[program(number).family])
