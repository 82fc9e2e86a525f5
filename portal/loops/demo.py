"""Demo loop items (``portal demo``): a few hand-raised action items across the demo
people, in every state a visitor should see: open, overdue, in progress, done and
waiting for verification, verified. Built from the organisation as it is (each demo
person with a supervisor gets items from that supervisor), so it names no plugin's
people and works with whatever organisation the enabled plugins created."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from ..auth.models import User
from ..demo import DEMO_EMAIL_DOMAIN
from ..extensions import db
from ..models import utcnow
from ..org.services import supervisor_of
from . import service
from .models import LoopItem

# (title, priority, days ago raised, days from raising to due, what happened since)
PLAN: tuple[tuple[str, str, int, int, tuple[str, ...]], ...] = (
    (
        "Follow up the open points of the weekly meeting / 跟进周例会遗留事项",
        "high",
        9,
        3,
        (),
    ),
    (
        "Bring last week's records up to date / 补全上周记录",
        "normal",
        4,
        7,
        ("start",),
    ),
    (
        "Send the meeting minutes to the team / 将会议纪要发给团队",
        "normal",
        6,
        5,
        ("start", "close"),
    ),
    (
        "Prepare the training slides / 准备培训课件",
        "low",
        20,
        14,
        ("start", "close", "verify"),
    ),
)
CLOSING_NOTE = "Done as asked; details in the shared folder. / 已按要求完成，详见共享文件夹。"


def create_demo_loops(now: datetime | None = None) -> int:
    """Raise (once) the demo items; returns how many were created. Idempotent: an item
    of the same title for the same owner is never raised twice."""
    now = now or utcnow()
    people = db.session.scalars(
        sa.select(User)
        .where(User.email.like(f"%@{DEMO_EMAIL_DOMAIN}"), User.active.is_(True))
        .order_by(User.username)
    ).all()
    existing = set(
        db.session.execute(
            sa.select(LoopItem.owner_id, LoopItem.title).where(LoopItem.type == "core.action")
        ).all()
    )
    created = 0
    for position, owner in enumerate(people):
        boss = supervisor_of(owner)
        if boss is None:
            continue
        # Two items each, rotating through the plan, so every state appears.
        for offset in range(2):
            title, priority, days_ago, due_days, steps = PLAN[(position + offset) % len(PLAN)]
            if (owner.id, title) in existing:
                continue
            raised_at = now - timedelta(days=days_ago)
            item = service.raise_loop(
                "core.action",
                title,
                owner,
                raised_by=boss,
                priority=priority,
                due_at=raised_at + timedelta(days=due_days),
                description="Raised at the weekly meeting. / 周例会上提出。",
                now=raised_at,
            )
            moment = raised_at
            for step in steps:
                moment += timedelta(days=1)
                if step == "start":
                    service.start(item, owner, now=moment)
                elif step == "close":
                    service.close(
                        item, owner, CLOSING_NOTE, "Shared folder / 共享文件夹", now=moment
                    )
                elif step == "verify":
                    service.verify(item, boss, "Checked. / 已核实。", now=moment)
            created += 1
    return created
