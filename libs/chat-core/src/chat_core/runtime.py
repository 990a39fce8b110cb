"""The connections a service holds for its lifetime: MongoDB and the broker."""

from dataclasses import dataclass

from pymongo import AsyncMongoClient

from chat_core.accounts import Accounts
from chat_core.broker import Broker, Topology
from chat_core.db import Database, Document, connect, ensure_indexes, is_reachable
from chat_core.settings import ServiceSettings
from chat_core.store.schema import ensure_current


@dataclass
class Runtime:
    mongo: AsyncMongoClient[Document]
    db: Database
    broker: Broker
    accounts: Accounts

    @classmethod
    async def start(
        cls,
        settings: ServiceSettings,
        name: str,
        *,
        check_schema: bool = True,
        watch_accounts: bool = True,
    ) -> "Runtime":
        mongo = connect(
            settings.mongo_url.get_secret_value(), max_pool_size=settings.mongo_max_pool_size
        )
        db = mongo[settings.mongo_db]
        if check_schema:
            # Refuses to run on data of another store version (chat-admin migrate).
            await ensure_current(db)
        await ensure_indexes(db)
        broker = Broker(
            settings.broker_urls,
            Topology(
                settings.broker_prefix,
                settings.broker_queue_type,
                settings.broker_partitions,
                settings.broker_delivery_shards,
            ),
            name,
            reconnect_interval=settings.broker_reconnect_interval_seconds,
            publish_timeout=settings.broker_publish_timeout_seconds,
        )
        await broker.start()
        accounts = Accounts(db, settings.account_cache_seconds)
        if watch_accounts:
            await accounts.listen(broker)
        return cls(mongo=mongo, db=db, broker=broker, accounts=accounts)

    async def close(self) -> None:
        await self.broker.close()
        await self.mongo.close()

    async def readiness(self) -> dict[str, bool]:
        return {"broker": self.broker.is_ready(), "database": await is_reachable(self.db)}
