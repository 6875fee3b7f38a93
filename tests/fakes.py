"""Small in-memory fakes of our own abstractions, for unit tests (never of Kafka or MongoDB)."""

from __future__ import annotations

import uuid

from intake.domain import AcceptedRequest, RequestDraft


class RecordingPipeline:
    """A fake `intake.domain.AcceptRequests`: keeps drafts, honours dedup keys like the real one."""

    def __init__(self) -> None:
        self.drafts: list[RequestDraft] = []
        self._by_dedup_key: dict[str, AcceptedRequest] = {}
        self.fail_with: Exception | None = None

    async def accept(self, draft: RequestDraft) -> AcceptedRequest:
        if self.fail_with is not None:
            raise self.fail_with
        if draft.dedup_key and draft.dedup_key in self._by_dedup_key:
            first = self._by_dedup_key[draft.dedup_key]
            return AcceptedRequest(first.request_id, first.person_id, duplicate=True)
        self.drafts.append(draft)
        accepted = AcceptedRequest(request_id=str(uuid.uuid4()), person_id=f"p-{uuid.uuid4().hex[:12]}")
        if draft.dedup_key:
            self._by_dedup_key[draft.dedup_key] = accepted
        return accepted
