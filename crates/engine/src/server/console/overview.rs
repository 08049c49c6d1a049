//! The overview's figures, computed from what the store can tell cheaply: queue depth by
//! status, the newest events without their payloads (throughput, latency, last errors) and
//! the poll cursors. Pure functions of those rows, so the page and its live JSON show the
//! same numbers and tests can check them without a server.

use crate::store::{CursorState, EventStatus, RecentEvent};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use tandem_core::Side;

/// How many of the newest events the figures are computed from: a bounded read on the
/// primary key however long the history, at the price of under-counting a connection busier
/// than this many events an hour (the page says over which span it counted).
pub(super) const SAMPLE: u32 = 5000;

/// One side of one connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SideHealth {
    /// When the newest event from this side was applied (done).
    pub last_applied: Option<DateTime<Utc>>,
    /// The newest event from this side still failing (waiting for a retry, or dead): its id,
    /// error and when.
    pub last_error: Option<(i64, String, DateTime<Utc>)>,
    /// The poll cursor and when it last moved.
    pub cursor: Option<(String, DateTime<Utc>)>,
}

/// One connection's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct ConnectionFigures {
    pub depth: BTreeMap<EventStatus, i64>,
    pub links: i64,
    /// Events applied (done) in the window, and the window's length in minutes.
    pub applied: usize,
    pub window_minutes: f64,
    /// Received → applied, in milliseconds, over the window.
    pub latency_p50_ms: Option<i64>,
    pub latency_p99_ms: Option<i64>,
    pub jira: SideHealth,
    pub external: SideHealth,
}

impl ConnectionFigures {
    pub fn changes_per_minute(&self) -> f64 {
        if self.window_minutes <= 0.0 {
            0.0
        } else {
            self.applied as f64 / self.window_minutes
        }
    }

    pub fn side(&self, side: Side) -> &SideHealth {
        match side {
            Side::Jira => &self.jira,
            Side::External => &self.external,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut SideHealth {
        match side {
            Side::Jira => &mut self.jira,
            Side::External => &mut self.external,
        }
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Figures per connection (every name in `connections`, plus any the rows mention) over the
/// hour before `now`. `recent` is newest first, as [`crate::store::Store::recent_events`]
/// returns it; when it holds the whole sample the window shrinks to the span it covers.
pub(super) fn figures(
    connections: &[String],
    depth: &[(String, EventStatus, i64)],
    links: &BTreeMap<String, i64>,
    recent: &[RecentEvent],
    cursors: &[CursorState],
    now: DateTime<Utc>,
) -> BTreeMap<String, ConnectionFigures> {
    let hour_ago = now - TimeDelta::hours(1);
    let mut out: BTreeMap<String, ConnectionFigures> = connections
        .iter()
        .map(|c| (c.clone(), ConnectionFigures::default()))
        .collect();
    for (connection, status, n) in depth {
        out.entry(connection.clone())
            .or_default()
            .depth
            .insert(*status, *n);
    }
    for (connection, n) in links {
        out.entry(connection.clone()).or_default().links = *n;
    }
    let window_start = match recent.last() {
        Some(oldest) if recent.len() >= SAMPLE as usize && oldest.received_at > hour_ago => {
            oldest.received_at
        }
        _ => hour_ago,
    };
    let minutes = (now - window_start).num_milliseconds() as f64 / 60_000.0;
    let mut latencies: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for ev in recent {
        let fig = out.entry(ev.connection.clone()).or_default();
        fig.window_minutes = minutes;
        let side = fig.side_mut(ev.source);
        match ev.status {
            EventStatus::Done => {
                if side.last_applied.is_none_or(|t| ev.updated_at > t) {
                    side.last_applied = Some(ev.updated_at);
                }
                if ev.updated_at >= window_start {
                    fig.applied += 1;
                    latencies
                        .entry(&ev.connection)
                        .or_default()
                        .push((ev.updated_at - ev.received_at).num_milliseconds().max(0));
                }
            }
            EventStatus::Dead | EventStatus::Pending => {
                if let Some(error) = &ev.last_error
                    && side.last_error.as_ref().is_none_or(|e| ev.updated_at > e.2)
                {
                    side.last_error = Some((ev.id, error.clone(), ev.updated_at));
                }
            }
            EventStatus::Leased | EventStatus::Ignored => {}
        }
    }
    for fig in out.values_mut() {
        fig.window_minutes = minutes;
    }
    for (connection, mut values) in latencies {
        values.sort_unstable();
        if let Some(fig) = out.get_mut(connection) {
            fig.latency_p50_ms = percentile(&values, 0.50);
            fig.latency_p99_ms = percentile(&values, 0.99);
        }
    }
    for c in cursors {
        out.entry(c.connection.clone())
            .or_default()
            .side_mut(c.side)
            .cursor = Some((c.cursor.clone(), c.updated_at));
    }
    out
}

/// Milliseconds as people read them: `850 ms`, `2.4 s`, `3.0 min`.
pub(super) fn duration_ms(ms: Option<i64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{:.1} min", ms as f64 / 60_000.0),
    }
}

/// Every figure the page shows and the live update refreshes, as display text under a
/// stable key (`<connection>.<what>`); the page puts each in an element with
/// `data-live="<key>"` and the script replaces that element's text.
pub(super) fn live_values(figs: &BTreeMap<String, ConnectionFigures>) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (name, f) in figs {
        for st in EventStatus::ALL {
            v.insert(
                format!("{name}.depth.{st}"),
                f.depth.get(&st).copied().unwrap_or(0).to_string(),
            );
        }
        v.insert(format!("{name}.links"), f.links.to_string());
        v.insert(
            format!("{name}.rate"),
            format!("{:.1}", f.changes_per_minute()),
        );
        v.insert(format!("{name}.p50"), duration_ms(f.latency_p50_ms));
        v.insert(format!("{name}.p99"), duration_ms(f.latency_p99_ms));
        v.insert(
            format!("{name}.window"),
            format!("{:.0} min", f.window_minutes),
        );
        for side in [Side::Jira, Side::External] {
            let h = f.side(side);
            let t = |t: &Option<DateTime<Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "never".into())
            };
            v.insert(format!("{name}.{side}.applied"), t(&h.last_applied));
            v.insert(
                format!("{name}.{side}.error"),
                h.last_error
                    .as_ref()
                    .map(|(id, e, at)| {
                        format!("event {id}, {}: {e}", at.format("%Y-%m-%d %H:%M:%S UTC"))
                    })
                    .unwrap_or_else(|| "none".into()),
            );
            v.insert(
                format!("{name}.{side}.poll"),
                t(&h.cursor.as_ref().map(|c| c.1)),
            );
            v.insert(
                format!("{name}.{side}.cursor"),
                h.cursor
                    .as_ref()
                    .map(|c| c.0.clone())
                    .unwrap_or_else(|| "–".into()),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    fn ev(id: i64, source: Side, status: EventStatus, received: i64, updated: i64) -> RecentEvent {
        RecentEvent {
            id,
            connection: "c".into(),
            source,
            status,
            last_error: (status != EventStatus::Done).then(|| format!("HTTP 500 #{id}")),
            received_at: t(received),
            updated_at: t(updated),
        }
    }

    #[test]
    fn rate_latency_and_last_errors_over_the_last_hour() {
        let now = t(3600);
        // Newest first. Two applied inside the hour (1 s and 3 s), one before it.
        let recent = vec![
            ev(5, Side::External, EventStatus::Dead, 3000, 3010),
            ev(4, Side::External, EventStatus::Pending, 2900, 2950),
            ev(3, Side::Jira, EventStatus::Done, 1000, 1003),
            ev(2, Side::Jira, EventStatus::Done, 500, 501),
            ev(1, Side::Jira, EventStatus::Done, -100, -99),
        ];
        let figs = figures(&["c".into()], &[], &BTreeMap::new(), &recent, &[], now);
        let f = &figs["c"];
        assert_eq!(f.applied, 2);
        assert!((f.changes_per_minute() - 2.0 / 60.0).abs() < 1e-9);
        assert_eq!(f.latency_p50_ms, Some(1000));
        assert_eq!(f.latency_p99_ms, Some(3000));
        assert_eq!(f.jira.last_applied, Some(t(1003)));
        assert_eq!(f.external.last_applied, None);
        assert_eq!(
            f.external.last_error,
            Some((5, "HTTP 500 #5".into(), t(3010)))
        );
        assert_eq!(f.jira.last_error, None);
        let live = live_values(&figs);
        assert_eq!(live["c.p99"], "3.0 s");
        assert_eq!(live["c.depth.dead"], "0");
    }

    #[test]
    fn a_full_sample_narrows_the_window() {
        let now = t(3600);
        let recent: Vec<_> = (0..SAMPLE as i64)
            .map(|i| ev(i, Side::Jira, EventStatus::Done, 3000, 3000))
            .collect();
        let f = &figures(&[], &[], &BTreeMap::new(), &recent, &[], now)["c"];
        assert_eq!(f.window_minutes, 10.0);
        assert_eq!(f.changes_per_minute(), SAMPLE as f64 / 10.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
