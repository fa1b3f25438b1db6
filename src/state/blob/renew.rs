//! A held blob lock: renewed in the background on a deadline of the holder's monotonic clock;
//! when it cannot prove it still holds the lock (not renewed for half its lifetime, or found
//! taken) it stops the run; released by a conditional write when dropped.

use super::record::{parse_lock, rfc3339, LockRecord};
use crate::state::Lock;
use object_store::azure::MicrosoftAzure;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A held blob lock: renewed in the background; released (conditionally) when dropped.
pub struct BlobLock {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) renewer: Option<std::thread::JoinHandle<()>>,
    pub(super) store: Arc<MicrosoftAzure>,
    pub(super) rt: Arc<tokio::runtime::Runtime>,
    pub(super) path: ObjPath,
    pub(super) held: Arc<Mutex<Held>>,
}

/// What the holder knows about its lock.
pub(super) struct Held {
    pub(super) record: LockRecord,
    /// The ETag of the lock blob as this run last wrote it.
    pub(super) etag: Option<String>,
    /// When the last write known to have succeeded was sent (this machine's monotonic clock).
    pub(super) confirmed: Instant,
    /// Renewals sent whose outcome is not known yet: their number and when they were sent.
    pub(super) sent: Vec<(u64, Instant)>,
    pub(super) lost: bool,
}

impl Lock for BlobLock {}

impl Drop for BlobLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.renewer.take() {
            let _ = h.join();
        }
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.lost {
            return;
        }
        // Released only if it is still ours: a conditional write, never a delete.
        let released = LockRecord {
            released: true,
            ..held.record.clone()
        };
        let opts = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: held.etag.clone(),
                version: None,
            }),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&released).unwrap_or_default();
        let (store, path) = (self.store.clone(), self.path.clone());
        let _ = self.rt.block_on(async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                store.put_opts(&path, PutPayload::from(bytes), opts),
            )
            .await
        });
    }
}

/// Keeps renewing the lock; when it cannot prove it still holds it — not renewed for half
/// its lifetime, or found taken — it stops the run (`process::stop_for_lost_lock`).
pub(super) fn renew_until_stopped(
    store: Arc<MicrosoftAzure>,
    rt: Arc<tokio::runtime::Runtime>,
    path: ObjPath,
    held: Arc<Mutex<Held>>,
    stop: Arc<AtomicBool>,
    loc: String,
) {
    let lifetime = held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record
        .lifetime();
    let renewing = Renewing {
        store,
        rt,
        path,
        held,
        loc,
        lifetime,
    };
    let (held, loc) = (&renewing.held, &renewing.loc);
    let every = lifetime / 8;
    let give_up_after = lifetime / 2;
    let mut next = Instant::now() + every;
    let mut last_error = String::new();
    let lost = |why: String| {
        held.lock().unwrap_or_else(|e| e.into_inner()).lost = true;
        crate::sys::process::stop_for_lost_lock(&why);
    };
    while !stop.load(Ordering::SeqCst) {
        let confirmed = held.lock().unwrap_or_else(|e| e.into_inner()).confirmed;
        let now = Instant::now();
        let valid_until = confirmed + give_up_after;
        if now >= valid_until {
            lost(format!(
                "this run could not renew its lock on {loc} for {:.1}s (half the lock's {:.1}s lifetime){}: it can no longer prove it holds the lock",
                now.duration_since(confirmed).as_secs_f64(),
                lifetime.as_secs_f64(),
                if last_error.is_empty() { String::new() } else { format!("; last error: {last_error}") }
            ));
            return;
        }
        if now < next {
            std::thread::sleep(Duration::from_millis(20).min(next - now));
            continue;
        }
        if let Some(why) = renewing.renew(valid_until, every, &mut next, &mut last_error) {
            lost(why);
            return;
        }
    }
}

/// A lock being renewed: where it is and what the holder knows of it.
struct Renewing {
    store: Arc<MicrosoftAzure>,
    rt: Arc<tokio::runtime::Runtime>,
    path: ObjPath,
    held: Arc<Mutex<Held>>,
    /// The state's location, for messages.
    loc: String,
    lifetime: Duration,
}

impl Renewing {
    /// One renewal, bounded so that it cannot outlast the lock's validity (`valid_until`):
    /// when to renew `next`, the `last_error`, or why the lock is lost.
    fn renew(
        &self,
        valid_until: Instant,
        every: Duration,
        next: &mut Instant,
        last_error: &mut String,
    ) -> Option<String> {
        let (held, lifetime, store, path) = (&self.held, self.lifetime, &self.store, &self.path);
        let (rec, etag, seq) = {
            let mut h = held.lock().unwrap_or_else(|e| e.into_inner());
            let seq = h.record.seq + 1;
            let rec = LockRecord {
                seq,
                expires: rfc3339(time::OffsetDateTime::now_utc() + lifetime),
                ..h.record.clone()
            };
            h.sent.push((seq, Instant::now()));
            (rec, h.etag.clone(), seq)
        };
        let sent_at = Instant::now();
        // However the storage client retries inside, the renewal ends by the lock's validity.
        let bound = valid_until.saturating_duration_since(sent_at);
        let bytes = serde_json::to_vec(&rec).unwrap_or_default();
        let opts = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: etag,
                version: None,
            }),
            ..Default::default()
        };
        let r = self.rt.block_on(async {
            tokio::time::timeout(bound, store.put_opts(path, PutPayload::from(bytes), opts)).await
        });
        match r {
            Ok(Ok(res)) => {
                let mut h = held.lock().unwrap_or_else(|e| e.into_inner());
                h.etag = res.e_tag;
                h.record = rec;
                h.confirmed = sent_at;
                h.sent.retain(|(s, _)| *s > seq);
                *next = sent_at + every;
                last_error.clear();
            }
            Ok(Err(object_store::Error::Precondition { .. }))
            | Ok(Err(object_store::Error::NotFound { .. })) => {
                return self.changed(bound, next, last_error);
            }
            Ok(Err(e)) => {
                *last_error = e.to_string();
                *next = Instant::now() + (every / 2).max(Duration::from_millis(20));
            }
            Err(_) => {
                *last_error = format!("no answer within {:.1}s", bound.as_secs_f64());
                *next = Instant::now();
            }
        }
        None
    }

    /// The lock changed since our last known write: one of our own renewals whose answer was
    /// lost (a retried request whose first attempt succeeded), or another run. Read within
    /// `bound`: when to renew `next`, the `last_error`, or why the lock is lost.
    fn changed(
        &self,
        bound: Duration,
        next: &mut Instant,
        last_error: &mut String,
    ) -> Option<String> {
        let (held, store, path, loc) = (&self.held, &self.store, &self.path, &self.loc);
        let current = self.rt.block_on(async {
            let read = async {
                let res = store.get(path).await?;
                let etag = res.meta.e_tag.clone();
                let bytes = res.bytes().await?;
                Ok::<_, object_store::Error>((parse_lock(&String::from_utf8_lossy(&bytes)), etag))
            };
            tokio::time::timeout(bound.max(Duration::from_millis(200)), read).await
        });
        match current {
            Ok(Ok((theirs, etag))) => {
                let mut h = held.lock().unwrap_or_else(|e| e.into_inner());
                if theirs.token == h.record.token && !theirs.released {
                    tracing::debug!(
                        seq = theirs.seq,
                        "a renewal went through although its answer was lost"
                    );
                    // Ours: it counts from when that renewal was sent.
                    let when = h
                        .sent
                        .iter()
                        .find(|(s, _)| *s == theirs.seq)
                        .map(|(_, t)| *t);
                    if let Some(t) = when {
                        h.confirmed = h.confirmed.max(t);
                    }
                    h.sent.retain(|(s, _)| *s > theirs.seq);
                    h.etag = etag;
                    h.record = theirs;
                    *next = Instant::now();
                } else {
                    drop(h);
                    return Some(format!(
                        "the lock on {loc} was {}: this run no longer holds it",
                        if theirs.released {
                            "removed (stepwise state unlock --force?)".to_string()
                        } else {
                            format!("taken by another run ({})", theirs.holder.describe())
                        }
                    ));
                }
            }
            Ok(Err(object_store::Error::NotFound { .. })) => {
                return Some(format!(
                    "the lock on {loc} was deleted: this run no longer holds it"
                ));
            }
            Ok(Err(e)) => *last_error = e.to_string(),
            Err(_) => *last_error = "no answer in time".into(),
        }
        None
    }
}
