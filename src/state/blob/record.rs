//! The lock blob's record: who holds the lock, until when (by the holder's clock, a hint), the
//! lifetime it promises, its acquisition token and renewal number; the lock lifetime
//! (`STEPWISE_LOCK_LIFETIME`) and reading a record.

use crate::sys::run_lock::Holder;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The lock blob's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockRecord {
    #[serde(flatten)]
    pub holder: Holder,
    /// When the lock expires unless renewed (RFC 3339), by the holder's clock. Only a hint for
    /// messages and for whether waiting is worth it: whether a lock expired is decided by
    /// watching it, on the waiting run's own monotonic clock, never by comparing clocks.
    pub expires: String,
    pub lifetime_secs: u64,
    /// The lifetime the holder promises to respect (ms; older records: `lifetime_secs`).
    #[serde(default)]
    pub lifetime_ms: u64,
    /// Random, one per acquisition: tells a run's own writes from another run's.
    #[serde(default)]
    pub token: String,
    /// Renewal number within the acquisition.
    #[serde(default)]
    pub seq: u64,
    /// The lock was released (or removed by `state unlock`): free to take.
    #[serde(default)]
    pub released: bool,
}

impl LockRecord {
    /// How long the holder may go without renewing before the lock is free.
    pub fn lifetime(&self) -> Duration {
        if self.lifetime_ms > 0 {
            Duration::from_millis(self.lifetime_ms)
        } else if self.lifetime_secs > 0 {
            Duration::from_secs(self.lifetime_secs)
        } else {
            Duration::from_secs(60)
        }
    }
    /// Does the record say (by its holder's clock, compared with ours) that it expired?
    pub(super) fn looks_expired(&self) -> bool {
        parse_time(&self.expires).is_none_or(|t| t < time::OffsetDateTime::now_utc())
    }
    pub(super) fn describe(&self) -> String {
        let left = parse_time(&self.expires)
            .map(|t| (t - time::OffsetDateTime::now_utc()).whole_seconds())
            .unwrap_or(0);
        if left > 0 {
            format!(
                "{}; expires in {left}s unless renewed",
                self.holder.describe()
            )
        } else {
            format!(
                "{}; its record says it expired {}s ago (by this machine's clock)",
                self.holder.describe(),
                -left
            )
        }
    }
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The lock lifetime: `STEPWISE_LOCK_LIFETIME` (seconds) or 60 s. The holder renews every
/// eighth of it; when it has not managed to renew for half of it, it stops (no new step, its
/// commands stopped within a quarter of it), so it has stopped before a waiting run, which
/// takes the lock only after watching it go a whole lifetime without renewal, starts.
pub fn lock_lifetime() -> Duration {
    std::env::var("STEPWISE_LOCK_LIFETIME")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(60))
}

pub(super) fn parse_lock(text: &str) -> LockRecord {
    serde_json::from_str::<LockRecord>(text).unwrap_or(LockRecord {
        holder: Holder {
            user: "?".into(),
            host: "?".into(),
            pid: 0,
            command: "unreadable lock record".into(),
            started: String::new(),
        },
        expires: String::new(),
        lifetime_secs: 0,
        lifetime_ms: 0,
        token: String::new(),
        seq: 0,
        released: false,
    })
}
