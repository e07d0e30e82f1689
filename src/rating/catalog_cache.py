"""The catalog snapshot quotes read, swapped whole when the database has a newer version."""

from __future__ import annotations

from billing.domain.catalog import Catalog


class CatalogCache:
    """Holds one immutable snapshot; readers take the reference once per quote.

    Replacing a reference is atomic in the event loop, so a quote sees either the old snapshot
    or the new one, never a mixture.
    """

    def __init__(self, initial: Catalog) -> None:
        self._catalog = initial

    def current(self) -> Catalog:
        return self._catalog

    def version(self) -> int:
        return self._catalog.version

    def publish(self, catalog: Catalog) -> None:
        if catalog.version > self._catalog.version:
            self._catalog = catalog
