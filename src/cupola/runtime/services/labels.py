"""Labels of versioned resources (agents, toolboxes, and what comes next): reading, setting,
moving and removing them, whoever asks (a route, and promotion when it comes)."""

from __future__ import annotations

from cupola.domain import Page
from cupola.domain.versions import Label, LabelMove, check_label, version_number
from cupola.exceptions import NotFound
from cupola.store import SqlStore
from cupola.store.versions import Kind


class LabelService:
    """Labels of one store's versioned resources, by :class:`Kind`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def list_labels(self, project: str, kind: Kind, name: str) -> list[Label]:
        """The resource's labels (404 when the resource does not exist)."""
        return await self.store.list_labels(project, kind, name)

    async def get_label(self, project: str, kind: Kind, name: str, label: str) -> Label:
        """One label (400 for a name no label can have, 404 when it is not set)."""
        label = check_label(label)
        for found in await self.store.list_labels(project, kind, name):
            if found.label == label:
                return found
        raise NotFound(f"{kind.noun} {name!r} has no label {label!r}", param="label")

    async def set_label(
        self, project: str, kind: Kind, name: str, label: str, version: str | int
    ) -> Label:
        """Point ``label`` at ``version``, setting or moving it (a move is recorded for
        audit; ``latest`` cannot be set; 404 when the version does not exist)."""
        return await self.store.set_label(
            project, kind, name, check_label(label), version_number(version)
        )

    async def remove_label(self, project: str, kind: Kind, name: str, label: str) -> None:
        """Remove ``label`` (404 when it is not set)."""
        await self.store.remove_label(project, kind, name, label)

    async def history(
        self,
        project: str,
        kind: Kind,
        name: str,
        *,
        label: str | None = None,
        limit: int = 20,
        order: str = "desc",
        after: int | None = None,
        before: int | None = None,
    ) -> Page[LabelMove]:
        """Every move of the resource's labels (or of ``label``'s), newest first by default."""
        return await self.store.label_history(
            project,
            kind,
            name,
            label=check_label(label) if label else None,
            limit=limit,
            order=order,
            after=after,
            before=before,
        )
