//! Keeping the JWKS key set current without a restart and without touching the request path.
//!
//! - `JWT_JWKS_FILE` is polled about once a second (its modification time, length and inode: an
//!   atomic rename or a Kubernetes secret's symlink swap changes the inode), re-read when that
//!   changes. A new file that does not give a key keeps the old keys in force (with a warning): a
//!   half-written file must not lock every user out.
//! - `JWT_JWKS_URL` is fetched every `JWT_JWKS_REFRESH_MS`, each fetch bounded by
//!   `JWT_JWKS_TIMEOUT_MS` (a hanging identity provider only delays the next refresh). A failed
//!   fetch keeps the keys in force; while no fetch has succeeded yet, it is retried sooner.
//!   Redirects are not followed (a 3xx is a failed fetch): the URL's `https` (config checks it)
//!   is what vouches for the keys, and a redirect could lead to a plain `http` host or anywhere
//!   else.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{
    config::JwtAlgorithm,
    identity::keys::{self, KeyStore, Source},
};

/// How often the file's metadata is looked at.
const FILE_POLL: Duration = Duration::from_secs(1);
/// The largest JWKS document read (a real one is a few KiB).
const MAX_DOCUMENT: usize = 1 << 20;
/// The longest wait before the next fetch while the URL has given no key yet.
const FIRST_KEYS_RETRY: Duration = Duration::from_secs(5);

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// `JWT_JWKS_FILE` and the version of it whose keys are in force.
pub struct JwksFile {
    path: PathBuf,
    algorithm: JwtAlgorithm,
    store: Arc<KeyStore>,
    loaded: Mutex<Option<Stamp>>,
}

impl JwksFile {
    pub fn new(path: PathBuf, algorithm: JwtAlgorithm, store: Arc<KeyStore>) -> Self {
        Self {
            path,
            algorithm,
            store,
            loaded: Mutex::new(None),
        }
    }

    /// Reads the file and puts its keys in force; on an error the keys in force stay. Returns how
    /// many keys it gave.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let before = stamp(&self.path).ok();
        let document = std::fs::read(&self.path)
            .with_context(|| format!("could not read {}", self.path.display()))?;
        let keys = keys::parse(&document, self.algorithm)
            .with_context(|| format!("{} gives no key", self.path.display()))?;
        let count = keys.len();
        self.store.replace(Source::File, keys);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = before;
        Ok(count)
    }

    /// Reloads when the file is not the version in force; `Ok(None)` when it is.
    pub fn reload_if_changed(&self) -> anyhow::Result<Option<usize>> {
        let now =
            stamp(&self.path).with_context(|| format!("could not read {}", self.path.display()))?;
        if self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            == Some(&now)
        {
            return Ok(None);
        }
        let result = self.reload().map(Some);
        if result.is_err() {
            // Warn once per version of the file, not once a second.
            *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        result
    }

    /// Polls the file until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(FILE_POLL) => {}
            }
            match self.reload_if_changed() {
                Ok(None) => {}
                Ok(Some(keys)) => tracing::info!(keys, path = %self.path.display(),
                    "JWKS file changed; its keys are in force."),
                Err(e) => tracing::warn!(error = format!("{e:#}"), path = %self.path.display(),
                    "JWKS file changed but gives no key; the keys in force stay."),
            }
        }
    }
}

/// `JWT_JWKS_URL`, fetched by one client.
pub struct JwksUrl {
    url: url::Url,
    algorithm: JwtAlgorithm,
    timeout: Duration,
    client: reqwest::Client,
    store: Arc<KeyStore>,
}

impl JwksUrl {
    pub fn new(
        url: url::Url,
        algorithm: JwtAlgorithm,
        timeout: Duration,
        store: Arc<KeyStore>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("could not build the JWKS HTTP client")?;
        Ok(Self {
            url,
            algorithm,
            timeout,
            client,
            store,
        })
    }

    /// Fetches the document (within the timeout) and puts its keys in force; on an error the
    /// keys in force stay. Returns how many keys it gave.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let document = tokio::time::timeout(self.timeout, self.fetch())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", self.timeout))??;
        let keys = keys::parse(&document, self.algorithm)?;
        let count = keys.len();
        self.store.replace(Source::Url, keys);
        Ok(count)
    }

    async fn fetch(&self) -> anyhow::Result<Vec<u8>> {
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await?
            .error_for_status()?;
        // Not followed (see the module's comment); error_for_status lets a 3xx through.
        if response.status().is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_string();
            anyhow::bail!(
                "answered {} (a redirect to {to:?}, not followed)",
                response.status()
            );
        }
        let mut document = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if document.len() + chunk.len() > MAX_DOCUMENT {
                anyhow::bail!("the document is over {MAX_DOCUMENT} bytes");
            }
            document.extend_from_slice(&chunk);
        }
        Ok(document)
    }

    /// Refreshes every `every` until `stop`; sooner while no fetch has given a key.
    pub async fn run(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            let wait = if self.store.count(Source::Url) == 0 {
                every.min(FIRST_KEYS_RETRY)
            } else {
                every
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let refreshed = tokio::select! {
                () = stop.cancelled() => return,
                refreshed = self.refresh() => refreshed,
            };
            match refreshed {
                Ok(keys) => tracing::debug!(keys, url = %self.url, "JWKS refreshed."),
                Err(e) => tracing::warn!(error = format!("{e:#}"), url = %self.url,
                    "JWKS fetch failed; the keys in force stay."),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_reparsed_only_when_it_changed() {
        let jwks = |kid: &str| {
            format!(r#"{{"keys":[{{"kty":"RSA","kid":"{kid}","n":"sXch","e":"AQAB"}}]}}"#)
        };
        let path = std::env::temp_dir().join(format!("firstcome-poll-{}.json", std::process::id()));
        std::fs::write(&path, jwks("k1")).expect("writes");
        let store = Arc::new(KeyStore::default());
        let file = JwksFile::new(path.clone(), JwtAlgorithm::Rs256, store.clone());
        assert_eq!(file.reload_if_changed().expect("loads"), Some(1));
        assert_eq!(file.reload_if_changed().expect("unchanged"), None);
        // Replaced as deployments do it (a new file renamed over the old: a new inode), with
        // the same length.
        let next = path.with_extension("next");
        std::fs::write(&next, jwks("k2")).expect("writes");
        std::fs::rename(&next, &path).expect("renames");
        assert_eq!(file.reload_if_changed().expect("reloads"), Some(1));
        assert!(store.with_key(Some("k2"), |_| ()).is_ok());
        assert!(store.with_key(Some("k1"), |_| ()).is_err());
        // A broken version warns once and keeps the keys.
        std::fs::write(&path, "{").expect("writes");
        assert!(file.reload_if_changed().is_err());
        assert_eq!(file.reload_if_changed().expect("already seen"), None);
        assert!(store.with_key(Some("k2"), |_| ()).is_ok());
        let _ = std::fs::remove_file(&path);
    }
}
