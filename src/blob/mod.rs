//! State in Azure Blob Storage (`az://ACCOUNT/CONTAINER/PATH`), through object_store's Azure
//! store. Every write is conditional on the ETag that was read; the run lock is a lock blob
//! created only if absent and renewed by conditional update, with a finite lifetime, so a
//! crashed run's lock expires by itself. History: a copy of each written version under
//! `PATH.history/`.
//!
//! This file: the location, opening the store, and state reads and writes (`StateStore`);
//! `auth` (credentials, creating a missing container), `lock` (taking and removing the
//! fenced lock) and `renew` (a held lock's renewal and release) hold the rest.

mod auth;
mod lock;
mod renew;

pub use lock::{lock_lifetime, LockRecord};
pub use renew::BlobLock;

use crate::error::{exit, usage, Failure};
use crate::state::{self, Lock, State, StateStore, Version};
use anyhow::Result;
use auth::{percent_decode, Auth, ConnectionString};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    fn get_text(&self, path: &ObjPath) -> Result<Option<(String, Option<String>)>> {
        Ok(self
            .get_bytes(path)?
            .map(|(bytes, etag)| (String::from_utf8_lossy(&bytes).into_owned(), etag)))
    }

    /// A blob's bytes as they are, with its ETag (`None`: no such blob).
    fn get_bytes(&self, path: &ObjPath) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let r = self.rt.block_on(async {
            match self.store.get(path).await {
                Ok(res) => {
                    let etag = res.meta.e_tag.clone();
                    let bytes = res.bytes().await?;
                    Ok(Some((bytes.to_vec(), etag)))
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
        let Some((bytes, etag)) = self.get_bytes(&self.state_path())? else {
            return Ok(None);
        };
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let path = ObjPath::from(format!("{}.backup-{stamp}", self.loc.path));
        self.put(&path, bytes, PutMode::Create)
            .map_err(|e| self.explain("cannot back up", &e))?;
        // What was backed up was read: a save may replace it (even if it was not valid state).
        *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = etag;
        Ok(Some(format!(
            "az://{}/{}/{}",
            self.loc.account, self.loc.container, path
        )))
    }

    fn lock(&self, timeout: Duration) -> Result<Box<dyn Lock>> {
        self.acquire(timeout)
    }

    fn unlock(&self, force: bool) -> Result<String> {
        self.remove_lock(force)
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
}
