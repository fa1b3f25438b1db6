//! State in Azure Blob Storage (`az://ACCOUNT/CONTAINER/PATH`), through object_store's Azure
//! store. Every write is conditional on the ETag that was read; the run lock is a lock blob
//! created only if absent and renewed by conditional update, with a finite lifetime, so a
//! crashed run's lock expires by itself. History: a copy of each written version under
//! `PATH.history/`.

use crate::error::{exit, usage, Failure};
use crate::lock::Holder;
use crate::state::{self, Lock, State, StateStore, Version};
use anyhow::{anyhow, Result};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `az://ACCOUNT/CONTAINER/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    pub account: String,
    pub container: String,
    pub path: String,
}

impl BlobLocation {
    pub fn parse(url: &str) -> Result<BlobLocation> {
        let rest = url.strip_prefix("az://").ok_or_else(|| {
            usage(format!(
                "{url}: a blob state location is az://ACCOUNT/CONTAINER/PATH"
            ))
        })?;
        let mut parts = rest.splitn(3, '/');
        let (account, container, path) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if account.is_empty() || container.is_empty() || path.is_empty() || path.ends_with('/') {
            return Err(usage(format!(
                "{url}: a blob state location is az://ACCOUNT/CONTAINER/PATH (e.g. az://mystorage/tfstate/draftgenie/state.json)"
            )));
        }
        Ok(BlobLocation {
            account: account.into(),
            container: container.into(),
            path: path.into(),
        })
    }

    pub fn url(&self) -> String {
        format!("az://{}/{}/{}", self.account, self.container, self.path)
    }
}

/// `AZURE_STORAGE_CONNECTION_STRING`'s fields.
#[derive(Debug, Default, Clone)]
struct ConnectionString {
    account: Option<String>,
    key: Option<String>,
    blob_endpoint: Option<String>,
    sas: Option<String>,
    protocol: Option<String>,
    suffix: Option<String>,
}

impl ConnectionString {
    fn parse(text: &str) -> ConnectionString {
        let mut cs = ConnectionString::default();
        for part in text.split(';') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "accountname" => cs.account = Some(v),
                "accountkey" => cs.key = Some(v),
                "blobendpoint" => cs.blob_endpoint = Some(v.trim_end_matches('/').to_string()),
                "sharedaccesssignature" => cs.sas = Some(v),
                "defaultendpointsprotocol" => cs.protocol = Some(v),
                "endpointsuffix" => cs.suffix = Some(v),
                _ => {}
            }
        }
        cs
    }
}

/// How we authenticate, for messages and for creating a missing container.
#[derive(Debug, Clone)]
enum Auth {
    SharedKey { key: String, endpoint: String },
    Other(&'static str),
}

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
    fn looks_expired(&self) -> bool {
        parse_time(&self.expires).is_none_or(|t| t < time::OffsetDateTime::now_utc())
    }
    fn describe(&self) -> String {
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

fn rfc3339(t: time::OffsetDateTime) -> String {
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

pub struct BlobStore {
    loc: BlobLocation,
    store: Arc<MicrosoftAzure>,
    rt: Arc<tokio::runtime::Runtime>,
    auth: Auth,
    /// The ETag of the state as last read or written (None: there was none).
    etag: Mutex<Option<String>>,
    container_checked: AtomicBool,
}

impl BlobStore {
    pub fn open(loc: BlobLocation) -> Result<BlobStore> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_account(&loc.account)
            .with_container_name(&loc.container);
        // Bounded requests: a renewal or a write must fail in time, not sit in retries longer
        // than a lock's lifetime. (First: the client options replace earlier ones, such as
        // allowing http.)
        builder = builder
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_timeout(Duration::from_secs(20))
                    .with_connect_timeout(Duration::from_secs(5)),
            )
            .with_retry(object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        let auth;
        if let Some(text) = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
            .ok()
            .filter(|s| !s.trim().is_empty())
        {
            let cs = ConnectionString::parse(&text);
            if let Some(a) = &cs.account {
                if a != &loc.account {
                    return Err(usage(format!(
                        "AZURE_STORAGE_CONNECTION_STRING is for account {a}, but the state is in account {} ({})",
                        loc.account,
                        loc.url()
                    )));
                }
            }
            let endpoint = cs.blob_endpoint.clone().unwrap_or_else(|| {
                format!(
                    "{}://{}.blob.{}",
                    cs.protocol.as_deref().unwrap_or("https"),
                    loc.account,
                    cs.suffix.as_deref().unwrap_or("core.windows.net")
                )
            });
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
            if let Some(key) = &cs.key {
                builder = builder.with_access_key(key);
                auth = Auth::SharedKey {
                    key: key.clone(),
                    endpoint,
                };
            } else if let Some(sas) = &cs.sas {
                let pairs: Vec<(String, String)> = sas
                    .trim_start_matches('?')
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), percent_decode(v)))
                    .collect();
                builder = builder.with_sas_authorization(pairs);
                auth = Auth::Other("a SAS token");
            } else {
                return Err(usage(
                    "AZURE_STORAGE_CONNECTION_STRING has neither AccountKey nor SharedAccessSignature",
                ));
            }
        } else if let Ok(key) = std::env::var("AZURE_STORAGE_ACCOUNT_KEY")
            .or_else(|_| std::env::var("AZURE_STORAGE_KEY"))
        {
            builder = builder.with_access_key(&key);
            let endpoint = std::env::var("AZURE_STORAGE_BLOB_ENDPOINT")
                .unwrap_or_else(|_| format!("https://{}.blob.core.windows.net", loc.account));
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
            auth = Auth::SharedKey { key, endpoint };
        } else if std::env::var("AZURE_STORAGE_SAS_TOKEN").is_ok() {
            // from_env picked it up
            auth = Auth::Other("a SAS token");
        } else if std::env::var("AZURE_FEDERATED_TOKEN_FILE").is_ok() {
            auth = Auth::Other("workload identity");
        } else if std::env::var("IDENTITY_ENDPOINT").is_ok()
            || std::env::var("MSI_ENDPOINT").is_ok()
        {
            auth = Auth::Other("managed identity");
        } else {
            builder = builder.with_use_azure_cli(true);
            auth = Auth::Other("the Azure CLI's login");
        }
        let store = builder
            .build()
            .map_err(|e| usage(format!("cannot open {}: {e}", loc.url())))?;
        Ok(BlobStore {
            loc,
            store: Arc::new(store),
            rt: Arc::new(rt),
            auth,
            etag: Mutex::new(None),
            container_checked: AtomicBool::new(false),
        })
    }

    /// Every blob whose path starts with the folder `dir` (none when the container does not
    /// exist), as `az://` URLs.
    pub fn list_urls(&self, dir: &str) -> Result<Vec<String>> {
        use futures_util::TryStreamExt;
        let prefix = ObjPath::from(dir);
        let listed: std::result::Result<Vec<object_store::ObjectMeta>, _> = self.rt.block_on(
            self.store
                .list((!dir.is_empty()).then_some(&prefix))
                .try_collect(),
        );
        match listed {
            Ok(metas) => Ok(metas
                .into_iter()
                .map(|m| {
                    format!(
                        "az://{}/{}/{}",
                        self.loc.account, self.loc.container, m.location
                    )
                })
                .collect()),
            Err(e)
                if e.to_string().contains("ContainerNotFound")
                    || matches!(e, object_store::Error::NotFound { .. }) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(self.explain("cannot list", &e)),
        }
    }

    fn state_path(&self) -> ObjPath {
        ObjPath::from(self.loc.path.as_str())
    }
    fn lock_path(&self) -> ObjPath {
        ObjPath::from(format!("{}.lock", self.loc.path))
    }
    fn history_prefix(&self) -> ObjPath {
        ObjPath::from(format!("{}.history", self.loc.path))
    }

    /// A clear message for a storage error.
    fn explain(&self, what: &str, e: &object_store::Error) -> anyhow::Error {
        let text = e.to_string();
        let hint = if text.contains("403")
            || text.contains("AuthenticationFailed")
            || text.contains("AuthorizationFailure")
        {
            match &self.auth {
                Auth::SharedKey { .. } => " (the account key was refused: check AZURE_STORAGE_CONNECTION_STRING / the account key)".to_string(),
                Auth::Other(how) => format!(" (authenticated with {how}; it needs the role Storage Blob Data Contributor on the container)"),
            }
        } else if text.contains("ContainerNotFound") {
            format!(" (container {} does not exist)", self.loc.container)
        } else {
            String::new()
        };
        usage(format!("{what} {}: {text}{hint}", self.loc.url()))
    }

    /// Creates the container if it is missing (needs the account key; otherwise says which
    /// permission is missing).
    fn ensure_container(&self) -> Result<()> {
        if self.container_checked.load(Ordering::SeqCst) {
            return Ok(());
        }
        let probe = self.rt.block_on(async {
            use futures_util::StreamExt;
            let prefix = ObjPath::from(self.loc.path.as_str());
            let mut list = self.store.list(Some(&prefix));
            list.next().await.transpose()
        });
        match probe {
            Ok(_) => {}
            Err(e) if e.to_string().contains("ContainerNotFound") || matches!(e, object_store::Error::NotFound { .. }) => {
                match &self.auth {
                    Auth::SharedKey { key, endpoint } => {
                        self.rt.block_on(create_container(
                            endpoint,
                            &self.loc.account,
                            &self.loc.container,
                            key,
                        ))?;
                        eprintln!("created container {} in account {}", self.loc.container, self.loc.account);
                    }
                    Auth::Other(how) => {
                        return Err(usage(format!(
                            "container {} does not exist in storage account {}, and stepwise, authenticated with {how}, cannot create it: create it (az storage container create --account-name {} --name {} --auth-mode login) or grant the role Storage Blob Data Contributor (which includes Microsoft.Storage/storageAccounts/blobServices/containers/write)",
                            self.loc.container, self.loc.account, self.loc.account, self.loc.container
                        )))
                    }
                }
            }
            Err(e) => return Err(self.explain("cannot reach", &e)),
        }
        self.container_checked.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn get_text(&self, path: &ObjPath) -> Result<Option<(String, Option<String>)>> {
        let r = self.rt.block_on(async {
            match self.store.get(path).await {
                Ok(res) => {
                    let etag = res.meta.e_tag.clone();
                    let bytes = res.bytes().await?;
                    Ok(Some((String::from_utf8_lossy(&bytes).into_owned(), etag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.explain("cannot read", &e))
    }

    fn put(
        &self,
        path: &ObjPath,
        bytes: Vec<u8>,
        mode: PutMode,
    ) -> std::result::Result<Option<String>, object_store::Error> {
        self.rt.block_on(async {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            self.store
                .put_opts(path, PutPayload::from(bytes), opts)
                .await
                .map(|r| r.e_tag)
        })
    }

    fn write_lock(
        &self,
        record: &LockRecord,
        mode: PutMode,
    ) -> std::result::Result<Option<String>, object_store::Error> {
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.put(&self.lock_path(), bytes, mode)
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

    fn read_lock(&self) -> Result<Option<(LockRecord, Option<String>)>> {
        Ok(self
            .get_text(&self.lock_path())?
            .map(|(text, etag)| (parse_lock(&text), etag)))
    }

    /// Marks the lock released, only if it is still the version `etag`.
    fn write_released(
        &self,
        rec: &LockRecord,
        etag: Option<String>,
    ) -> std::result::Result<Option<String>, object_store::Error> {
        let released = LockRecord {
            released: true,
            ..rec.clone()
        };
        self.write_lock(
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
    fn fence(&self) -> Result<()> {
        let current = self.rt.block_on(async {
            match self.store.get(&self.state_path()).await {
                Ok(res) => {
                    let etag = res.meta.e_tag.clone();
                    Ok(Some((res.bytes().await?, etag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let bytes = match current.map_err(|e| self.explain("cannot read", &e))? {
            Some((bytes, etag)) => {
                // Only the ETag matters: the very bytes go back (a state that does not parse
                // is left to `load` to refuse, unchanged).
                let mode = PutMode::Update(UpdateVersion {
                    e_tag: etag,
                    version: None,
                });
                match self.put(&self.state_path(), bytes.to_vec(), mode) {
                    Ok(_) | Err(object_store::Error::Precondition { .. }) => return Ok(()),
                    Err(e) => return Err(self.explain("cannot write state", &e)),
                }
            }
            None => State::default().to_json().into_bytes(),
        };
        match self.put(&self.state_path(), bytes, PutMode::Create) {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(self.explain("cannot write state", &e)),
        }
    }
}

fn parse_lock(text: &str) -> LockRecord {
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

fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PUT {endpoint}/{container}?restype=container`, signed with the account key (SharedKey).
async fn create_container(endpoint: &str, account: &str, container: &str, key: &str) -> Result<()> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let url = format!(
        "{}/{container}?restype=container",
        endpoint.trim_end_matches('/')
    );
    let date = httpdate(time::OffsetDateTime::now_utc());
    let version = "2021-08-06";
    // The canonical resource is /ACCOUNT/URL-PATH: for a path-style endpoint (the emulator)
    // the URL path already starts with the account.
    let url_path = url::Url::parse(&url)
        .map_err(|e| anyhow!("bad endpoint {endpoint}: {e}"))?
        .path()
        .to_string();
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}{url_path}\nrestype:container"
    );
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| usage("the storage account key is not valid base64"))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key_bytes)
        .map_err(|e| anyhow!("bad account key: {e}"))?;
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .put(&url)
        .header("x-ms-date", &date)
        .header("x-ms-version", version)
        .header("Content-Length", "0")
        .header("Authorization", format!("SharedKey {account}:{sig}"))
        .send()
        .await
        .map_err(|e| usage(format!("cannot create container {container}: {e}")))?;
    let status = resp.status();
    if status.is_success() || status.as_u16() == 409 {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(usage(format!(
        "cannot create container {container} in account {account}: HTTP {status}: {}",
        body.lines().take(3).collect::<Vec<_>>().join(" ")
    )))
}

fn httpdate(t: time::OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A lock just taken: the lock blob's ETag, when the winning write was sent, and the message
/// to print when it was taken over.
type Acquired = (Option<String>, Instant, Option<String>);

/// A held blob lock: renewed in the background; released (conditionally) when dropped.
pub struct BlobLock {
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    store: Arc<MicrosoftAzure>,
    rt: Arc<tokio::runtime::Runtime>,
    path: ObjPath,
    held: Arc<Mutex<Held>>,
}

/// What the holder knows about its lock.
struct Held {
    record: LockRecord,
    /// The ETag of the lock blob as this run last wrote it.
    etag: Option<String>,
    /// When the last write known to have succeeded was sent (this machine's monotonic clock).
    confirmed: Instant,
    /// Renewals sent whose outcome is not known yet: their number and when they were sent.
    sent: Vec<(u64, Instant)>,
    lost: bool,
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
fn renew_until_stopped(
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
    let every = lifetime / 8;
    let give_up_after = lifetime / 2;
    let mut next = Instant::now() + every;
    let mut last_error = String::new();
    let lost = |why: String| {
        held.lock().unwrap_or_else(|e| e.into_inner()).lost = true;
        crate::process::stop_for_lost_lock(&why);
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
        // One renewal, bounded so that it cannot outlast the lock's validity.
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
        let r = rt.block_on(async {
            tokio::time::timeout(bound, store.put_opts(&path, PutPayload::from(bytes), opts)).await
        });
        match r {
            Ok(Ok(res)) => {
                let mut h = held.lock().unwrap_or_else(|e| e.into_inner());
                h.etag = res.e_tag;
                h.record = rec;
                h.confirmed = sent_at;
                h.sent.retain(|(s, _)| *s > seq);
                next = sent_at + every;
                last_error.clear();
            }
            Ok(Err(object_store::Error::Precondition { .. }))
            | Ok(Err(object_store::Error::NotFound { .. })) => {
                // Changed since our last known write: one of our own renewals whose answer
                // was lost (a retried request whose first attempt succeeded), or another run.
                let current = rt.block_on(async {
                    let read = async {
                        let res = store.get(&path).await?;
                        let etag = res.meta.e_tag.clone();
                        let bytes = res.bytes().await?;
                        Ok::<_, object_store::Error>((
                            parse_lock(&String::from_utf8_lossy(&bytes)),
                            etag,
                        ))
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
                            next = Instant::now();
                        } else {
                            drop(h);
                            lost(format!(
                                "the lock on {loc} was {}: this run no longer holds it",
                                if theirs.released {
                                    "removed (stepwise state unlock --force?)".to_string()
                                } else {
                                    format!("taken by another run ({})", theirs.holder.describe())
                                }
                            ));
                            return;
                        }
                    }
                    Ok(Err(object_store::Error::NotFound { .. })) => {
                        lost(format!(
                            "the lock on {loc} was deleted: this run no longer holds it"
                        ));
                        return;
                    }
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(_) => last_error = "no answer in time".into(),
                }
            }
            Ok(Err(e)) => {
                last_error = e.to_string();
                next = Instant::now() + (every / 2).max(Duration::from_millis(20));
            }
            Err(_) => {
                last_error = format!("no answer within {:.1}s", bound.as_secs_f64());
                next = Instant::now();
            }
        }
    }
}

impl StateStore for BlobStore {
    fn location(&self) -> String {
        self.loc.url()
    }

    fn load(&self) -> Result<State> {
        self.ensure_container()?;
        match self.get_text(&self.state_path())? {
            None => {
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(State::default())
            }
            Some((text, etag)) => {
                let st = State::parse(&self.location(), &text)?;
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = etag;
                Ok(st)
            }
        }
    }

    fn save(&self, state: &State) -> Result<()> {
        self.ensure_container()?;
        let json = state.to_json();
        let mut etag = self.etag.lock().unwrap_or_else(|e| e.into_inner());
        let mode = match etag.clone() {
            Some(e) => PutMode::Update(UpdateVersion {
                e_tag: Some(e),
                version: None,
            }),
            None => PutMode::Create,
        };
        // A run that lost its lock still records what it can, briefly: storage may be
        // unreachable, and the write stays conditional.
        let result = if crate::process::lock_lost().is_some() {
            let (store, path, bytes) = (self.store.clone(), self.state_path(), json.clone());
            self.rt
                .block_on(async move {
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        store.put_opts(
                            &path,
                            PutPayload::from(bytes.into_bytes()),
                            PutOptions {
                                mode,
                                ..Default::default()
                            },
                        ),
                    )
                    .await
                })
                .unwrap_or_else(|_| {
                    Err(object_store::Error::Generic {
                        store: "MicrosoftAzure",
                        source: "no answer within 5s".into(),
                    })
                })
                .map(|r| r.e_tag)
        } else {
            self.put(&self.state_path(), json.clone().into_bytes(), mode)
        };
        // A conditional write refused because its own first attempt went through (the answer
        // was lost and the request retried) is recognised by its content.
        let result = match result {
            Err(
                e @ (object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }),
            ) => match self.get_text(&self.state_path()) {
                Ok(Some((text, current))) if text == json => Ok(current),
                _ => Err(e),
            },
            other => other,
        };
        match result {
            Ok(new) => *etag = new,
            Err(object_store::Error::Precondition { .. }) | Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(Failure::new(
                    exit::STEP_FAILED,
                    format!(
                        "state {} was changed by another run since this run read it: not overwritten (this run's last step is not recorded; run again to reconcile)",
                        self.location()
                    ),
                )
                .into())
            }
            Err(e) => return Err(self.explain("cannot write state", &e)),
        }
        drop(etag);
        let hist = ObjPath::from(format!(
            "{}/{}.json",
            self.history_prefix(),
            state::version_id(state)
        ));
        let _ = self.put(&hist, json.into_bytes(), PutMode::Overwrite);
        Ok(())
    }

    fn backup(&self) -> Result<Option<String>> {
        let Some((text, _)) = self.get_text(&self.state_path())? else {
            return Ok(None);
        };
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let path = ObjPath::from(format!("{}.backup-{stamp}", self.loc.path));
        self.put(&path, text.into_bytes(), PutMode::Create)
            .map_err(|e| self.explain("cannot back up", &e))?;
        Ok(Some(format!(
            "az://{}/{}/{}",
            self.loc.account, self.loc.container, path
        )))
    }

    fn lock(&self, timeout: Duration) -> Result<Box<dyn Lock>> {
        self.ensure_container()?;
        let lifetime = lock_lifetime();
        let holder = Holder::current();
        let token = new_token();
        let ours = Self::new_record(&holder, lifetime, &token, 0);
        let deadline = Instant::now() + timeout;
        // The version of the lock being watched and since when (this machine's monotonic
        // clock): a lock is free once it went a whole lifetime without being renewed.
        let mut watched: Option<(Option<String>, Instant)> = None;
        let mut first_seen: Option<(Instant, bool)> = None;
        let mut announced = false;
        let (etag, sent_at, took_over) = loop {
            let sent_at = Instant::now();
            match self.write_lock(&ours, PutMode::Create) {
                Ok(e) => break (e, sent_at, None),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(self.explain("cannot lock", &e)),
            }
            let Some((rec, their)) = self.read_lock()? else {
                continue; // released meanwhile
            };
            if rec.token == token {
                // Our own create went through; its answer was lost and the request retried.
                break (their, sent_at, None);
            }
            let take = |why: Option<String>| -> Result<Option<Acquired>> {
                let sent_at = Instant::now();
                let mode = PutMode::Update(UpdateVersion {
                    e_tag: their.clone(),
                    version: None,
                });
                match self.write_lock(&ours, mode) {
                    Ok(e) => Ok(Some((e, sent_at, why))),
                    Err(object_store::Error::Precondition { .. })
                    | Err(object_store::Error::NotFound { .. }) => match self.read_lock()? {
                        Some((now, etag)) if now.token == token => Ok(Some((etag, sent_at, why))),
                        _ => Ok(None),
                    },
                    Err(e) => Err(self.explain("cannot lock", &e)),
                }
            };
            if rec.released {
                // Taken conditionally: of two runs only one wins.
                if let Some((e, t, _)) = take(None)? {
                    break (e, t, None);
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
                if let Some((e, t, why)) = take(Some(why))? {
                    break (e, t, why);
                }
                continue;
            }
            // A record that says it expired is watched for one lifetime (its clock may be off,
            // so it is not believed); otherwise the run waits only as long as it was told to.
            let wait_until = if looked_expired {
                deadline.max(first + rec.lifetime() + Duration::from_millis(100))
            } else {
                deadline
            };
            let msg = format!(
                "state {} is locked by another run: {}",
                self.location(),
                rec.describe()
            );
            if now >= wait_until || crate::process::interrupted().is_some() {
                let renewed = if looked_expired {
                    "\n(it was renewed while this run watched it: the holder is alive; its clock may be off)"
                } else {
                    ""
                };
                return Err(Failure::new(
                    exit::LOCKED,
                    format!("{msg}{renewed}\n(wait with --lock-timeout DURATION; a crashed run's lock is free once it has gone a whole lifetime without renewal; `stepwise state unlock --force` removes a live one)"),
                )
                .into());
            }
            if !announced {
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
                announced = true;
            }
            std::thread::sleep(Duration::from_millis(500).min(rec.lifetime() / 8));
        };
        if let Some(why) = took_over {
            eprintln!("{why}");
        }
        // A run that loses this lock must have stopped its commands well before another run
        // can take it: a quarter of the lifetime at most between SIGTERM and SIGKILL.
        crate::process::cap_kill_grace(lifetime / 4);
        let held = Arc::new(Mutex::new(Held {
            record: ours,
            etag,
            confirmed: sent_at,
            sent: Vec::new(),
            lost: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (stop, held, store, rt, path, loc) = (
                stop.clone(),
                held.clone(),
                self.store.clone(),
                self.rt.clone(),
                self.lock_path(),
                self.location(),
            );
            std::thread::spawn(move || {
                let l = loc.clone();
                let renew = std::panic::AssertUnwindSafe(|| {
                    renew_until_stopped(store, rt, path, held, stop, loc)
                });
                // A renewer that dies cannot renew: the run stops rather than run on unfenced.
                if std::panic::catch_unwind(renew).is_err() {
                    crate::process::stop_for_lost_lock(&format!(
                        "the renewal of the lock on {l} failed unexpectedly: this run can no longer prove it holds the lock"
                    ));
                }
            })
        };
        let lock = BlobLock {
            stop,
            renewer: Some(renewer),
            store: self.store.clone(),
            rt: self.rt.clone(),
            path: self.lock_path(),
            held,
        };
        self.fence()?;
        Ok(Box::new(lock))
    }

    fn unlock(&self, force: bool) -> Result<String> {
        let Some((rec, etag)) = self.read_lock()? else {
            return Ok(format!("state {} is not locked", self.location()));
        };
        if rec.released {
            return Ok(format!("state {} is not locked", self.location()));
        }
        let live = |extra: &str| -> anyhow::Error {
            Failure::new(
                exit::LOCKED,
                format!(
                    "state {} is locked by a live run: {}{extra}\n(use `stepwise state unlock --force` to remove it anyway)",
                    self.location(),
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
                match self.read_lock()? {
                    Some((_, e)) if e == etag => {}
                    _ => return Err(live("\n(it changed while this command watched it)")),
                }
            }
        }
        // Removed only if it is still the version inspected above.
        match self.write_released(&rec, etag) {
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
                exit::LOCKED,
                format!(
                    "the lock on {} changed while this command looked at it (renewed, released or taken by another run): not removed; look again with `stepwise state unlock`",
                    self.location()
                ),
            )
            .into()),
            Err(e) => Err(self.explain("cannot unlock", &e)),
        }
    }

    fn history(&self) -> Result<Vec<Version>> {
        use futures_util::TryStreamExt;
        let prefix = self.history_prefix();
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.store.list(Some(&prefix)).try_collect())
            .map_err(|e| self.explain("cannot list history of", &e))?;
        let mut versions = Vec::new();
        for m in metas {
            let Some(id) = m.location.filename().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if let Some((text, _)) = self.get_text(&m.location)? {
                if let Ok(st) = State::parse(m.location.as_ref(), &text) {
                    versions.push((id.to_string(), st));
                }
            }
        }
        Ok(state::describe_versions(versions))
    }

    fn version(&self, id: &str) -> Result<State> {
        if id.contains('/') {
            return Err(usage(format!("bad version {id:?}")));
        }
        let path = ObjPath::from(format!("{}/{id}.json", self.history_prefix()));
        match self.get_text(&path)? {
            Some((text, _)) => State::parse(path.as_ref(), &text),
            None => Err(usage(format!(
                "no version {id} in {} (see `stepwise state history`)",
                self.location()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let l = BlobLocation::parse("az://acct/cont/dir/state.json").unwrap();
        assert_eq!(
            (l.account.as_str(), l.container.as_str(), l.path.as_str()),
            ("acct", "cont", "dir/state.json")
        );
        assert!(BlobLocation::parse("az://acct/cont").is_err());
        assert!(BlobLocation::parse("s3://x/y/z").is_err());
    }

    #[test]
    fn connection_string_fields() {
        let cs = ConnectionString::parse("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=abc==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1/;");
        assert_eq!(cs.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(cs.key.as_deref(), Some("abc=="));
        assert_eq!(
            cs.blob_endpoint.as_deref(),
            Some("http://127.0.0.1:1/devstoreaccount1")
        );
    }

    #[test]
    fn http_dates() {
        let t = time::macros::datetime!(2026-11-26 09:05:03 UTC);
        assert_eq!(httpdate(t), "Thu, 26 Nov 2026 09:05:03 GMT");
    }
}
