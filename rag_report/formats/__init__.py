"""What a draft becomes when it leaves: a preliminary DICOM Comprehensive SR (:mod:`rag_report.formats.sr`) and
an HL7 FHIR R4 Bundle (:mod:`rag_report.formats.fhir`), with the code table both use
(:mod:`rag_report.formats.codes`) and the algorithm's identity and stable identifiers
(:mod:`rag_report.formats.provenance`).

The writers read a draft through :class:`rag_report.protocols.DraftLike`, not the report module, so
``DraftReport.to_dicom_sr`` / ``.to_fhir`` can call them without an import cycle. ``sr`` and ``fhir`` import
highdicom / fhir.resources: import them when a result is written.
"""
