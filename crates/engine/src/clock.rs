//! Noticing when the host's wall clock jumps (an operator sets it, a VM resumes, NTP steps
//! it), so the queue's waits keep their real length.
//!
//! The queue stores wall-clock times: when a retry is due, when a lease ends. Those are right
//! as long as the clock moves with real time. A jump back by an hour would otherwise hold
//! every retry (and, through the per-link order, every later event of its link) for an extra
//! hour; a jump forward would end this instance's leases while it still works on them. The
//! monotonic clock does not jump, so comparing how far each moved since the last look tells
//! a jump from the passing of time. Slow corrections (NTP slewing) stay far below the
//! tolerance and are never taken for a jump.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A wall clock moving this much more (or less) than the monotonic one between two looks is
/// a jump. Well above scheduling noise on a loaded machine; well below any wait that matters.
pub const JUMP_TOLERANCE: Duration = Duration::from_secs(2);

/// Watches the wall clock against the monotonic one.
pub struct ClockWatch {
    last: Mutex<(Instant, DateTime<Utc>)>,
    tolerance: TimeDelta,
}

impl Default for ClockWatch {
    fn default() -> Self {
        ClockWatch::new(JUMP_TOLERANCE)
    }
}

impl ClockWatch {
    pub fn new(tolerance: Duration) -> Self {
        ClockWatch {
            last: Mutex::new((Instant::now(), Utc::now())),
            tolerance: TimeDelta::from_std(tolerance).unwrap_or(TimeDelta::MAX),
        }
    }

    /// How far the wall clock jumped since the last look (negative: back), if it did.
    pub fn check(&self) -> Option<TimeDelta> {
        self.check_at(Instant::now(), Utc::now())
    }

    /// [`check`](Self::check) with both clocks read by the caller (for tests).
    pub fn check_at(&self, mono: Instant, wall: DateTime<Utc>) -> Option<TimeDelta> {
        // A poisoned lock only means a panic elsewhere mid-update; the pair is still usable.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (then_mono, then_wall) = *last;
        *last = (mono, wall);
        let elapsed = TimeDelta::from_std(mono.saturating_duration_since(then_mono)).ok()?;
        let jump = (wall - then_wall) - elapsed;
        (jump.abs() > self.tolerance).then_some(jump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_passing_is_not_a_jump_and_steps_either_way_are() {
        let mono = Instant::now();
        let wall = Utc::now();
        let watch = ClockWatch::new(Duration::from_secs(2));
        let _ = watch.check_at(mono, wall);
        let later = mono + Duration::from_secs(30);
        assert_eq!(
            watch.check_at(later, wall + TimeDelta::milliseconds(30_500)),
            None,
            "half a second of drift over 30 s is no jump"
        );
        let later = later + Duration::from_secs(1);
        assert_eq!(
            watch.check_at(
                later,
                wall + TimeDelta::milliseconds(31_500) - TimeDelta::hours(1)
            ),
            Some(TimeDelta::hours(-1)),
            "set back an hour"
        );
        let later = later + Duration::from_secs(1);
        assert_eq!(
            watch.check_at(
                later,
                wall + TimeDelta::milliseconds(32_500) - TimeDelta::hours(1)
                    + TimeDelta::minutes(10)
            ),
            Some(TimeDelta::minutes(10)),
            "then forward ten minutes: each jump is measured from the last look"
        );
    }
}
