"""Ops throughput (Prometheus): events in and out, lag, latency, sink, dead letters, restarts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh, VariableSort

from dashboards.common import (
    COUNT,
    PROMETHEUS,
    SECONDS,
    base_dashboard,
    prom_target,
    steps,
    timeseries_panel,
)

__all__ = ["JOB", "UID", "build"]

UID = "warroom-ops"
#: the scrape job of the workers in deploy/prometheus.yml
JOB = "warroom-worker"
W = f'job="{JOB}", instance=~"$instance"'
RATE = "$__rate_interval"


def _quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    legend = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{W}}}[{RATE}])))",
            f"p{int(q * 100)}{legend}",
        )
        for q in (0.5, 0.99)
    ]


def _ts(
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    unit: str = COUNT,
    width: int = 12,
) -> timeseries.Panel:
    refs = "ABCDEFGH"
    return timeseries_panel(
        title,
        *(prom_target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(queries)),
        unit=unit,
        description=description,
        datasource=PROMETHEUS,
        width=width,
    )


def workers_up_stat() -> stat.Panel:
    return (
        stat.Panel()
        .title("Workers ที่ทำงานอยู่")
        .description("Worker processes Prometheus can scrape (up == 1) out of those it knows.")
        .datasource(PROMETHEUS)
        .with_target(prom_target(f"sum(up{{{W}}})", "up", "A"))
        .with_target(prom_target(f"count(up{{{W}}})", "known", "B"))
        .unit(COUNT)
        .thresholds(steps(("red", None), ("green", 1)))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .span(6)
        .height(4)
    )


def build() -> dashboard.Dashboard:
    return (
        base_dashboard(
            UID,
            "ปริมาณงานระบบ (Ops throughput)",
            "Worker throughput and health from Prometheus: events in/out per topic and stream, "
            "consumer lag, batch and end-to-end latency, ClickHouse sink batches and write "
            "time, dead-letter rate, restarts.",
            ["ops", "prometheus"],
        )
        .with_variable(
            dashboard.QueryVariable("instance")
            .label("worker")
            .datasource(PROMETHEUS)
            .query(f'label_values(up{{job="{JOB}"}}, instance)')
            .current(VariableOption(selected=True, text="All", value="$__all"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .allow_custom_value(False)
        )
        .with_row(dashboard.Row("ปริมาณเหตุการณ์"))
        .with_panel(workers_up_stat())
        .with_panel(
            _ts(
                "Restarts ของ worker (ในช่วงเวลา)",
                "changes(process_start_time_seconds) per worker over the range: a restart "
                "changes the process start time.",
                [
                    (
                        f"sum by (instance) (changes(process_start_time_seconds{{{W}}}[$__range]))",
                        "{{instance}}",
                    )
                ],
                width=6,
            ).height(4)
        )
        .with_panel(
            _ts(
                "เหตุการณ์ค้างอ่าน (consumer lag)",
                "Messages not yet consumed per topic (end offset − position), summed over "
                "partitions.",
                [(f"sum by (topic) (warroom_consumer_lag{{{W}}})", "{{topic}}")],
            ).height(4)
        )
        .with_panel(
            _ts(
                "เหตุการณ์เข้า (events/s ต่อ topic)",
                "Messages consumed per second per topic.",
                [
                    (
                        f"sum by (topic) (rate(warroom_events_consumed_total{{{W}}}[{RATE}]))",
                        "{{topic}}",
                    )
                ],
            )
        )
        .with_panel(
            _ts(
                "เหตุการณ์ออก (events/s ต่อ stream)",
                "Accepted, rejected (dead-lettered) and duplicate events per second.",
                [
                    (
                        f"sum by (stream) (rate(warroom_events_accepted_total{{{W}}}[{RATE}]))",
                        "accepted {{stream}}",
                    ),
                    (
                        f"sum by (stream) (rate(warroom_events_rejected_total{{{W}}}[{RATE}]))",
                        "rejected {{stream}}",
                    ),
                    (
                        f"sum by (stream) (rate(warroom_events_duplicate_total{{{W}}}[{RATE}]))",
                        "duplicate {{stream}}",
                    ),
                ],
            )
        )
        .with_row(dashboard.Row("ความหน่วง"))
        .with_panel(
            _ts(
                "เวลาประมวลผลต่อ batch (p50 / p99)",
                "warroom_batch_processing_seconds: one consumed batch, decode to write hand-off.",
                _quantiles("warroom_batch_processing_seconds"),
                unit=SECONDS,
            )
        )
        .with_panel(
            _ts(
                "ความหน่วงปลายทาง end-to-end (p50 / p99)",
                "warroom_end_to_end_latency_seconds: event time → written to ClickHouse.",
                _quantiles("warroom_end_to_end_latency_seconds"),
                unit=SECONDS,
            )
        )
        .with_row(dashboard.Row("การเขียน ClickHouse"))
        .with_panel(
            _ts(
                "ขนาด batch ที่เขียน (rows, p50 / p99)",
                "warroom_sink_batch_rows per table.",
                _quantiles("warroom_sink_batch_rows", "table"),
                width=8,
            )
        )
        .with_panel(
            _ts(
                "เวลาเขียน (p50 / p99)",
                "warroom_sink_write_seconds per backend.",
                _quantiles("warroom_sink_write_seconds", "backend"),
                unit=SECONDS,
                width=8,
            )
        )
        .with_panel(
            _ts(
                "แถวรอเขียน / ข้อผิดพลาด",
                "Rows buffered for ClickHouse, write errors and retries per second, and the "
                "share of time consumption was paused by backpressure.",
                [
                    (
                        f"sum by (backend) (warroom_sink_buffered_rows{{{W}}})",
                        "buffered {{backend}}",
                    ),
                    (
                        f"sum by (backend) (rate(warroom_sink_write_errors_total{{{W}}}[{RATE}]))",
                        "errors/s {{backend}}",
                    ),
                    (
                        f"sum by (backend) (rate(warroom_sink_retries_total{{{W}}}[{RATE}]))",
                        "retries/s {{backend}}",
                    ),
                    (
                        f"sum(rate(warroom_backpressure_seconds_total{{{W}}}[{RATE}]))",
                        "backpressure (s/s)",
                    ),
                ],
                width=8,
            )
        )
        .with_row(dashboard.Row("Dead letters และการแจ้งเตือน"))
        .with_panel(
            _ts(
                "อัตรา dead letter (ต่อเหตุผล)",
                "Rejected events per second by reason: each one is written to the dead-letter "
                "topic.",
                [
                    (
                        f"sum by (reason) (rate(warroom_events_rejected_total{{{W}}}[{RATE}]))",
                        "{{reason}}",
                    )
                ],
            )
        )
        .with_panel(
            _ts(
                "การแจ้งเตือนและการส่งข้อความ",
                "Alerts firing by severity, notifications sent and failed per second per channel.",
                [
                    (f"sum by (severity) (warroom_alerts_firing{{{W}}})", "firing {{severity}}"),
                    (
                        f"sum by (channel) (rate(warroom_notifications_sent_total{{{W}}}[{RATE}]))",
                        "sent/s {{channel}}",
                    ),
                    (
                        "sum by (channel) "
                        f"(rate(warroom_notifications_failed_total{{{W}}}[{RATE}]))",
                        "failed/s {{channel}}",
                    ),
                ],
            )
        )
    )
