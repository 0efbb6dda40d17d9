"""ภาพรวมประเทศ / National war room: the whole country on one screen."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import overview
from dashboards.common import base_dashboard
from dashboards.queries import NATIONAL

__all__ = ["UID", "build"]

UID = "warroom-national"


def build() -> dashboard.Dashboard:
    s = NATIONAL
    return (
        base_dashboard(
            UID,
            "ภาพรวมประเทศ (National war room)",
            "Live national picture: grievances received, open, overdue and surging per "
            "district; delayed projects and budget disbursement; latest alerts.",
            ["national", "war-room"],
        )
        .with_row(dashboard.Row("สถานการณ์ล่าสุด"))
        .with_panel(overview.new_today_stat(s).span(3))
        .with_panel(overview.open_backlog_stat(s).span(3))
        .with_panel(overview.overdue_stat(s).span(3))
        .with_panel(overview.urgent_unassigned_stat(s).span(3))
        .with_panel(overview.projects_delayed_stat(s))
        .with_panel(overview.budget_disbursement_stat(s))
        .with_row(dashboard.Row("เรื่องร้องเรียนตามพื้นที่"))
        .with_panel(overview.region_category_table(s))
        .with_panel(overview.top_overdue_table(s))
        .with_panel(overview.top_surge_table(s))
        .with_row(dashboard.Row("แนวโน้มและการแจ้งเตือน"))
        .with_panel(overview.received_resolved_timeseries(s))
        .with_panel(overview.backlog_by_category_bar(s))
        .with_panel(overview.alerts_table(s))
    )
