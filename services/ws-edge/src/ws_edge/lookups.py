"""Documents by `_id` for admissions, fetched together while a fetch is in flight.

Every connect reads two documents (the user's disabled flag, their conversations for the
presence snapshot) and then its contacts' presence. A PyMongo command costs the edge more CPU
than anything else in a connect did (a profile of 2,000 connects: a third of the edge's CPU
in `find_one`), so concurrent connects share commands: while one fetch is in flight, the ids
asked for meanwhile wait and go together as the next (`$in` on `_id` where the server pushes
it down, else a lookup each, as chat_core.db.IdLookups decides). An idle edge fetches at
once, as before; a connect storm fetches in batches.
"""

import asyncio
from collections.abc import Iterable

from chat_core.db import Collection, Document, IdLookups


class CoalescedLookups:
    def __init__(self, collection: Collection, projection: Document | None = None) -> None:
        self._lookups = IdLookups(collection)
        self._projection = projection
        self._wanted: dict[str, asyncio.Future[Document | None]] = {}
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Commands sent (for tests): fewer than lookups asked for under concurrency.
        self.fetches = 0

    async def one(self, doc_id: str) -> Document | None:
        """The document, or None; one `_id` lookup, shared with those waiting with it."""
        return await asyncio.shield(self._want(doc_id))

    async def many(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        """The documents that exist, by `_id`, fetched with whatever else is waiting."""
        futures = {doc_id: self._want(doc_id) for doc_id in dict.fromkeys(doc_ids)}
        if not futures:
            return {}
        await asyncio.shield(asyncio.gather(*futures.values()))
        found = {doc_id: future.result() for doc_id, future in futures.items()}
        return {doc_id: doc for doc_id, doc in found.items() if doc is not None}

    def _want(self, doc_id: str) -> asyncio.Future[Document | None]:
        future = self._wanted.get(doc_id)
        if future is None:
            future = self._wanted[doc_id] = asyncio.get_running_loop().create_future()
            if not self._running:
                self._running = True
                task = asyncio.create_task(self._run())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return future

    async def _run(self) -> None:
        try:
            while self._wanted:
                batch, self._wanted = self._wanted, {}
                self.fetches += 1
                try:
                    docs = await self._lookups.many(batch, self._projection)
                except Exception as error:
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(error)
                            # A caller that went away must not leave it unretrieved.
                            future.exception()
                    continue
                for doc_id, future in batch.items():
                    if not future.done():
                        future.set_result(docs.get(doc_id))
        finally:
            self._running = False
