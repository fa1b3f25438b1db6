//! The fenced lock on a blob state: the lock blob's record, its lifetime, taking it (created
//! only if absent; taken over only after watching it go a whole lifetime without renewal, on
//! this run's monotonic clock; then the state's ETag is bumped as the fencing token) and
//! removing it (`state unlock`), always by conditional writes.

use super::record::{lock_lifetime, parse_lock, rfc3339, LockRecord};
use super::renew::{renew_until_stopped, BlobLock, Held};
use super::store::BlobStore;
use crate::state::{Lock, State, StateStore};
use crate::sys::run_lock::Holder;
use crate::util::error::{Failure, Kind};
use anyhow::Result;
use object_store::{ObjectStoreExt, PutMode, UpdateVersion};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn write_lock(
    blob: &BlobStore,
    record: &LockRecord,
    mode: PutMode,
) -> std::result::Result<Option<String>, object_store::Error> {
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    blob.put(&blob.lock_path(), bytes, mode)
}

fn new_record(holder: &Holder, lifetime: Duration, token: &str, seq: u64) -> LockRecord {
    LockRecord {
        holder: holder.clone(),
        expires: rfc3339(time::OffsetDateTime::now_utc() + lifetime),
        lifetime_secs: lifetime.as_secs().max(1),
        lifetime_ms: lifetime.as_millis().max(1) as u64,
        token: token.to_string(),
        seq,
        released: false,
    }
}

fn read_lock(blob: &BlobStore) -> Result<Option<(LockRecord, Option<String>)>> {
    Ok(blob
        .get_text(&blob.lock_path())?
        .map(|(text, etag)| (parse_lock(&text), etag)))
}

/// Marks the lock released, only if it is still the version `etag`.
fn write_released(
    blob: &BlobStore,
    rec: &LockRecord,
    etag: Option<String>,
) -> std::result::Result<Option<String>, object_store::Error> {
    let released = LockRecord {
        released: true,
        ..rec.clone()
    };
    write_lock(
        blob,
        &released,
        PutMode::Update(UpdateVersion {
            e_tag: etag,
            version: None,
        }),
    )
}

/// After taking the lock: rewrite the state (same content) so that its ETag changes.
/// Every state write is conditional on the ETag its run read, so a write by a run that
/// held the lock before (and may not know yet that it lost it) now fails: the state's
/// ETag is the fencing token. Not kept in history (nothing changed).
fn fence(blob: &BlobStore) -> Result<()> {
    let current = blob.rt.block_on(async {
        match blob.store.get(&blob.state_path()).await {
            Ok(res) => {
                let etag = res.meta.e_tag.clone();
                Ok(Some((res.bytes().await?, etag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    });
    let bytes = match current.map_err(|e| blob.explain("cannot read", &e))? {
        Some((bytes, etag)) => {
            // Only the ETag matters: the very bytes go back (a state that does not parse
            // is left to `load` to refuse, unchanged).
            let mode = PutMode::Update(UpdateVersion {
                e_tag: etag,
                version: None,
            });
            match blob.put(&blob.state_path(), bytes.to_vec(), mode) {
                Ok(_) | Err(object_store::Error::Precondition { .. }) => return Ok(()),
                Err(e) => return Err(blob.explain("cannot write state", &e)),
            }
        }
        None => State::default().to_json().into_bytes(),
    };
    match blob.put(&blob.state_path(), bytes, PutMode::Create) {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(blob.explain("cannot write state", &e)),
    }
}

/// `StateStore::lock`: takes the lock (waiting up to `timeout`), starts its renewal and
/// fences off the previous holder.
pub(super) fn acquire(blob: &BlobStore, timeout: Duration) -> Result<Box<dyn Lock>> {
    blob.ensure_container()?;
    let lifetime = lock_lifetime();
    let holder = Holder::current();
    let token = new_token();
    let ours = new_record(&holder, lifetime, &token, 0);
    let (etag, sent_at, took_over) = wait_for_lock(blob, &ours, &token, timeout)?;
    if let Some(why) = took_over {
        eprintln!("{why}");
    }
    // A run that loses this lock must have stopped its commands well before another run
    // can take it: a quarter of the lifetime at most between SIGTERM and SIGKILL.
    crate::sys::process::cap_kill_grace(lifetime / 4);
    let held = Arc::new(Mutex::new(Held {
        record: ours,
        etag,
        confirmed: sent_at,
        sent: Vec::new(),
        lost: false,
    }));
    let lock = start_renewal(blob, held);
    fence(blob)?;
    Ok(Box::new(lock))
}

/// Takes the lock with our record `ours` (`token`): created if absent, taken when released,
/// or taken over once it went a whole lifetime without renewal, on this machine's monotonic
/// clock; waits up to `timeout` (or one lifetime of a record that looked expired).
fn wait_for_lock(
    blob: &BlobStore,
    ours: &LockRecord,
    token: &str,
    timeout: Duration,
) -> Result<Acquired> {
    // The version of the lock being watched and since when (this machine's monotonic
    // clock): a lock is free once it went a whole lifetime without being renewed.
    let mut watched: Option<(Option<String>, Instant)> = None;
    let mut first_seen: Option<(Instant, bool)> = None;
    let mut wait = Wait {
        deadline: Instant::now() + timeout,
        timeout,
        announced: false,
    };
    loop {
        let sent_at = Instant::now();
        match write_lock(blob, ours, PutMode::Create) {
            Ok(e) => return Ok((e, sent_at, None)),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => return Err(blob.explain("cannot lock", &e)),
        }
        let Some((rec, their)) = read_lock(blob)? else {
            continue; // released meanwhile
        };
        if rec.token == token {
            // Our own create went through; its answer was lost and the request retried.
            return Ok((their, sent_at, None));
        }
        if rec.released {
            // Taken conditionally: of two runs only one wins.
            if let Some((e, t, _)) = take(blob, ours, token, &their, None)? {
                return Ok((e, t, None));
            }
            continue;
        }
        let now = Instant::now();
        if watched.as_ref().map(|(e, _)| e) != Some(&their) {
            watched = Some((their.clone(), now));
        }
        let (first, looked_expired) = *first_seen.get_or_insert((now, rec.looks_expired()));
        let unrenewed = now.duration_since(watched.as_ref().map(|(_, t)| *t).unwrap_or(now));
        if unrenewed >= rec.lifetime() {
            let why = format!(
                "took over an expired lock: not renewed for {:.1}s, longer than its {:.1}s lifetime ({})",
                unrenewed.as_secs_f64(),
                rec.lifetime().as_secs_f64(),
                rec.holder.describe()
            );
            if let Some((e, t, why)) = take(blob, ours, token, &their, Some(why))? {
                return Ok((e, t, why));
            }
            continue;
        }
        wait.still_locked(blob, &rec, now, (first, looked_expired))?;
        std::thread::sleep(Duration::from_millis(500).min(rec.lifetime() / 8));
    }
}

/// Takes the lock whose version is `their` by a conditional write of `ours`; `None` when
/// another run was faster. `why`: the message of a takeover.
fn take(
    blob: &BlobStore,
    ours: &LockRecord,
    token: &str,
    their: &Option<String>,
    why: Option<String>,
) -> Result<Option<Acquired>> {
    let sent_at = Instant::now();
    let mode = PutMode::Update(UpdateVersion {
        e_tag: their.clone(),
        version: None,
    });
    match write_lock(blob, ours, mode) {
        Ok(e) => Ok(Some((e, sent_at, why))),
        Err(object_store::Error::Precondition { .. })
        | Err(object_store::Error::NotFound { .. }) => match read_lock(blob)? {
            Some((now, etag)) if now.token == token => Ok(Some((etag, sent_at, why))),
            _ => Ok(None),
        },
        Err(e) => Err(blob.explain("cannot lock", &e)),
    }
}

/// How long a run waits for a lock held by another.
struct Wait {
    /// `--lock-timeout` from when the run started waiting.
    deadline: Instant,
    timeout: Duration,
    /// Whether the run said it waits.
    announced: bool,
}

impl Wait {
    /// The lock is held by another run (`rec`), as seen at `now`; first seen at `first`, when
    /// it `looked_expired` or not: an error once the run has waited long enough (or was
    /// interrupted), else said once that the run waits.
    fn still_locked(
        &mut self,
        blob: &BlobStore,
        rec: &LockRecord,
        now: Instant,
        (first, looked_expired): (Instant, bool),
    ) -> Result<()> {
        let (deadline, timeout) = (self.deadline, self.timeout);
        // A record that says it expired is watched for one lifetime (its clock may be off,
        // so it is not believed); otherwise the run waits only as long as it was told to.
        let wait_until = if looked_expired {
            deadline.max(first + rec.lifetime() + Duration::from_millis(100))
        } else {
            deadline
        };
        let msg = format!(
            "state {} is locked by another run: {}",
            blob.location(),
            rec.describe()
        );
        if now >= wait_until || crate::sys::process::interrupted().is_some() {
            let renewed = if looked_expired {
                "\n(it was renewed while this run watched it: the holder is alive; its clock may be off)"
            } else {
                ""
            };
            return Err(Failure::new(
                Kind::Locked,
                format!("{msg}{renewed}\n(wait with --lock-timeout DURATION; a crashed run's lock is free once it has gone a whole lifetime without renewal; `stepwise state unlock --force` removes a live one)"),
            )
            .into());
        }
        if !self.announced {
            if looked_expired && now + rec.lifetime() > deadline {
                eprintln!(
                    "{msg}\nwatching it for up to {:.1}s: a lock not renewed for its whole lifetime is taken over",
                    rec.lifetime().as_secs_f64()
                );
            } else {
                eprintln!(
                    "{msg}\nwaiting up to {}...",
                    humantime::format_duration(timeout)
                );
            }
            self.announced = true;
        }
        Ok(())
    }
}

/// The lock, `held`, renewed on a thread of its own until it is released; a renewer that
/// dies stops the run.
fn start_renewal(blob: &BlobStore, held: Arc<Mutex<Held>>) -> BlobLock {
    let stop = Arc::new(AtomicBool::new(false));
    let renewer = {
        let (stop, held, store, rt, path, loc) = (
            stop.clone(),
            held.clone(),
            blob.store.clone(),
            blob.rt.clone(),
            blob.lock_path(),
            blob.location(),
        );
        std::thread::spawn(move || {
            let l = loc.clone();
            let renew = std::panic::AssertUnwindSafe(|| {
                renew_until_stopped(store, rt, path, held, stop, loc)
            });
            // A renewer that dies cannot renew: the run stops rather than run on unfenced.
            if std::panic::catch_unwind(renew).is_err() {
                crate::sys::process::stop_for_lost_lock(&format!(
                    "the renewal of the lock on {l} failed unexpectedly: this run can no longer prove it holds the lock"
                ));
            }
        })
    };
    BlobLock {
        stop,
        renewer: Some(renewer),
        store: blob.store.clone(),
        rt: blob.rt.clone(),
        path: blob.lock_path(),
        held,
    }
}

/// `StateStore::unlock`: removes the lock when its record says it expired and nobody
/// renews it for a whole lifetime, or at once with `force`.
pub(super) fn remove_lock(blob: &BlobStore, force: bool) -> Result<String> {
    let Some((rec, etag)) = read_lock(blob)? else {
        return Ok(format!("state {} is not locked", blob.location()));
    };
    if rec.released {
        return Ok(format!("state {} is not locked", blob.location()));
    }
    let live = |extra: &str| -> anyhow::Error {
        Failure::new(
            Kind::Locked,
            format!(
                "state {} is locked by a live run: {}{extra}\n(use `stepwise state unlock --force` to remove it anyway)",
                blob.location(),
                rec.describe()
            ),
        )
        .into()
    };
    if !force {
        if !rec.looks_expired() {
            return Err(live(""));
        }
        // Its record says it expired; believed only after watching it go a whole
        // lifetime without renewal (clocks are not compared).
        eprintln!(
            "watching the lock for {:.1}s to make sure nobody renews it...",
            rec.lifetime().as_secs_f64()
        );
        let until = Instant::now() + rec.lifetime();
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200).min(rec.lifetime() / 8));
            match read_lock(blob)? {
                Some((_, e)) if e == etag => {}
                _ => return Err(live("\n(it changed while this command watched it)")),
            }
        }
    }
    // Removed only if it is still the version inspected above.
    match write_released(blob, &rec, etag) {
        Ok(_) => Ok(format!(
            "removed the lock held by {}{}",
            rec.describe(),
            if force {
                "; that run finds out at its next renewal and stops (exit 4)"
            } else {
                ""
            }
        )),
        Err(object_store::Error::Precondition { .. })
        | Err(object_store::Error::NotFound { .. }) => Err(Failure::new(
            Kind::Locked,
            format!(
                "the lock on {} changed while this command looked at it (renewed, released or taken by another run): not removed; look again with `stepwise state unlock`",
                blob.location()
            ),
        )
        .into()),
        Err(e) => Err(blob.explain("cannot unlock", &e)),
    }
}

fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

/// A lock just taken: the lock blob's ETag, when the winning write was sent, and the message
/// to print when it was taken over.
type Acquired = (Option<String>, Instant, Option<String>);
