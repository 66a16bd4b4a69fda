"""Storing a batch's SRs back into a PACS: STOW-RS (DICOMweb) or C-STORE (DIMSE, for a PACS without DICOMweb).

A sender stores one dataset and raises :class:`SendError` when the PACS cannot be reached or refuses it;
the batch records that in the study's summary row and ``--resume`` tries again.

>>> parse_dimse("pacs.local:104:ORTHANC")
('pacs.local', 104, 'ORTHANC')
"""

from __future__ import annotations

from typing import Any, Protocol

from rag_report.errors import HandoffError


class SendError(HandoffError):
    """A PACS could not be reached, or refused a stored object."""


class Sender(Protocol):
    def send(self, dataset: Any) -> None: ...


class StowSender:
    """STOW-RS to a DICOMweb root (``http://host:8042/dicom-web``)."""

    def __init__(self, url: str, client: Any = None) -> None:
        from rag_report.handoff.sources import dicomweb_client

        self.url = url.rstrip("/")
        self.client = client or dicomweb_client(self.url)

    def send(self, dataset: Any) -> None:
        try:
            response = self.client.store_instances([dataset])
        except Exception as exc:  # connection errors and HTTP 4xx/5xx from requests
            status = getattr(getattr(exc, "response", None), "status_code", None)
            said = f"HTTP {status}" if status else type(exc).__name__
            raise SendError(f"STOW-RS to {self.url} failed ({said})") from None
        failed = response.get("00081198") if hasattr(response, "get") else None  # FailedSOPSequence
        if failed is not None and (getattr(failed, "value", None) or failed):
            raise SendError(f"STOW-RS to {self.url}: the PACS refused the SR (FailedSOPSequence)")


def parse_dimse(spec: str) -> tuple[str, int, str]:
    """``HOST:PORT:AET`` -> (host, port, called AE title)."""
    parts = spec.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2]:
        raise SendError(f"--send-dimse {spec!r}: give HOST:PORT:AET, e.g. pacs.local:104:ORTHANC")
    return parts[0], int(parts[1]), parts[2]


class CStoreSender:
    """C-STORE with pynetdicom to a DIMSE-only PACS (one association per SR)."""

    def __init__(self, host: str, port: int, called_aet: str, calling_aet: str = "RAG_REPORT") -> None:
        self.host, self.port, self.called_aet, self.calling_aet = host, port, called_aet, calling_aet

    def send(self, dataset: Any) -> None:
        from pynetdicom import AE

        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        ae.add_requested_context(str(dataset.SOPClassUID))
        where = f"{self.called_aet}@{self.host}:{self.port}"
        assoc = ae.associate(self.host, self.port, ae_title=self.called_aet)
        if not assoc.is_established:
            raise SendError(f"C-STORE to {where}: no association (PACS down, or it does not know our AE title)")
        try:
            status = assoc.send_c_store(dataset)
        finally:
            assoc.release()
        code = getattr(status, "Status", None)
        if code is None:
            raise SendError(f"C-STORE to {where}: no response (timeout or aborted association)")
        if code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or success with warnings
            raise SendError(f"C-STORE to {where}: the PACS refused the SR (status 0x{int(code):04X})")
