"""A believable demo organisation: one company, two regions, four teams (P2.1)."""

from __future__ import annotations

from portal.demo import ensure_person, ensure_unit


def create_demo_organisation() -> None:
    """Create (once) the demo units and the people in them."""
    manager = ensure_person("manager", "Zhou Min / 周敏", ["manager"], title="Sales manager")
    company = ensure_unit("Salesloop Demo Co. / 示例销售公司", "company", leader=manager)
    if manager.unit_id is None:
        manager.unit = company
    for username, name, role, title in (
        ("finance", "Sun Li / 孙丽", "finance", "Accountant"),
        ("hr", "Wu Fang / 吴芳", "hr", "HR officer"),
    ):
        ensure_person(username, name, [role], unit=company, title=title)
    regions = (
        (
            "East region / 华东区",
            "sup_east",
            "Zhang Wei / 张伟",
            (
                ("Shanghai team / 上海组", "sales_li", "Li Na / 李娜"),
                ("Hangzhou team / 杭州组", "sales_wang", "Wang Fang / 王芳"),
            ),
        ),
        (
            "South region / 华南区",
            "sup_south",
            "Chen Jing / 陈静",
            (
                ("Guangzhou team / 广州组", "sales_zhao", "Zhao Lei / 赵磊"),
                ("Shenzhen team / 深圳组", "sales_liu", "Liu Yang / 刘洋"),
            ),
        ),
    )
    for region_name, supervisor_login, supervisor_name, teams in regions:
        supervisor = ensure_person(
            supervisor_login, supervisor_name, ["supervisor"], title="Sales supervisor"
        )
        region = ensure_unit(region_name, "region", parent=company, leader=supervisor)
        if supervisor.unit_id is None:
            supervisor.unit = region
        for team_name, sales_login, sales_name in teams:
            team = ensure_unit(team_name, "team", parent=region)
            ensure_person(
                sales_login, sales_name, ["salesperson"], unit=team, title="Sales representative"
            )
