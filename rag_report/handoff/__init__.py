"""Hospital hand-off: draft every study of a folder, a manifest or a PACS; write DICOM SR and FHIR results."""
