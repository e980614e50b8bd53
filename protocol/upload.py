"""How a unit hands its evidence to the center over HTTP (pure): the manifest file a
recording keeps, the routes, the offset header, and the state of a segment's upload.

For each manifest entry the unit POSTs the entry, asks (HEAD) how many bytes of its segment
the center holds, and PATCHes the rest in chunks at that offset. The center answers every
HEAD and PATCH with the segment's state, and the stored offset in the header as well."""

from __future__ import annotations

from pydantic import Field

from protocol.models import ContractModel

MANIFEST = "manifest.jsonl"
"""A recording directory's manifest: one signed entry per line (see protocol.evidence)."""
UPLOAD_OFFSET = "Upload-Offset"
"""Request header of a PATCH (where the chunk goes), response header of HEAD and PATCH."""
EVIDENCE_ROUTE = "/api/v1/evidence"
ENTRIES_ROUTE = f"{EVIDENCE_ROUTE}/entries"
SEGMENT_ROUTE = EVIDENCE_ROUTE + "/{recording_id}/segments/{index}"
UPLOAD_STATUS_ROUTE = SEGMENT_ROUTE + "/upload"


def segment_path(recording_id: str, index: int) -> str:
    return SEGMENT_ROUTE.format(recording_id=recording_id, index=index)


class SegmentUpload(ContractModel):
    """How far a segment's upload has come; `confirmed` once the stored bytes hash to the
    entry's SHA-256."""

    offset: int = Field(ge=0)
    size: int = Field(ge=0)
    confirmed: bool
