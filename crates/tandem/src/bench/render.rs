//! The table `tandem bench` prints: one function per section, each appending its lines.

use super::*;
use std::fmt::Write;

/// The report as the table `tandem bench` prints.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if let Some(engine) = &report.engine_process {
        out.push_str(&render_engine(engine));
        out.push('\n');
    }
    header(&mut out, report);
    latency(&mut out, report);
    throughput(&mut out, report);
    steady(&mut out, report);
    ingest(&mut out, report);
    calls(&mut out, report);
    memory(&mut out, report);
    engine_memory(&mut out, report);
    script(&mut out, report);
    quiet_note(&mut out, report);
    out
}

/// The script phase: µs per event of a typical hook, and its share of a change's CPU.
fn script(out: &mut String, report: &Report) {
    let s = &report.script;
    let share = s
        .share_of_engine_cpu_pct
        .map(|p| format!(", {p:.1}% of the engine's CPU per change (edits outside → Jira)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\nscript (customer_prefix.rhai to_jira, 8 mapped of 20 fields): {:.1} µs per event{share}; \
         a hook returning its fields {:.1} µs, no hook {:.1} µs",
        s.hook_us, s.identity_us, s.no_hook_us
    );
}

/// `seed ÷ Tandem` and the like, as `1.23×`.
fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "-".into())
}

fn div(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Calls as `reads / writes`.
fn rw(c: &Calls) -> String {
    format!("{:.2} / {:.2}", c.reads, c.writes)
}

/// Run date, build and sizes, then the column titles.
fn header(out: &mut String, report: &Report) {
    let o = &report.options;
    let _ = writeln!(
        out,
        "tandem bench — {}, {} build, {} CPU{}, Tandem's store: {}",
        report.date,
        report.build,
        report.cpus,
        if report.cpus == 1 { "" } else { "s" },
        report.store
    );
    let _ = writeln!(
        out,
        "{} linked pairs; latency: {} edits each way, one at a time; throughput: {} edits at once; \
         every edit changes 2 mapped fields; steady: {} edits at {}/s; ingest: {} webhooks from {} senders",
        o.links,
        o.latency_edits,
        o.throughput_edits,
        o.steady_edits,
        o.steady_rate,
        o.ingest_deliveries,
        o.ingest_senders
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "", "Tandem", "seed scripts", "seed ÷ Tandem"
    );
}

/// The latency phase, each direction: percentiles, ping-pongs, edits landed.
fn latency(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    let ms = |d: &Direction, f: fn(&Stats) -> f64| {
        d.latency_ms
            .map(|st| format!("{:.1} ms", f(&st)))
            .unwrap_or_else(|| "-".into())
    };
    type Pick = fn(&Stats) -> f64;
    let picks: [(&str, Pick); 4] = [
        ("median", |s| s.median),
        ("p90", |s| s.p90),
        ("p99", |s| s.p99),
        ("max", |s| s.max),
    ];
    for (title, td, sd) in [
        (
            "latency Jira → external",
            &t.jira_to_external,
            &s.jira_to_external,
        ),
        (
            "latency external → Jira",
            &t.external_to_jira,
            &s.external_to_jira,
        ),
    ] {
        for (name, pick) in picks {
            let r = match (td.latency_ms, sd.latency_ms) {
                (Some(a), Some(b)) => div(pick(&b), pick(&a)),
                _ => None,
            };
            let _ = writeln!(
                out,
                "{:<50} {:>14} {:>14} {:>14}",
                format!("{title}, {name}"),
                ms(td, pick),
                ms(sd, pick),
                if name == "median" {
                    ratio(r)
                } else {
                    String::new()
                }
            );
        }
        if sd.ping_pongs > 0 || td.ping_pongs > 0 {
            let _ = writeln!(
                out,
                "{:<50} {:>14} {:>14}",
                format!("{title}, edits that ping-ponged"),
                td.ping_pongs,
                sd.ping_pongs
            );
        }
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            format!("{title}, landed"),
            format!("{}/{}", td.landed, td.edits),
            format!("{}/{}", sd.landed, sd.edits)
        );
    }
}

/// The throughput phase: rate, time until the last link landed, links landed.
fn throughput(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "throughput (edits/s)",
        format!("{:.0}", t.throughput.edits_per_sec),
        format!("{:.0}", s.throughput.edits_per_sec),
        ratio(report.ratios.throughput)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "throughput, time until the last link landed",
        format!("{:.2} s", t.throughput.seconds),
        format!("{:.2} s", s.throughput.seconds),
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "throughput, links landed",
        format!("{}/{}", t.throughput.links_landed, t.throughput.links),
        format!("{}/{}", s.throughput.links_landed, s.throughput.links),
    );
}

/// The steady phase: the rate achieved, latency under that load, edits landed.
fn steady(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    let steady = |r: &StrategyReport| {
        let st = &r.steady;
        let l = st.latency_ms;
        let f = |pick: fn(&Stats) -> f64| {
            l.map(|l| format!("{:.1} ms", pick(&l)))
                .unwrap_or_else(|| "-".into())
        };
        [
            format!("{:.0}/s", st.achieved_rate),
            f(|l| l.median),
            f(|l| l.p95),
            f(|l| l.p99),
            f(|l| l.max),
            format!("{}/{} ({} superseded)", st.landed, st.edits, st.superseded),
        ]
    };
    let (ts, ss) = (steady(t), steady(s));
    for (k, title) in [
        format!("steady {}/s: rate achieved", t.steady.rate),
        "steady: latency median".to_string(),
        "steady: latency p95".to_string(),
        "steady: latency p99".to_string(),
        "steady: latency max".to_string(),
        "steady: landed".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let r = if k == 1 {
            match (t.steady.latency_ms, s.steady.latency_ms) {
                (Some(a), Some(b)) => ratio(div(b.median, a.median)),
                _ => "-".into(),
            }
        } else {
            String::new()
        };
        let _ = writeln!(out, "{:<50} {:>14} {:>14} {:>14}", title, ts[k], ss[k], r);
    }
}

/// Webhook ingest: deliveries answered 202 per second, answer times, accepted.
fn ingest(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    let ingest = |r: &StrategyReport| match &r.ingest {
        Some(i) => [
            format!("{:.0}", i.per_sec),
            i.latency_ms
                .map(|l| format!("{:.1} / {:.1} ms", l.median, l.p99))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", i.accepted, i.deliveries),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    };
    let (ti, si) = (ingest(t), ingest(s));
    for (k, title) in [
        "webhook ingest (202 per second)",
        "webhook ingest, answer median / p99",
        "webhook ingest, accepted",
    ]
    .into_iter()
    .enumerate()
    {
        let _ = writeln!(out, "{:<50} {:>14} {:>14}", title, ti[k], si[k]);
    }
}

/// Remote calls per change, edits lost, failed calls, ping-pongs stopped.
fn calls(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    for (title, td, sd) in [
        ("Jira → external", &t.jira_to_external, &s.jira_to_external),
        ("external → Jira", &t.external_to_jira, &s.external_to_jira),
    ] {
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            format!("{title}: calls to the other side (r / w)"),
            rw(&td.other_side),
            rw(&sd.other_side)
        );
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            format!("{title}: calls back to the edited side"),
            rw(&td.edited_side),
            rw(&sd.edited_side)
        );
    }
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "calls per change, all (both ways)",
        format!("{:.2}", t.calls_per_change()),
        format!("{:.2}", s.calls_per_change()),
        ratio(report.ratios.calls_per_change)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14} {:>14}",
        "writes per change (both ways)",
        format!("{:.2}", t.writes_per_change()),
        format!("{:.2}", s.writes_per_change()),
        ratio(report.ratios.writes_per_change)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "throughput phase, calls per edit (r / w)",
        rw(&t.throughput.calls_per_edit),
        rw(&s.throughput.calls_per_edit)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "links not holding their last edit at the end", t.lost_edits, s.lost_edits
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "failed remote calls", t.failed_calls, s.failed_calls
    );
    if s.ping_pong_stopped > 0 || t.ping_pong_stopped > 0 {
        let _ = writeln!(
            out,
            "{:<50} {:>14} {:>14}",
            "webhooks dropped to stop a ping-pong", t.ping_pong_stopped, s.ping_pong_stopped
        );
    }
}

/// Memory of the whole process and the cost of creating the pairs.
fn memory(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    let kb = |m: &Memory, v: Option<u64>| match v {
        Some(kb) => format!(
            "{:.1} MiB{}",
            kb as f64 / 1024.0,
            if m.peak_reset { "" } else { "*" }
        ),
        None => "-".into(),
    };
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "RSS before start (whole process)",
        kb(&t.memory, t.memory.rss_before_kb),
        kb(&s.memory, s.memory.rss_before_kb)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "peak RSS during the run (whole process)",
        kb(&t.memory, t.memory.peak_kb),
        kb(&s.memory, s.memory.peak_kb)
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "calls per twin created (r / w)",
        t.calls_per_create
            .as_ref()
            .map(rw)
            .unwrap_or_else(|| "-".into()),
        s.calls_per_create
            .as_ref()
            .map(rw)
            .unwrap_or_else(|| "-".into())
    );
    let _ = writeln!(
        out,
        "{:<50} {:>14} {:>14}",
        "setup (linking the pairs)",
        format!("{:.2} s", t.setup_seconds),
        format!("{:.2} s", s.setup_seconds)
    );
}

/// The engine alone with a large store.
fn engine_memory(out: &mut String, report: &Report) {
    if let Some(m) = &report.engine_memory {
        let mib =
            |v: Option<u64>| v.map_or("-".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0));
        let _ = writeln!(
            out,
            "\nengine alone (tandem serve, its own process), {} links in its store:",
            m.links_in_store
        );
        let _ = writeln!(out, "{:<50} {:>14}", "RSS, ready and idle", mib(m.idle_kb));
        let _ = writeln!(
            out,
            "{:<50} {:>14}",
            format!(
                "peak RSS, {} creates + {} edits at once",
                m.creates, m.edits
            ),
            mib(m.peak_kb)
        );
        let _ = writeln!(
            out,
            "{:<50} {:>14}",
            "links holding their last edit, load time",
            format!("{}/{}, {:.2} s", m.links_landed, m.creates, m.load_seconds)
        );
    }
}

/// A note when a phase did not become quiet.
fn quiet_note(out: &mut String, report: &Report) {
    let (t, s) = (&report.tandem, &report.seed);
    if !t.quiesced || !s.quiesced {
        let _ = writeln!(
            out,
            "note: a phase did not become quiet within {} s (Tandem: {}, seed: {})",
            QUIET_TIMEOUT.as_secs(),
            t.quiesced,
            s.quiesced
        );
    }
}

/// The separate-process phases as a table: each figure with the engine's CPU time per change
/// beside it, then the engine's memory.
pub fn render_engine(r: &EngineReport) -> String {
    use super::engine_process::{Cpu, Phase};
    let o = &r.options;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tandem bench, engine as its own process (tandem serve, SQLite, fsync on) — {}, {} build, {} CPU{}",
        r.date,
        r.build,
        r.cpus,
        if r.cpus == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        out,
        "{} distinct items; edit phases: rounds of one edit per item for ≥ {} s; ingest: {} webhooks from {} senders; steady: {}/s for {} s",
        o.items, o.duration_secs, o.ingest_deliveries, o.ingest_senders, o.rate, o.duration_secs
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<50} {:>16} {:>18}",
        "", "figure", "engine CPU/change"
    );
    let us = |c: &Cpu| {
        c.us_per_change
            .map(|u| format!("{u:.0} µs"))
            .unwrap_or_else(|| "-".into())
    };
    let row = |out: &mut String, title: &str, figure: String, cpu: String| {
        let _ = writeln!(out, "{title:<50} {figure:>16} {cpu:>18}");
    };
    let rate = |p: &Phase| format!("{:.0} /s", p.per_sec);
    let landed = |p: &Phase| format!("{}/{}, {:.2} s", p.landed, p.changes, p.seconds);
    row(
        &mut out,
        "twins created (Jira create → twin, link written)",
        rate(&r.creates),
        us(&r.creates.cpu),
    );
    row(
        &mut out,
        "  created, time",
        landed(&r.creates),
        String::new(),
    );
    for (title, p) in [
        ("edits Jira → outside, sustained", &r.jira_to_external),
        ("edits outside → Jira, sustained", &r.external_to_jira),
    ] {
        row(&mut out, title, rate(p), us(&p.cpu));
        row(
            &mut out,
            &format!("  landed, time ({} rounds)", p.rounds),
            landed(p),
            String::new(),
        );
    }
    let i = &r.ingest;
    row(
        &mut out,
        "webhook ingest (202 per second, worker running)",
        format!("{:.0} /s", i.per_sec),
        us(&i.cpu),
    );
    row(
        &mut out,
        "  answer median / p99",
        i.answer_ms
            .map(|l| format!("{:.1} / {:.1} ms", l.median, l.p99))
            .unwrap_or_else(|| "-".into()),
        String::new(),
    );
    row(
        &mut out,
        "  accepted, queue drained after",
        format!("{}/{}, {:.2} s", i.accepted, i.deliveries, i.drain_seconds),
        String::new(),
    );
    let st = &r.steady;
    row(
        &mut out,
        &format!("latency under a steady {}/s, median / p99", st.rate),
        st.latency_ms
            .map(|l| format!("{:.1} / {:.1} ms", l.median, l.p99))
            .unwrap_or_else(|| "-".into()),
        us(&st.cpu),
    );
    row(
        &mut out,
        "  rate achieved, landed (superseded)",
        format!(
            "{:.0}/s, {}/{} ({})",
            st.achieved_rate, st.landed, st.edits, st.superseded
        ),
        String::new(),
    );
    let mib = |v: Option<u64>| v.map_or("-".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0));
    row(
        &mut out,
        "engine RSS idle (empty store)",
        mib(r.rss.idle_kb),
        String::new(),
    );
    row(
        &mut out,
        "engine RSS after the load",
        mib(r.rss.after_kb),
        String::new(),
    );
    row(
        &mut out,
        "engine peak RSS (VmHWM)",
        mib(r.rss.peak_kb),
        String::new(),
    );
    row(
        &mut out,
        "items not holding their last edit at the end",
        r.lost_edits.to_string(),
        String::new(),
    );
    if !r.quiesced {
        let _ = writeln!(out, "note: a phase did not become quiet within 120 s");
    }
    out
}
