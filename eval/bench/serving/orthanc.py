"""A throwaway Orthanc PACS (with its DICOMweb plugin) on loopback, for the hand-off test and benchmark.

Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb``. The server listens on 127.0.0.1 only, on
free ports, stores into a temporary folder, and stops (terminate, then kill) when the context ends.

>>> with OrthancServer(tmp_dir) as pacs:                       # doctest: +SKIP
...     pacs.upload(path)
...     client = DICOMwebClient(pacs.dicomweb_url)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_binary() -> str | None:
    """The Orthanc executable, or None when it (or its DICOMweb plugin) is not installed."""
    exe = shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).is_file()), None
    )
    return exe if exe and PLUGIN.is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrthancServer:
    """Orthanc on free loopback ports; ``url`` is its REST root, ``dicomweb_url`` its DICOMweb root."""

    def __init__(self, work_dir: str | os.PathLike, *, start_timeout: float = 60.0) -> None:
        self.work_dir = Path(work_dir)
        self.start_timeout = start_timeout
        self.http_port, self.dicom_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb_url = f"{self.url}/dicom-web"
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()

    def __enter__(self) -> OrthancServer:
        exe = orthanc_binary()
        if exe is None:
            raise FileNotFoundError("Orthanc with its DICOMweb plugin is not installed (apt: orthanc orthanc-dicomweb)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "rag-report-test",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "StorageDirectory": str(self.work_dir / "storage"),
            "IndexDirectory": str(self.work_dir / "storage"),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            # C-STORE only from our own AE on this machine (rag_report.handoff.send.CStoreSender's title).
            "DicomModalities": {"rag-report": ["RAG_REPORT", "127.0.0.1", 104]},
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "StableAge": 1,
        }
        path = self.work_dir / "orthanc.json"
        path.write_text(json.dumps(config, indent=1))
        self.log = (self.work_dir / "orthanc.log").open("wb")
        self.process = subprocess.Popen([exe, str(path)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start (code {self.process.returncode}); see {self.log.name}")
            try:
                if self.session.get(f"{self.url}/system", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise TimeoutError(f"Orthanc did not answer within {self.start_timeout:.0f} s; see {self.log.name}")

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.session.close()
        if getattr(self, "log", None) is not None:
            self.log.close()

    # -- REST helpers ------------------------------------------------------------------------------------------
    def upload(self, path: str | os.PathLike) -> requests.Response:
        """POST /instances: store one file (a broken file gets an error status, returned, not raised)."""
        return self.session.post(f"{self.url}/instances", data=Path(path).read_bytes(), timeout=60)

    def get(self, route: str) -> Any:
        response = self.session.get(f"{self.url}{route}", timeout=60)
        response.raise_for_status()
        return response.json()

    def file(self, instance_id: str) -> bytes:
        response = self.session.get(f"{self.url}/instances/{instance_id}/file", timeout=60)
        response.raise_for_status()
        return response.content

    def study_ids(self) -> dict[str, str]:
        """StudyInstanceUID -> Orthanc study id."""
        return {self.get(f"/studies/{sid}")["MainDicomTags"]["StudyInstanceUID"]: sid for sid in self.get("/studies")}

    def instances_of(self, study_id: str, modality: str | None = None) -> list[str]:
        """Orthanc instance ids of a study (of one modality, when given)."""
        out = []
        for series in self.get(f"/studies/{study_id}/series"):
            if modality is None or series["MainDicomTags"].get("Modality") == modality:
                out += series["Instances"]
        return out
