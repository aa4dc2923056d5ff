"""Song styles: each one a typed recipe of tempo, meter, harmony idioms, grooves, part styles and
instrument preferences. The song planner draws one style per song and then everything else from it.

Tempo is in quarter notes per minute for every meter (a 6/8 bar is three quarter notes long).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Every role a part can play; also the metadata vocabulary.
ROLES = ("drums", "bass", "chords", "pad", "arpeggio", "lead", "counter-melody")


@dataclass(frozen=True)
class Style:
    """A style recipe. ``role_prob``: chance that each optional role appears in a song (drums and
    bass are in most styles; the planner always keeps at least two parts). ``boost``: GM programs made
    four times likelier for a role in this style. ``swing``: delay of off-beat subdivisions as a
    fraction of the subdivision (0 = straight). ``tags[0]`` is the genre name (every stem carries it);
    the other tags describe the song as a whole."""

    name: str
    tempo: tuple[float, float]
    meters: tuple[tuple[tuple[int, int], float], ...]
    idioms: tuple[str, ...]
    grooves: tuple[str, ...]
    bass_styles: tuple[str, ...]
    comps: tuple[str, ...]
    kits: tuple[int, ...]
    role_prob: dict[str, float]
    boost: dict[str, tuple[int, ...]] = field(default_factory=dict)
    swing: float = 0.0
    tags: tuple[str, ...] = ()


_P = {"drums": 0.95, "bass": 0.95, "chords": 0.85, "pad": 0.45, "arpeggio": 0.4, "lead": 0.75,
      "counter-melody": 0.4}


def _probs(**over: float) -> dict[str, float]:
    out = dict(_P)
    for k, v in over.items():
        out[k.replace("_", "-")] = v
    return out


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("pop", (88, 128), (((4, 4), 1.0),),
          ("pop_I_V_vi_IV", "pop_I_vi_IV_V", "pop_vi_IV_I_V", "pop_I_IV_vi_V", "canon"),
          ("pop", "rock", "half_time"), ("root", "root_fifth", "octave", "syncopated", "root8"),
          ("pulse8", "pop_sync", "sustained", "strum", "halves"), (0, 8, 16), _probs(),
          {"chords": (0, 1, 4, 25, 27), "lead": (80, 81, 73, 65, 56), "pad": (89, 90, 48)},
          tags=("pop", "catchy")),
    Style("rock", (100, 160), (((4, 4), 1.0),),
          ("rock_I_IV_V_IV", "minor_i_VI_III_VII", "mixolydian_I_bVII_IV", "pop_I_V_vi_IV",
           "minor_i_iv_VII_III"),
          ("rock", "half_time"), ("root8", "root_fifth", "root"), ("power", "pulse8", "strum", "halves"),
          (0, 16, 8), _probs(pad=0.2, arpeggio=0.2),
          {"chords": (29, 30, 27, 18, 16), "lead": (29, 30, 81, 18), "bass": (33, 34)},
          tags=("rock", "energetic")),
    Style("funk", (90, 118), (((4, 4), 1.0),),
          ("dorian_vamp", "dorian_i_ii", "mixolydian_I_bVII_IV", "minor7_i_iv"),
          ("funk",), ("syncopated", "octave"), ("stabs16", "offbeat"), (0, 8, 24),
          _probs(pad=0.2, counter_melody=0.4),
          {"chords": (7, 28, 27, 4, 16), "bass": (36, 37, 33, 38), "lead": (61, 65, 66, 56, 80),
           "counter-melody": (61, 57, 66)},
          swing=0.12, tags=("funk", "groovy", "syncopated")),
    Style("disco", (110, 128), (((4, 4), 1.0),), ("minor7_i_iv", "pop_vi_IV_I_V", "dorian_vamp"),
          ("disco",), ("octave", "syncopated"), ("offbeat", "pulse8", "stabs16"), (0, 24),
          _probs(pad=0.5),
          {"chords": (27, 4, 28, 48), "pad": (48, 50, 49), "lead": (48, 61, 62, 81), "bass": (33, 38)},
          tags=("disco", "dance", "four on the floor")),
    Style("jazz", (96, 184), (((4, 4), 0.8), ((3, 4), 0.2)),
          ("jazz_ii_V_I", "jazz_turnaround", "jazz_iii_vi_ii_V", "minor_ii_V_i"),
          ("swing",), ("walking",), ("charleston", "halves", "sustained"), (32, 40, 0),
          _probs(pad=0.15, arpeggio=0.15, counter_melody=0.3),
          {"chords": (0, 4, 26, 11), "bass": (32, 32, 35), "lead": (65, 66, 56, 59, 64, 26, 11, 73),
           "counter-melody": (57, 66, 71, 11)},
          swing=0.33, tags=("jazz", "swing")),
    Style("blues", (68, 130), (((4, 4), 1.0),), ("blues_12bar",),
          ("shuffle",), ("walking", "root_fifth"), ("shuffle", "halves", "pulse4"), (0, 8),
          _probs(pad=0.15, arpeggio=0.1),
          {"chords": (0, 3, 16, 27, 4), "lead": (22, 27, 29, 65, 66, 16), "bass": (33, 32, 34)},
          swing=0.33, tags=("blues", "shuffle")),
    Style("bossa", (118, 150), (((4, 4), 1.0),),
          ("jazz_ii_V_I", "jazz_turnaround", "dorian_i_ii", "minor7_i_iv"),
          ("bossa",), ("root_fifth",), ("bossa", "sustained"), (0, 40, 32),
          _probs(pad=0.3, counter_melody=0.3),
          {"chords": (24, 24, 0, 4), "lead": (73, 65, 66, 24, 11, 71), "bass": (32, 33, 35)},
          tags=("bossa nova", "latin", "relaxed")),
    Style("hiphop", (78, 100), (((4, 4), 1.0),),
          ("minor_i_VI_III_VII", "minor7_i_iv", "dorian_vamp", "phrygian_i_bII"),
          ("hiphop",), ("syncopated", "root"), ("sustained", "halves", "pop_sync"), (25, 24, 0),
          _probs(pad=0.5, arpeggio=0.3),
          {"chords": (4, 5, 0, 11, 89), "bass": (38, 39, 33), "lead": (80, 4, 11, 81, 75),
           "arpeggio": (10, 9, 8, 98)},
          swing=0.2, tags=("hip hop", "boom bap", "laid-back")),
    Style("ballad", (58, 84), (((4, 4), 0.7), ((6, 8), 0.3)),
          ("pop_I_V_vi_IV", "canon", "pop_I_vi_IV_V", "minor_i_VI_III_VII"),
          ("ballad", "half_time", "ballad68"), ("root", "root_fifth"), ("sustained", "halves", "compound"),
          (0, 40, 8), _probs(drums=0.7, pad=0.55, arpeggio=0.45, counter_melody=0.45),
          {"chords": (0, 1, 4, 24, 48), "lead": (73, 40, 71, 60, 68, 0), "counter-melody": (42, 60, 41),
           "pad": (48, 49, 89, 52)},
          tags=("ballad", "emotional", "slow")),
    Style("waltz", (84, 168), (((3, 4), 1.0),), ("pop_I_vi_IV_V", "minor_i_iv_v_i", "canon", "jazz_turnaround"),
          ("waltz",), ("root_fifth", "root"), ("waltz", "sustained", "pulse4"), (0, 40, 48),
          _probs(pad=0.3, counter_melody=0.4),
          {"chords": (0, 21, 23, 24, 45, 48), "lead": (40, 73, 21, 71, 110), "bass": (32, 43, 58)},
          tags=("waltz", "three-four time")),
    Style("folk", (88, 140), (((4, 4), 0.5), ((6, 8), 0.5)),
          ("pop_I_IV_vi_V", "mixolydian_I_bVII_IV", "canon", "rock_I_IV_V_IV", "dorian_vamp"),
          ("folk68", "rock", "pop"), ("root_fifth", "root"), ("strum", "compound", "pulse8"), (0, 8, 40),
          _probs(pad=0.2, arpeggio=0.4, counter_melody=0.4),
          {"chords": (25, 24, 21, 105), "lead": (110, 73, 78, 22, 105, 21, 74, 109), "arpeggio": (105, 46, 24),
           "bass": (32, 33)},
          tags=("folk", "acoustic")),
    Style("electronic", (118, 136), (((4, 4), 1.0),),
          ("minor_i_VI_III_VII", "minor_i_VII_VI_VII", "phrygian_i_bII", "ambient_I_IV", "minor7_i_iv"),
          ("four_on_floor",), ("octave", "syncopated", "root8"), ("pulse8", "offbeat", "sustained"), (24, 25),
          _probs(pad=0.6, arpeggio=0.65),
          {"chords": (62, 63, 50, 81, 90), "bass": (38, 39, 87), "lead": (80, 81, 84, 85, 86, 87, 82),
           "arpeggio": (80, 81, 98, 8, 99), "pad": (88, 89, 90, 91, 94, 95)},
          tags=("electronic", "synth", "dance")),
    Style("ambient", (60, 92), (((4, 4), 0.7), ((3, 4), 0.3)),
          ("ambient_I_IV", "lydian_I_II", "dorian_vamp", "minor_i_VI_III_VII"),
          ("half_time", "ballad"), ("root",), ("sustained", "halves"), (48, 40, 24),
          _probs(drums=0.35, bass=0.6, chords=0.4, pad=0.95, arpeggio=0.7, lead=0.5, counter_melody=0.3),
          {"pad": (88, 89, 91, 92, 94, 95, 52, 49), "arpeggio": (10, 8, 98, 108, 46, 11, 99),
           "lead": (73, 75, 77, 79, 85, 52, 53), "chords": (4, 11, 89, 48)},
          tags=("ambient", "atmospheric", "calm")),
    Style("reggae", (66, 92), (((4, 4), 1.0),), ("pop_I_IV_vi_V", "minor7_i_iv", "pop_I_V_vi_IV", "dorian_vamp"),
          ("one_drop",), ("syncopated", "root"), ("offbeat",), (0, 8),
          _probs(pad=0.2, arpeggio=0.15),
          {"chords": (16, 28, 27, 4, 17), "bass": (33, 38, 35), "lead": (56, 65, 16, 61, 22)},
          swing=0.15, tags=("reggae", "offbeat", "laid-back")),
)}

#: Suitable GM programs per role, (program, base weight). Styles boost some of them (x4) and may add
#: programs that are not listed here (their boost gives them weight 4).
ROLE_PROGRAMS: dict[str, tuple[tuple[int, float], ...]] = {
    "bass": ((32, 1.0), (33, 2.0), (34, 1.5), (35, 1.0), (36, 0.7), (37, 0.5), (38, 1.0), (39, 0.8),
             (43, 0.3), (58, 0.15), (87, 0.3)),
    "chords": ((0, 2.0), (1, 0.8), (2, 0.5), (3, 0.3), (4, 1.5), (5, 0.8), (6, 0.3), (7, 0.5), (11, 0.4),
               (16, 0.8), (17, 0.4), (18, 0.5), (19, 0.15), (21, 0.3), (24, 1.0), (25, 1.2), (26, 0.7),
               (27, 1.0), (28, 0.4), (29, 0.4), (30, 0.3), (46, 0.2), (48, 0.6), (49, 0.4), (50, 0.4),
               (61, 0.3), (62, 0.3), (63, 0.2), (15, 0.15), (12, 0.2)),
    "pad": ((48, 1.0), (49, 1.0), (50, 0.8), (51, 0.6), (52, 0.7), (53, 0.5), (54, 0.3), (88, 1.0),
            (89, 1.2), (90, 0.8), (91, 0.6), (92, 0.6), (93, 0.4), (94, 0.6), (95, 0.6), (19, 0.3),
            (20, 0.2), (44, 0.3), (101, 0.2)),
    "arpeggio": ((0, 0.8), (4, 0.6), (5, 0.6), (6, 0.5), (8, 0.5), (9, 0.4), (10, 0.5), (11, 0.6),
                 (12, 0.6), (13, 0.4), (24, 0.7), (25, 0.6), (27, 0.5), (45, 0.4), (46, 0.7), (80, 0.7),
                 (81, 0.7), (98, 0.4), (99, 0.2), (104, 0.2), (105, 0.3), (107, 0.3), (108, 0.4),
                 (114, 0.2), (15, 0.3)),
    "lead": ((0, 0.4), (11, 0.4), (16, 0.3), (22, 0.5), (26, 0.5), (27, 0.5), (29, 0.4), (30, 0.4),
             (40, 0.8), (41, 0.3), (56, 0.8), (57, 0.4), (59, 0.4), (60, 0.4), (61, 0.3), (64, 0.5),
             (65, 0.8), (66, 0.7), (68, 0.6), (69, 0.3), (71, 0.7), (72, 0.2), (73, 1.0), (74, 0.3),
             (75, 0.4), (77, 0.2), (78, 0.3), (79, 0.3), (80, 0.8), (81, 0.8), (82, 0.3), (83, 0.3),
             (84, 0.3), (85, 0.3), (86, 0.2), (87, 0.2), (105, 0.2), (109, 0.1), (110, 0.3), (111, 0.15),
             (104, 0.15), (114, 0.15), (54, 0.2), (13, 0.2), (12, 0.2)),
    "counter-melody": ((4, 0.5), (11, 0.5), (26, 0.4), (40, 0.6), (41, 0.6), (42, 1.0), (48, 0.4),
                       (52, 0.3), (53, 0.4), (57, 0.6), (60, 0.8), (66, 0.5), (67, 0.3), (68, 0.5),
                       (69, 0.5), (70, 0.6), (71, 0.8), (73, 0.6), (24, 0.3), (61, 0.3), (85, 0.2),
                       (21, 0.2), (12, 0.3)),
}
