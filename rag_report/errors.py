"""Errors of the application layer; all derive from eclip_core's EClipError."""

from __future__ import annotations

from eclip_core.errors import EClipError


class RagReportError(EClipError):
    """Base class of errors raised by rag_report on bad input or state."""


class IndexMismatchError(RagReportError):
    """An index was built with another eCLIP checkpoint (or dimension) than the one given."""


class IndexNotFoundError(RagReportError):
    """An index folder is missing or incomplete."""


class CorruptIndexError(IndexNotFoundError):
    """A file of an index folder is truncated, corrupt or fails its recorded size / checksum."""


class EmptyCorpusError(RagReportError):
    """An index or retrieval was asked for over zero reports."""


class LLMLoadError(RagReportError):
    """A language model could not be found or loaded from the given local path."""


class BundleError(RagReportError):
    """The default bundle is missing, stale or could not be built."""


class HandoffError(RagReportError):
    """A draft could not be written as a DICOM SR or FHIR resource (missing source attributes, bad codes)."""
