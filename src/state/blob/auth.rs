//! How the blob store authenticates (`AZURE_STORAGE_CONNECTION_STRING`'s fields, for
//! messages: account key or something else) and creating a missing container, which needs the
//! account key (a SharedKey-signed REST call).

use crate::util::error::{Kind, OrFail};
use anyhow::Result;

/// `AZURE_STORAGE_CONNECTION_STRING`'s fields.
#[derive(Debug, Default, Clone)]
pub(super) struct ConnectionString {
    pub(super) account: Option<String>,
    pub(super) key: Option<String>,
    pub(super) blob_endpoint: Option<String>,
    pub(super) sas: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) suffix: Option<String>,
}

impl ConnectionString {
    pub(super) fn parse(text: &str) -> ConnectionString {
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
pub(super) enum Auth {
    SharedKey { key: String, endpoint: String },
    Other(&'static str),
}

pub(super) fn percent_decode(s: &str) -> String {
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
pub(super) async fn create_container(
    endpoint: &str,
    account: &str,
    container: &str,
    key: &str,
) -> Result<()> {
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
        .or_fail(Kind::Config, || format!("bad endpoint {endpoint}"))?
        .path()
        .to_string();
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}{url_path}\nrestype:container"
    );
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| Kind::Config.error("the storage account key is not valid base64"))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key_bytes)
        .or_fail(Kind::Config, || "bad account key".to_string())?;
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
        .or_fail(Kind::Storage, || {
            format!("cannot create container {container}")
        })?;
    let status = resp.status();
    if status.is_success() || status.as_u16() == 409 {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(Kind::Storage.error(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

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
