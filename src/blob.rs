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
    /// When the lock expires unless renewed (RFC 3339).
    pub expires: String,
    pub lifetime_secs: u64,
}

impl LockRecord {
    fn expired(&self) -> bool {
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
            format!("{}; expired {}s ago", self.holder.describe(), -left)
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

/// The lock lifetime: `STEPWISE_LOCK_LIFETIME` (seconds) or 60 s.
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

    fn new_record(holder: &Holder, lifetime: Duration) -> LockRecord {
        LockRecord {
            holder: holder.clone(),
            expires: rfc3339(time::OffsetDateTime::now_utc() + lifetime),
            lifetime_secs: lifetime.as_secs().max(1),
        }
    }

    fn read_lock(&self) -> Result<Option<(LockRecord, Option<String>)>> {
        Ok(match self.get_text(&self.lock_path())? {
            None => None,
            Some((text, etag)) => {
                let rec = serde_json::from_str::<LockRecord>(&text).unwrap_or(LockRecord {
                    holder: Holder {
                        user: "?".into(),
                        host: "?".into(),
                        pid: 0,
                        command: "unreadable lock record".into(),
                        started: String::new(),
                    },
                    expires: String::new(),
                    lifetime_secs: 0,
                });
                Some((rec, etag))
            }
        })
    }
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

/// A held blob lock: renewed in the background; deleted when dropped.
pub struct BlobLock {
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    store: Arc<MicrosoftAzure>,
    rt: Arc<tokio::runtime::Runtime>,
    path: ObjPath,
    etag: Arc<Mutex<Option<String>>>,
}

impl Lock for BlobLock {}

impl Drop for BlobLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.renewer.take() {
            let _ = h.join();
        }
        // Delete only if it is still ours.
        let ours = self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let store = self.store.clone();
        let path = self.path.clone();
        self.rt.block_on(async move {
            if let Ok(meta) = store.head(&path).await {
                if meta.e_tag == ours {
                    let _ = store.delete(&path).await;
                }
            }
        });
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
        match self.put(&self.state_path(), json.clone().into_bytes(), mode) {
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
        let deadline = Instant::now() + timeout;
        let mut announced = false;
        let etag = loop {
            match self.write_lock(&Self::new_record(&holder, lifetime), PutMode::Create) {
                Ok(e) => break e,
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(self.explain("cannot lock", &e)),
            }
            match self.read_lock()? {
                None => continue, // released meanwhile
                Some((rec, their)) if rec.expired() => {
                    // Take over an expired lock, conditionally: of two runs only one wins.
                    let mode = PutMode::Update(UpdateVersion {
                        e_tag: their,
                        version: None,
                    });
                    match self.write_lock(&Self::new_record(&holder, lifetime), mode) {
                        Ok(e) => {
                            eprintln!("took over an expired lock ({})", rec.describe());
                            break e;
                        }
                        Err(object_store::Error::Precondition { .. })
                        | Err(object_store::Error::NotFound { .. }) => continue,
                        Err(e) => return Err(self.explain("cannot lock", &e)),
                    }
                }
                Some((rec, _)) => {
                    let msg = format!(
                        "state {} is locked by another run: {}",
                        self.location(),
                        rec.describe()
                    );
                    if Instant::now() >= deadline || crate::process::interrupted().is_some() {
                        return Err(Failure::new(
                            exit::LOCKED,
                            format!("{msg}\n(wait with --lock-timeout DURATION; a crashed run's lock expires by itself; `stepwise state unlock --force` removes a live one)"),
                        )
                        .into());
                    }
                    if !announced {
                        eprintln!(
                            "{msg}\nwaiting up to {}...",
                            humantime::format_duration(timeout)
                        );
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        let etag = Arc::new(Mutex::new(etag));
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (stop, etag, store, rt, path) = (
                stop.clone(),
                etag.clone(),
                self.store.clone(),
                self.rt.clone(),
                self.lock_path(),
            );
            let loc = self.location();
            std::thread::spawn(move || {
                let every = lifetime / 3;
                let mut last = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() < every {
                        continue;
                    }
                    last = Instant::now();
                    let current = etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let rec = BlobStore::new_record(&holder, lifetime);
                    let bytes = serde_json::to_vec(&rec).unwrap_or_default();
                    let opts = PutOptions {
                        mode: PutMode::Update(UpdateVersion {
                            e_tag: current,
                            version: None,
                        }),
                        ..Default::default()
                    };
                    let r = rt.block_on(store.put_opts(&path, PutPayload::from(bytes), opts));
                    match r {
                        Ok(res) => *etag.lock().unwrap_or_else(|e| e.into_inner()) = res.e_tag,
                        Err(object_store::Error::Precondition { .. })
                        | Err(object_store::Error::NotFound { .. }) => {
                            eprintln!("warning: the lock on {loc} was removed or taken by another run (state unlock --force?); state writes stay conditional, so nothing is overwritten");
                            return;
                        }
                        Err(e) => eprintln!("warning: cannot renew the lock on {loc}: {e}"),
                    }
                }
            })
        };
        Ok(Box::new(BlobLock {
            stop,
            renewer: Some(renewer),
            store: self.store.clone(),
            rt: self.rt.clone(),
            path: self.lock_path(),
            etag,
        }))
    }

    fn unlock(&self, force: bool) -> Result<String> {
        let Some((rec, _)) = self.read_lock()? else {
            return Ok(format!("state {} is not locked", self.location()));
        };
        if !rec.expired() && !force {
            return Err(Failure::new(
                exit::LOCKED,
                format!(
                    "state {} is locked by a live run: {}\n(use `stepwise state unlock --force` to remove it anyway)",
                    self.location(),
                    rec.describe()
                ),
            )
            .into());
        }
        self.rt
            .block_on(self.store.delete(&self.lock_path()))
            .map_err(|e| self.explain("cannot unlock", &e))?;
        Ok(format!("removed the lock held by {}", rec.describe()))
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
