"""Musical time of a context: tempo, beats, meter and downbeats (:mod:`.tempo`, :mod:`.meter`), the bar
grid bar-aware editing works on (:mod:`.bars`), and its measured accuracy (:mod:`.evaluate`)."""

from .bars import BarGrid, check_bpm, parse_bars, parse_meter

__all__ = ["BarGrid", "check_bpm", "parse_bars", "parse_meter"]
