"""Hospital hand-off: drafts leave as DICOM Structured Reports (:mod:`rag_report.handoff.sr`) and HL7 FHIR R4
Bundles (:mod:`rag_report.handoff.fhir`); :mod:`rag_report.handoff.runner` drafts every study of a folder, a
manifest or a PACS. The modules import highdicom / fhir.resources, so import them only when a result is written."""
