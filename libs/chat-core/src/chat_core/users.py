"""The account flags every service checks: a disabled user is refused everywhere."""

from chat_core.clock import utcnow
from chat_core.db import Database
from chat_core.metrics import timed_db


async def is_disabled(db: Database, user_id: str) -> bool:
    """One `_id` lookup."""
    with timed_db("find"):
        doc = await db.users.find_one({"_id": user_id}, {"disabled": 1})
    return bool(doc and doc.get("disabled"))


async def set_disabled(db: Database, user_id: str, disabled: bool) -> None:
    # Upsert on a deterministic _id: works for users never seen before, on FerretDB too.
    await db.users.update_one(
        {"_id": user_id}, {"$set": {"disabled": disabled, "updatedAt": utcnow()}}, upsert=True
    )


async def describe(db: Database, user_id: str) -> dict[str, object]:
    user = await db.users.find_one({"_id": user_id}) or {}
    presence = await db.presence.find_one({"_id": user_id}) or {}
    return {
        "userId": user_id,
        "disabled": bool(user.get("disabled")),
        "status": presence.get("effective", "offline"),
        "lastActiveAt": presence.get("lastActiveAt"),
        "devices": len(presence.get("connections", {})),
    }
