//! The blob store itself: its location (`az://ACCOUNT/CONTAINER/PATH`), opening it (how it
//! authenticates, bounded requests), creating a missing container, and the reads and writes
//! the state and the lock are made of.

use super::auth::{create_container, percent_decode, Auth, ConnectionString};
use crate::util::error::{Kind, OrFail};
use anyhow::Result;
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::atomic::{AtomicBool, Ordering};
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
            Kind::Config.error(format!(
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
            return Err(Kind::Config.error(format!(
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
    pub(super) loc: BlobLocation,
    pub(super) store: Arc<MicrosoftAzure>,
    pub(super) rt: Arc<tokio::runtime::Runtime>,
    pub(super) auth: Auth,
    /// The ETag of the state as last read or written (None: there was none).
    pub(super) etag: Mutex<Option<String>>,
    pub(super) container_checked: AtomicBool,
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
        let (builder, auth) = authenticated(builder, &loc)?;
        let store = builder
            .build()
            .or_fail(Kind::Storage, || format!("cannot open {}", loc.url()))?;
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

    pub(super) fn state_path(&self) -> ObjPath {
        ObjPath::from(self.loc.path.as_str())
    }
    pub(super) fn lock_path(&self) -> ObjPath {
        ObjPath::from(format!("{}.lock", self.loc.path))
    }
    pub(super) fn history_prefix(&self) -> ObjPath {
        ObjPath::from(format!("{}.history", self.loc.path))
    }

    /// A clear message for a storage error.
    pub(super) fn explain(&self, what: &str, e: &object_store::Error) -> anyhow::Error {
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
        Kind::Storage.error(format!("{what} {}: {text}{hint}", self.loc.url()))
    }

    pub(super) fn get_text(&self, path: &ObjPath) -> Result<Option<(String, Option<String>)>> {
        Ok(self
            .get_bytes(path)?
            .map(|(bytes, etag)| (String::from_utf8_lossy(&bytes).into_owned(), etag)))
    }

    /// A blob's bytes as they are, with its ETag (`None`: no such blob).
    pub(super) fn get_bytes(&self, path: &ObjPath) -> Result<Option<(Vec<u8>, Option<String>)>> {
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

    pub(super) fn put(
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
    /// Creates the container if it is missing (needs the account key; otherwise says which
    /// permission is missing).
    pub(super) fn ensure_container(&self) -> Result<()> {
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
                        return Err(Kind::Storage.error(format!(
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
}

/// `builder` with the credentials the environment gives for the state at `loc` (a connection
/// string, an account key, a SAS token, workload or managed identity, else the Azure CLI's
/// login), and how it authenticates.
fn authenticated(
    mut builder: MicrosoftAzureBuilder,
    loc: &BlobLocation,
) -> Result<(MicrosoftAzureBuilder, Auth)> {
    let auth;
    if let Some(text) = std::env::var("AZURE_STORAGE_CONNECTION_STRING")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        let cs = ConnectionString::parse(&text);
        if let Some(a) = &cs.account {
            if a != &loc.account {
                return Err(Kind::Config.error(format!(
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
            return Err(Kind::Config.error(
                "AZURE_STORAGE_CONNECTION_STRING has neither AccountKey nor SharedAccessSignature",
            ));
        }
    } else if let Ok(key) =
        std::env::var("AZURE_STORAGE_ACCOUNT_KEY").or_else(|_| std::env::var("AZURE_STORAGE_KEY"))
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
    } else if std::env::var("IDENTITY_ENDPOINT").is_ok() || std::env::var("MSI_ENDPOINT").is_ok() {
        auth = Auth::Other("managed identity");
    } else {
        builder = builder.with_use_azure_cli(true);
        auth = Auth::Other("the Azure CLI's login");
    }
    Ok((builder, auth))
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
