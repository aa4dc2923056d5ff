"""Typed, user-facing errors.

Every failure a user can cause (bad file, bad argument, incompatible checkpoint) raises a subclass of
:class:`DiffariffError` with a one-line message. The CLI prints ``diffariff: error: <message>`` and
exits with :attr:`DiffariffError.exit_code` (2 for bad input, 1 for internal failures), never a
traceback.
"""

from __future__ import annotations


class DiffariffError(Exception):
    """Base class of every error diffariff reports to a user."""

    exit_code = 1


class InputError(DiffariffError):
    """The user gave something unusable (file, argument, value)."""

    exit_code = 2


class AudioFileError(InputError):
    """An audio file could not be used."""


class AudioNotFoundError(AudioFileError):
    """The audio file does not exist (or is not a regular file)."""


class NotAudioError(AudioFileError):
    """The file exists but is not readable audio (wrong format, truncated header, text file)."""


class EmptyAudioError(AudioFileError):
    """The audio has zero samples."""


class NonFiniteAudioError(AudioFileError):
    """The audio contains NaN or infinite samples."""


class SampleRateError(AudioFileError):
    """The sample rate is absurd (outside the supported range)."""


class AudioTooLongError(AudioFileError):
    """The audio is longer than the configured limit."""


class OutputPathError(InputError):
    """An output cannot be written there: it is one of the call's inputs (without an explicit overwrite),
    a folder, or its folder cannot be created or written."""


class CheckpointError(InputError):
    """A checkpoint or model bundle is missing, corrupt or of the wrong kind/version."""


class ConfigError(InputError):
    """A configuration is invalid (unknown key, wrong type, impossible value)."""


class DatasetError(InputError):
    """A dataset folder does not have the expected layout."""


class MissingDependencyError(DiffariffError):
    """An optional tool or package is missing; the message names what to install."""

    exit_code = 2
