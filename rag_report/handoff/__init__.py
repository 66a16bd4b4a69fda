"""Hospital hand-off: :mod:`rag_report.handoff.runner` drafts every study of a folder, a manifest or a PACS
(:mod:`~rag_report.handoff.sources`, :mod:`~rag_report.handoff.studies`), writes per study the draft, a DICOM SR
and a FHIR R4 Bundle (the writers are :mod:`rag_report.formats`) and can store the SRs back
(:mod:`~rag_report.handoff.send`)."""
