"""The pipeline: the :class:`Accompanist` (``accompanist.py``: context in, new stem out) and its
editing entry points (``edits.py``: inpaint, vary, arrange). Import from here:

    from diffariff.pipeline import Accompanist
"""

from .accompanist import (
           LONG_MODES,
           SAMPLE_RATE,
           Accompanist,
           Context,
           GenerationRequest,
           crossfade_paste,
           read_audio,
)
from .edits import Arrangement

__all__ = ["Accompanist", "Arrangement", "Context", "GenerationRequest", "crossfade_paste", "read_audio", "LONG_MODES",
           "SAMPLE_RATE"]
