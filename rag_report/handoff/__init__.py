"""Hospital hand-off: drafting whole studies from a folder, a manifest or a PACS and returning the results
(the SR and FHIR writers themselves are :mod:`rag_report.formats`)."""
