//! State in Azure Blob Storage (`az://ACCOUNT/CONTAINER/PATH`), through object_store's Azure
//! store. Every write is conditional on the ETag that was read; the run lock is a lock blob
//! created only if absent and renewed by conditional update, with a finite lifetime, so a
//! crashed run's lock expires by itself. History: a copy of each written version under
//! `PATH.history/`.
//!
//! This file: the state's reads and writes (`StateStore`). `store` (the location, opening the
//! store, creating a missing container, the blob reads and writes), `auth` (credentials, the
//! container-creating REST call), `record` (the lock blob's record and the lock lifetime),
//! `lock` (taking and removing the fenced lock) and `renew` (a held lock's renewal and
//! release) hold the rest.

mod auth;
mod lock;
mod record;
mod renew;
mod store;

pub use store::{BlobLocation, BlobStore};

use crate::state::{self, Lock, State, StateStore, Version};
use crate::util::error::{usage, Failure, Kind};
use anyhow::Result;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::time::Duration;

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
        let result = if crate::sys::process::lock_lost().is_some() {
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
                    Kind::Conflict,
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
        lock::acquire(self, timeout)
    }

    fn unlock(&self, force: bool) -> Result<String> {
        lock::remove_lock(self, force)
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
