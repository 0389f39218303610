//! SVG charts drawn on the server from [`DayUsage`] rows: no charting service, no script.
//! Each chart is an `img`-role SVG with a title; the usage page puts the same numbers in a
//! table under each one, so nothing rests on reading the picture (or its colours).

use ao_core::usage::{DayUsage, FINAL_STATUSES};
use maud::{Markup, html};

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 10.0;

/// Width of one day's slot.
fn slot(days: usize) -> f64 {
    (W - LEFT - RIGHT) / days.max(1) as f64
}

fn plot_h() -> f64 {
    H - BOTTOM - TOP
}

/// A round upper bound for the axis (1, 2, 5 × 10ⁿ).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * mag)
}

fn y(v: f64, max: f64) -> f64 {
    TOP + plot_h() * (1.0 - v / max)
}

/// Axes, the top value and the day labels (every few days so they fit).
fn frame(days: &[DayUsage], max: f64, unit: &dyn Fn(f64) -> String) -> Markup {
    let step = (days.len() / 7).max(1);
    let slot = slot(days.len());
    html! {
        line class="axis" x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) {}
        line class="axis" x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) {}
        text class="tick" x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" { (unit(max)) }
        text class="tick" x=(LEFT - 4.0) y=(H - BOTTOM) text-anchor="end" { (unit(0.0)) }
        @for (i, d) in days.iter().enumerate().filter(|(i, _)| i % step == 0) {
            text class="tick" x=(LEFT + slot * (i as f64 + 0.5)) y=(H - 8.0) text-anchor="middle" {
                (d.day.format("%m-%d"))
            }
        }
    }
}

fn svg(title: &str, id: &str, body: Markup) -> Markup {
    html! {
        svg class="chart" viewBox={ "0 0 " (W) " " (H) } role="img" aria-labelledby=(id)
            xmlns="http://www.w3.org/2000/svg" {
            title id=(id) { (title) }
            (body)
        }
    }
}

/// Stacked bars: tasks finished per day, one segment per final status.
pub fn tasks_per_day(days: &[DayUsage]) -> Markup {
    let max = nice_max(days.iter().map(|d| d.finished() as f64).fold(0.0, f64::max));
    let slot = slot(days.len());
    let bar = (slot * 0.7).max(1.0);
    let mut segments = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0.0;
        for (k, s) in FINAL_STATUSES.iter().enumerate() {
            let n = d.by_status[k] as f64;
            if n > 0.0 {
                let top = y(base + n, max);
                let label = format!("{}: {n} {}", d.day, s.as_str());
                segments.push((x, top, y(base, max) - top, s.as_str(), label));
            }
            base += n;
        }
    }
    let body = html! {
        (frame(days, max, &|v| format!("{v:.0}")))
        @for (x, top, h, status, label) in &segments {
            rect class={ "bar s-" (status) } x=(x) width=(bar) y=(top) height=(h) {
                title { (label) }
            }
        }
    };
    svg(
        "Tasks finished per day, by final status",
        "chart-tasks",
        body,
    )
}

/// Bars: cost per day.
pub fn cost_per_day(days: &[DayUsage]) -> Markup {
    let max = nice_max(days.iter().map(|d| d.cost_usd).fold(0.0, f64::max));
    let slot = slot(days.len());
    let bar = (slot * 0.7).max(1.0);
    let body = html! {
        (frame(days, max, &|v| format!("${v:.2}")))
        @for (i, d) in days.iter().enumerate() {
            @if d.cost_usd > 0.0 {
                rect class="bar cost" x=(LEFT + slot * i as f64 + (slot - bar) / 2.0) width=(bar)
                    y=(y(d.cost_usd, max)) height=(y(0.0, max) - y(d.cost_usd, max)) {
                    title { (d.day) ": $" (format!("{:.4}", d.cost_usd)) }
                }
            }
        }
    };
    svg("Cost per day (USD)", "chart-cost", body)
}

/// Picks one percentile of a day.
type Pick = fn(&ao_core::usage::Percentiles) -> f64;

/// A point's marker: a circle for p50, a square for p90, a diamond for p99, so the series
/// differ by shape as well as by colour and dash.
fn marker(series: &str, x: f64, y: f64) -> Markup {
    match series {
        "p50" => html! { circle class="dot p50" cx=(x) cy=(y) r="3.5" {} },
        "p90" => html! { rect class="dot p90" x=(x - 3.5) y=(y - 3.5) width="7" height="7" {} },
        _ => html! {
            polygon class={ "dot " (series) }
                points=(format!("{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}", y - 4.5, x + 4.5, y + 4.5, x - 4.5)) {}
        },
    }
}

/// Lines with markers: p50, p90 and p99 run time per day (days with no run are gaps).
pub fn durations(days: &[DayUsage]) -> Markup {
    let max = nice_max(
        days.iter()
            .filter_map(|d| d.durations.map(|p| p.p99))
            .fold(0.0, f64::max),
    );
    let slot = slot(days.len());
    let series: [(&str, Pick); 3] = [("p50", |p| p.p50), ("p90", |p| p.p90), ("p99", |p| p.p99)];
    let body = html! {
        (frame(days, max, &|v| format!("{v:.0}s")))
        @for (name, get) in series {
            @let points: Vec<(f64, f64)> = days.iter().enumerate()
                .filter_map(|(i, d)| d.durations.map(|p| (LEFT + slot * (i as f64 + 0.5), y(get(&p), max))))
                .collect();
            @let path: String = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
            polyline class={ "line " (name) } points=(path) {}
            @for (x, y) in &points { (marker(name, *x, *y)) }
        }
    };
    svg(
        "Run time percentiles per day (seconds)",
        "chart-durations",
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(0.13), 0.2);
        assert_eq!(nice_max(100.0), 100.0);
    }
}
