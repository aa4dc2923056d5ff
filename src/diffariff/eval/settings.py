"""The conditioning settings of the generation protocol (Table 1) and the clip format every row shares.

:class:`Setting` says whether a row's generator gets the context and which CLAP input; :data:`SETTINGS`
lists Table 1's rows (each ``name`` is also a folder name under ``--candidates``); :func:`setting_for`
reads a custom candidates folder's name as a setting. Shared by :mod:`diffariff.eval.candidates` (which
builds the generators) and :mod:`diffariff.eval.protocol` (which scores them).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Sample rate of every clip in the protocol (Hz).
SAMPLE_RATE = 48_000
#: Channels of every clip in the protocol (mono candidates are duplicated).
CHANNELS = 2


@dataclass(frozen=True)
class Setting:
    """A conditioning setting of Table 1: whether the context is given and which CLAP input.

    ``clap``: ``"audio"`` (reference clip), ``"text"`` (prompt), ``"none"``, ``"bridge-text"``
    (text embedding mapped to an audio embedding by the bridge) or ``"bridge-uncond"`` (CLAP_A*:
    an audio embedding sampled by the unconditional bridge) or ``"prior"`` (an audio embedding sampled
    by the bundle's context prior from the context: the producer gives only the context, the system
    picks the instrument). ``"codec"`` is not a generation but the
    ceiling of any latent model: the real target passed through the bundle's codec.

    ``context_from``: ``"own"`` (the pair's context) or ``"other"`` (the context of pair ``p[i]`` of the
    ``random`` bound's derangement, i.e. another song's: the harmony ablation). The rhythm and key fits are
    always measured against the pair's own context, so an ``"other"`` row that scores like ``random`` means
    the model follows the context it is given, and one that scores like its ``"own"`` row means it ignores it.
    """

    name: str
    label: str
    context: bool
    clap: str
    context_from: str = "own"


#: Table 1's settings; ``name`` is also the folder name under ``--candidates``.
SETTINGS = (
    Setting("clap_a+ctx", "CLAP_A, ctx", True, "audio"),
    Setting("clap_t+ctx", "CLAP_T, ctx", True, "text"),
    Setting("ctx", "ctx", True, "none"),
    Setting("clap_a", "CLAP_A", False, "audio"),
    Setting("clap_t", "CLAP_T", False, "text"),
    Setting("uncond", "uncond", False, "none"),
    Setting("clap_a_bridge+ctx", "CLAP_A*, ctx", True, "bridge-uncond"),
    Setting("clap_t_bridge+ctx", "CLAP_T (bridge), ctx", True, "bridge-text"),
    Setting("clap_a_bridge", "CLAP_A*", False, "bridge-uncond"),
    Setting("clap_t_bridge", "CLAP_T (bridge)", False, "bridge-text"),
    Setting("ctx_prior", "ctx (context prior)", True, "prior"),
    Setting("clap_a+ctx_other", "CLAP_A, other song's ctx", True, "audio", "other"),
    Setting("ctx_other", "other song's ctx", True, "none", "other"),
    Setting("codec", "real via codec (ceiling)", True, "codec"),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def setting_for(name: str) -> Setting:
    """The :class:`Setting` called ``name``; an unknown name (a custom candidates folder) is taken
    as a context-conditioned setting of unknown CLAP input, so APA is computed for it."""
    return SETTINGS_BY_NAME.get(name, Setting(name, name, True, "unknown"))
