"""Exception hierarchy shared by the whole project.

Every error says which input was wrong, what was wrong with it and what to do.
`rag_report.errors.RagReportError` derives from :class:`EClipError`, so callers can
catch one base class for everything the project raises on bad input.
"""

from __future__ import annotations


class EClipError(Exception):
    """Base class of every error raised on bad input or state by this project."""


class ConfigError(EClipError, ValueError):
    """A configuration value or model-config name is invalid."""


class ImageLoadError(EClipError):
    """An image (PNG, JPEG, DICOM, array) could not be read or is unusable."""


class MissingDecoderError(ImageLoadError):
    """A compressed DICOM transfer syntax needs a decoder package that is not installed."""


class ManifestError(EClipError):
    """A manifest file is missing, malformed, lacks columns or references missing files."""


class FixationsError(EClipError):
    """A gaze fixation file (EGD-CXR or REFLACX) is missing columns or malformed."""


class CheckpointError(EClipError):
    """A saved model checkpoint is missing, incomplete or incompatible."""


class SaveError(EClipError):
    """Writing a checkpoint, model folder or index failed; the version saved before is left intact."""


class DiskFullError(SaveError, OSError):
    """A save ran out of disk space (or quota); the message names the path and the bytes it needed."""
