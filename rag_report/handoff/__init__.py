"""Hospital hand-off: drafts leave as DICOM Structured Reports (:mod:`rag_report.handoff.sr`) and HL7 FHIR R4
Bundles (:mod:`rag_report.handoff.fhir`). The modules import highdicom / fhir.resources, so import them only
when a result is written."""
