"""The demo month of daily management (``portal demo``): the last full month and this
month so far at Salesloop Demo Co., told through the same services the pages use.

Everyone who checks in punched in and out on every working day (a standard 09:00-18:00
Monday-to-Friday schedule; Zhao Lei, who spends his days at customers' plants in
Guangdong, on the field schedule), around this year's public holidays. Most days are on
time; Wang Fang came in late four times last month, so the month-end sweep opened a
talk with Zhang Wei; Liu Yang missed a whole day (a written warning); Li Na forgot to
check out a few days ago and her correction waits for approval. Li Na's sick day was
approved, Zhao Lei's annual leave waits for Chen Jing. The East team met on its last
Monday (minutes, two resolutions: one done, one still open) and next Monday's meeting
carries the open one on its agenda; the South team's monthly meeting is planned. Finance set
the regions' budgets for the year, and the expense claims show every state: paid,
approved, pending (a dinner over the meal limit, escalated to the manager), a draft
taxi fare, a rejected claim and one whose receipt was claimed before (flagged).

As in plugins/sales/demo.py: deterministic (one seeded random generator, times relative
to today), ``now=`` wherever a service takes it, written in the caller's transaction
(``portal demo`` commits once, as ``cli:demo``) and run once: a second run finds the
demo schedule and changes nothing.
"""

from __future__ import annotations

import io
import logging
import random
import struct
import zlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from werkzeug.datastructures import FileStorage

from portal.audit.recorder import acting_as
from portal.auth.models import User
from portal.extensions import db
from portal.loops import approvals
from portal.loops import service as loops
from portal.loops.models import LoopItem
from portal.models import utcnow

from .models import Holiday, WorkSchedule

log = logging.getLogger("plugins.daily.demo")

SEED = 20261127
STANDARD = "Standard 09:00-18:00 / 标准工时"
FIELD = "Field sales / 外勤"
SALES = ("sales_li", "sales_wang", "sales_zhao", "sales_liu")
SUPERVISORS = ("sup_east", "sup_south")
PEOPLE = ("manager", "finance", "hr", *SUPERVISORS, *SALES)
WANG_LATE = 4  # times late last month: attendance_monthly.yaml opens a talk from 3
SWEEP_ACTOR = "job:daily.attendance_sweep"

# Public holidays (the State Council's notice) and the weekend days worked instead (调休).
# A year not listed gets the fixed-date holidays only.
# fmt: off
HOLIDAYS: dict[int, tuple[tuple[str, str, bool], ...]] = {
    2026: (
        ("2026-01-01", "元旦 / New Year's Day", False),
        ("2026-01-02", "元旦 / New Year's Day", False),
        ("2026-01-04", "元旦调休上班 / Working day (New Year)", True),
        ("2026-02-16", "春节 / Spring Festival", False),
        ("2026-02-17", "春节 / Spring Festival", False),
        ("2026-02-18", "春节 / Spring Festival", False),
        ("2026-02-19", "春节 / Spring Festival", False),
        ("2026-02-20", "春节 / Spring Festival", False),
        ("2026-02-23", "春节 / Spring Festival", False),
        ("2026-02-14", "春节调休上班 / Working day (Spring Festival)", True),
        ("2026-02-28", "春节调休上班 / Working day (Spring Festival)", True),
        ("2026-04-06", "清明节 / Qingming Festival", False),
        ("2026-05-01", "劳动节 / Labour Day", False),
        ("2026-05-04", "劳动节 / Labour Day", False),
        ("2026-05-05", "劳动节 / Labour Day", False),
        ("2026-05-09", "劳动节调休上班 / Working day (Labour Day)", True),
        ("2026-06-19", "端午节 / Dragon Boat Festival", False),
        ("2026-09-25", "中秋节 / Mid-Autumn Festival", False),
        ("2026-10-01", "国庆节 / National Day", False),
        ("2026-10-02", "国庆节 / National Day", False),
        ("2026-10-05", "国庆节 / National Day", False),
        ("2026-10-06", "国庆节 / National Day", False),
        ("2026-10-07", "国庆节 / National Day", False),
        ("2026-09-20", "国庆节调休上班 / Working day (National Day)", True),
        ("2026-10-10", "国庆节调休上班 / Working day (National Day)", True),
    ),
}
FIXED_HOLIDAYS = (
    (1, 1, "元旦 / New Year's Day"),
    (5, 1, "劳动节 / Labour Day"),
    (10, 1, "国庆节 / National Day"),
    (10, 2, "国庆节 / National Day"),
    (10, 3, "国庆节 / National Day"),
)
VISITS = (
    "苏州工业园区客户现场 / At a customer's plant, Suzhou Industrial Park",
    "佛山顺德客户工厂 / Customer's factory, Shunde, Foshan",
    "东莞长安镇设备验收 / Machine acceptance, Chang'an, Dongguan",
    "深圳宝安客户拜访 / Customer visit, Bao'an, Shenzhen",
    "广州黄埔展会 / Trade fair, Huangpu, Guangzhou",
)
# fmt: on


def create_demo_daily(now: datetime | None = None) -> bool:
    """Create (once) the demo month in the caller's transaction; returns whether it did.
    A database that already has the demo schedule is left as it is."""
    if db.session.scalar(sa.select(WorkSchedule.id).where(WorkSchedule.name == STANDARD)):
        return False
    found = {
        user.username: user
        for user in db.session.scalars(sa.select(User).where(User.username.in_(PEOPLE)))
    }
    if set(found) != set(PEOPLE):
        log.warning("daily demo skipped: the demo organisation is missing")
        return False
    Month({name: found[name] for name in PEOPLE}, now).build()  # in a fixed order
    return True


def png_bytes(seed: int, width: int = 24, height: int = 32) -> bytes:
    """A small real PNG (a receipt's photo): a grey page with a few darker lines."""
    rng = random.Random(seed)
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # no filter
        shade = 90 if y % 4 == 1 and y > 4 else 245
        for _x in range(width):
            rows.append(max(0, shade - rng.randint(0, 20)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(text: str) -> bytes:
    """A one-page PDF (an electronic invoice, 电子发票) with one line of ASCII text."""
    stream = f"BT /F1 12 Tf 40 760 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def upload(name: str, data: bytes) -> FileStorage:
    """Bytes as the form would send them (portal.files checks name and content)."""
    content_type = "application/pdf" if name.endswith(".pdf") else "image/png"
    return FileStorage(stream=io.BytesIO(data), filename=name, content_type=content_type)


class Month:
    """Builds the month; every time is a local day and an hour, in UTC."""

    def __init__(self, people: dict[str, User], now: datetime | None = None) -> None:
        self.now = now or utcnow()
        self.today = loops.local_today(self.now)
        self.zone = loops.portal_zone()
        self.rng = random.Random(SEED)
        self.people = people
        first_this = self.today.replace(day=1)
        self.first = (first_this - timedelta(days=1)).replace(day=1)  # last month's first day
        self.last_month_end = first_this - timedelta(days=1)

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """Local ``hour:minute`` of ``day`` in UTC."""
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(UTC)

    def ago(self, days: int, hour: int = 10, minute: int = 0) -> datetime:
        """``days`` days before today at a local time, never later than a few minutes ago."""
        moment = self.at(self.today - timedelta(days=days), hour, minute)
        return min(moment, self.now - timedelta(minutes=5))

    def person(self, username: str) -> User:
        return self.people[username]

    def build(self) -> None:
        self.backdate_people()
        self.make_calendar()
        self.make_leave_types()
        days = self.workdays()
        plan = self.plan(days)
        self.punch_all(days, plan)
        self.make_leave(plan["sick"])
        self.make_correction(plan["missed"])
        from .attendance import run_attendance_sweep

        with acting_as(SWEEP_ACTOR):
            run_attendance_sweep(now=self.now)
        self.make_meetings()
        self.make_budgets()
        self.make_claims()

    # -- people and calendar ----------------------------------------------------------------

    def backdate_people(self) -> None:
        """The demo people joined before the demo month (attendance counts from the day
        an account was made)."""
        joined = self.at(self.first - timedelta(days=60), 9)
        db.session.execute(
            sa.update(User)
            .where(User.id.in_([user.id for user in self.people.values()]))
            .where(User.created_at > joined)
            .values(created_at=joined)
            .execution_options(synchronize_session=False)
        )
        for user in self.people.values():
            db.session.refresh(user)

    def make_calendar(self) -> None:
        from .attendance import assign_schedule, save_holiday, save_schedule

        workdays = [1, 2, 3, 4, 5]
        save_schedule(
            None,
            {
                "name": STANDARD,
                "kind": "standard",
                "start": 9 * 60,
                "end": 18 * 60,
                "required_minutes": 8 * 60,
                "workdays": [str(day) for day in workdays],
                "is_default": True,
            },
        )
        field = save_schedule(
            None,
            {
                "name": FIELD,
                "kind": "field",
                "start": 9 * 60,
                "end": 18 * 60,
                "required_minutes": 8 * 60,
                "workdays": [str(day) for day in workdays],
            },
        )
        assign_schedule(self.person("sales_zhao").id, field.id)
        for year in sorted({self.first.year, self.today.year}):
            if db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Holiday)
                .where(Holiday.day.between(date(year, 1, 1), date(year, 12, 31)))
            ):
                continue  # HR entered this year's calendar already
            listed = HOLIDAYS.get(year)
            rows = (
                [(date.fromisoformat(day), name, worked) for day, name, worked in listed]
                if listed
                else [(date(year, month, day), name, False) for month, day, name in FIXED_HOLIDAYS]
            )
            for day, name, worked in rows:
                save_holiday(day, name, worked)

    def make_leave_types(self) -> None:
        from .leave import ensure_leave_types, grant_year

        ensure_leave_types()
        for year in sorted({self.first.year, self.today.year}):
            grant_year(year)

    def workdays(self) -> list[date]:
        """The working days of the standard schedule from last month's first to today."""
        from .calendar import default_schedule, holidays_between, is_workday

        schedule = default_schedule()
        holidays = holidays_between(self.first, self.today)
        day, found = self.first, []
        while day <= self.today:
            if is_workday(schedule, day, holidays):
                found.append(day)
            day += timedelta(days=1)
        return found

    # -- attendance --------------------------------------------------------------------------

    def plan(self, days: list[date]) -> dict[str, Any]:
        """Which days break the pattern: Wang's late mornings, Liu's absence, Li's sick
        day and the check-out she forgot (recent enough to be corrected)."""
        last_month = [day for day in days if day <= self.last_month_end]
        past = [day for day in days if day < self.today]
        late = set(self.rng.sample(last_month[2:-1], WANG_LATE))
        others = [day for day in last_month[3:-2] if day not in late]
        absent, sick = self.rng.sample(others, 2)
        recent = [day for day in past if (self.today - day).days in range(2, 6)]
        missed = recent[-1] if recent else None
        return {"late": late, "absent": absent, "sick": sick, "missed": missed}

    def punch_all(self, days: list[date], plan: dict[str, Any]) -> None:
        """Every attending person's punches; today only a check-in already made."""
        from .attendance import attending_people, punch

        attending = attending_people()
        people = [user for user in self.people.values() if user.id in attending]
        for day in days:
            for user in people:
                name = user.username
                if (name, day) in (("sales_liu", plan["absent"]), ("sales_li", plan["sick"])):
                    continue
                field = name == "sales_zhao"
                if name == "sales_wang" and day in plan["late"]:
                    arrive = 9 * 60 + self.rng.randint(8, 24)
                elif field:
                    arrive = 8 * 60 + self.rng.randint(20, 75)
                else:
                    arrive = 8 * 60 + self.rng.randint(25, 59)
                leave = 18 * 60 + self.rng.randint(0, 50)
                note = self.rng.choice(VISITS) if field else ""
                moment = self.at(day, arrive // 60, arrive % 60)
                if moment >= self.now - timedelta(minutes=5):
                    continue
                punch(user, "in", note, now=moment)
                out = self.at(day, leave // 60, leave % 60)
                if day == self.today or out >= self.now:
                    continue
                if name == "sales_li" and day == plan["missed"]:
                    continue
                punch(user, "out", note if field else "", now=out)

    def make_leave(self, sick_day: date) -> None:
        """Li Na's sick day last month (approved after the fact) and Zhao Lei's annual
        leave next week (waiting for Chen Jing)."""
        from .leave import create_request

        sick = create_request(
            {
                "leave_type": "sick",
                "starts_on": sick_day.isoformat(),
                "ends_on": sick_day.isoformat(),
                "reason": "发烧，在家休息 / Fever, stayed at home",
            },
            self.person("sales_li"),
        )
        self.decide(sick.approval_id, "approve", "早日康复 / Get well soon", self.now)
        from .calendar import holidays_between, is_workday, schedule_of

        zhao = self.person("sales_zhao")
        schedule = schedule_of(zhao.id)
        tuesday = self.today + timedelta(days=(1 - self.today.weekday()) % 7 + 7)
        holidays = holidays_between(tuesday, tuesday + timedelta(days=30))
        days = [tuesday + timedelta(days=n) for n in range(30)]
        start, end = [day for day in days if is_workday(schedule, day, holidays)][:2]
        create_request(
            {
                "leave_type": "annual",
                "starts_on": start.isoformat(),
                "ends_on": end.isoformat(),
                "reason": "回老家探亲 / Visiting family in my home town",
            },
            zhao,
        )

    def make_correction(self, missed: date | None) -> None:
        from .attendance import request_correction

        if missed is None:
            return
        request_correction(
            self.person("sales_li"),
            missed,
            "out",
            18 * 60 + 25,
            "客户来电，走时忘记打卡 / A customer called as I left and I forgot to check out",
            now=self.ago(1, 9, 40),
        )

    def decide(self, approval_id: int | None, action: str, comment: str, moment: datetime) -> None:
        """Every step of an approval answered by whoever's step it is."""
        from portal.loops.models import ApprovalRequest

        request = db.session.get(ApprovalRequest, approval_id)
        while request is not None and request.status == "pending":
            step = approvals.current_step(request)
            if step is None:
                break
            actor = db.session.get(User, step.approver_id)
            approvals.act(request, actor, action, comment, now=moment)

    # -- meetings ---------------------------------------------------------------------------

    def make_meetings(self) -> None:
        from .meetings import (
            add_resolution,
            attendees_of,
            close_meeting,
            create_meeting,
            mark_attendance,
            save_minutes,
        )

        east = self.person("sup_east")
        # Mondays at 09:30: the last one before today was held, the next one is planned.
        held_on = self.today - timedelta(days=self.today.weekday() or 7)
        next_on = held_on + timedelta(days=7)
        held = create_meeting(
            {
                "unit_id": east.unit_id,
                "title": "华东区周例会 / East weekly sales meeting",
                "cadence": "weekly",
                "location": "上海办公室 3 楼会议室 / Shanghai office, meeting room 3F",
                "starts_at": self.at(held_on, 9, 30),
                "ends_at": self.at(held_on, 10, 30),
                "agenda": [
                    {"title": "上周业绩与漏斗 / Last week's results and pipeline"},
                    {"title": "考勤情况 / Attendance", "presenter_id": east.id},
                    {"title": "重点客户推进 / Key accounts"},
                ],
            },
            east,
            now=self.at(held_on - timedelta(days=4), 17),
        )
        for attendee in attendees_of(held):
            status = "late" if attendee.user_id == self.person("sales_wang").id else "present"
            mark_attendance(held, east, attendee.user_id, status)
        save_minutes(
            held,
            east,
            "上周新增商机 3 个，华东精密的报价已发出。考勤：提醒大家按时打卡。\n"
            "Three new opportunities last week; Huadong's quotation is out. Attendance: "
            "everyone is reminded to check in on time.",
            {},
        )
        meeting_time = self.at(held_on, 10, 20)
        done = add_resolution(
            held,
            east,
            "李娜整理华东精密技术澄清问题清单并发客户 / Li Na sends Huadong the list of "
            "technical questions",
            self.person("sales_li").id,
            held_on + timedelta(days=3),
            now=meeting_time,
        )
        add_resolution(
            held,
            east,
            "王芳约钱江汽车采购部做现场演示 / Wang Fang books an on-site demo with Qianjiang "
            "Auto's purchasing",
            self.person("sales_wang").id,
            next_on + timedelta(days=3),
            now=meeting_time,
        )
        close_meeting(held, east, now=self.at(held_on, 11))
        item = db.session.get(LoopItem, done.loop_id)
        loops.close(
            item,
            self.person("sales_li"),
            "问题清单已邮件发送，客户确认收到 / List e-mailed; the customer confirmed",
            now=min(self.at(held_on + timedelta(days=1), 16), self.now - timedelta(minutes=5)),
        )
        create_meeting(
            {
                "unit_id": east.unit_id,
                "title": "华东区周例会 / East weekly sales meeting",
                "cadence": "weekly",
                "location": "上海办公室 3 楼会议室 / Shanghai office, meeting room 3F",
                "starts_at": self.at(next_on, 9, 30),
                "ends_at": self.at(next_on, 10, 30),
                "agenda": [{"title": "本周业绩与漏斗 / This week's results and pipeline"}],
            },
            east,
            now=self.ago(1, 16),
        )
        south = self.person("sup_south")
        next_month = (self.today.replace(day=28) + timedelta(days=4)).replace(day=1)
        first_monday = next_month + timedelta(days=(7 - next_month.weekday()) % 7)
        create_meeting(
            {
                "unit_id": south.unit_id,
                "title": "华南区月度例会 / South monthly sales review",
                "cadence": "monthly",
                "location": "广州办公室 / Guangzhou office",
                "starts_at": self.at(first_monday, 14),
                "ends_at": self.at(first_monday, 16),
                "agenda": [
                    {"title": "月度业绩回顾 / The month's results"},
                    {"title": "费用预算执行 / Spending against the budget"},
                    {"title": "下月重点客户 / Next month's key accounts"},
                ],
            },
            south,
            now=self.ago(2, 15),
        )

    # -- budgets and claims -----------------------------------------------------------------

    def make_budgets(self) -> None:
        from .expense_reports import set_year, visible_units

        units = visible_units(self.person("finance"))
        for supervisor, monthly in (("sup_east", 30_000), ("sup_south", 25_000)):
            unit_id = self.person(supervisor).unit_id
            set_year(units, unit_id, self.today.year, "", [monthly * 100] * 12)

    def claim(
        self,
        owner: str,
        title: str,
        lines: list[tuple[int, str, str, str, str, str, tuple[str, bytes] | None]],
        submit_days_ago: int | None,
    ) -> Any:
        """A claim of ``lines`` (days ago, category, amount, city, vendor, purpose,
        receipt), submitted ``submit_days_ago`` days ago (None: left a draft)."""
        from .expenses import add_line, create_claim, submit_claim

        user = self.person(owner)
        claim = create_claim(user, title)
        for days_ago, category, amount, city, vendor, purpose, receipt in lines:
            values = {
                "spent_on": (self.today - timedelta(days=days_ago)).isoformat(),
                "category": category,
                "amount": amount,
                "city": city,
                "vendor": vendor,
                "purpose": purpose,
            }
            uploads = [upload(*receipt)] if receipt else []
            add_line(claim, values, uploads, user, self.today)
        if submit_days_ago is not None:
            submit_claim(claim, user, now=self.ago(submit_days_ago, 18, 30))
        return claim

    def make_claims(self) -> None:
        from .expenses import pay_claim

        taxi_receipt = ("didi-receipt.png", png_bytes(1))
        paid = self.claim(
            "sales_li",
            "苏州客户拜访 / Customer visits in Suzhou",
            [
                (24, "taxi", "86.00", "苏州", "滴滴出行 / DiDi", "拜访恒力精工 / Visit Hengli",
                 taxi_receipt),
                (24, "meal", "128.00", "苏州", "苏州得月楼 / Deyuelou", "客户午餐 / Lunch with "
                 "the customer", ("deyuelou.pdf", pdf_bytes("Deyuelou invoice 128.00"))),
            ],
            22,
        )  # fmt: skip
        self.decide(paid.approval_id, "approve", "", self.ago(21, 10))
        pay_claim(paid, self.person("finance"), "CMB-20260001", now=self.ago(18, 15))
        approved = self.claim(
            "sales_zhao",
            "深圳出差 / Trip to Shenzhen",
            [
                (12, "hotel", "380.00", "深圳", "深圳宝安维也纳酒店 / Vienna Hotel Bao'an",
                 "设备验收 / Machine acceptance", ("hotel.pdf", pdf_bytes("Vienna Hotel 380.00"))),
                (12, "taxi", "45.50", "深圳", "深圳出租车 / Shenzhen taxi", "酒店到客户工厂 / "
                 "Hotel to the plant", ("taxi-sz.png", png_bytes(2))),
            ],
            10,
        )  # fmt: skip
        self.decide(approved.approval_id, "approve", "", self.ago(9, 11))
        dinner = self.claim(
            "sales_wang",
            "钱江汽车技术交流晚餐 / Dinner after Qianjiang's technical review",
            [
                (5, "meal", "268.00", "杭州", "杭州外婆家 / Grandma's Kitchen", "与客户技术部晚餐 "
                 "/ Dinner with the customer's engineers", ("dinner.png", png_bytes(3))),
            ],
            4,
        )  # fmt: skip
        # Over the salesperson's meal limit: Zhang Wei approved, now the manager's step.
        self._first_step(dinner.approval_id, self.ago(3, 9, 30))
        self.claim(
            "sales_liu",
            "深圳南山客户拜访 / Customer visit in Nanshan",
            [(1, "taxi", "52.00", "深圳", "滴滴出行 / DiDi", "拜访客户 / Customer visit",
              ("didi-liu.png", png_bytes(4)))],
            None,
        )  # fmt: skip
        rejected = self.claim(
            "sales_liu",
            "办公用品 / Office supplies",
            [(15, "office", "199.00", "深圳", "京东 / JD.com", "蓝牙耳机 / Bluetooth headset",
              ("jd.pdf", pdf_bytes("JD.com order 199.00")))],
            14,
        )  # fmt: skip
        self.decide(
            rejected.approval_id,
            "reject",
            "个人用品不予报销 / Personal items are not reimbursed",
            self.ago(13, 10),
        )
        self.claim(
            "sales_li",
            "上海客户拜访 / Customer visits in Shanghai",
            [(3, "taxi", "86.00", "上海", "滴滴出行 / DiDi", "拜访申联汽配 / Visit Shenlian",
              ("didi-again.png", taxi_receipt[1]))],
            2,
        )  # fmt: skip  # the same photo as the paid claim's taxi: flagged as a duplicate

    def _first_step(self, approval_id: int | None, moment: datetime) -> None:
        from portal.loops.models import ApprovalRequest

        request = db.session.get(ApprovalRequest, approval_id)
        step = approvals.current_step(request) if request is not None else None
        if step is not None:
            actor = db.session.get(User, step.approver_id)
            approvals.act(
                request, actor, "approve", "同意，请经理审批 / Agreed; to the manager", now=moment
            )
