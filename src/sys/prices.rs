//! Prices from the Azure Retail Prices API (`GET {prices_url}?currencyCode='USD'&$filter=...`,
//! no authentication; results in `Items`, further pages through `NextPageLink`). Each distinct
//! query's items are kept in `.stepwise/prices/` for 24 hours, and used (with a warning naming
//! their age) when the API cannot be reached.

use anyhow::{anyhow, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a cached answer is used without asking again.
pub const FRESH_FOR: Duration = Duration::from_secs(24 * 3600);
/// At most this many pages are followed for one query (1,000 items each).
const MAX_PAGES: usize = 20;

/// What a step asks for: the API's names (`serviceName`, `productName`, `skuName`,
/// `meterName`, `armRegionName`) and the unit of measure it expects (matched after the query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceQuery {
    pub service: Option<String>,
    pub product: Option<String>,
    pub sku: Option<String>,
    pub meter: Option<String>,
    pub region: Option<String>,
    pub unit: Option<String>,
}

/// A consumption price.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub unit_price: f64,
    pub unit: String,
    pub currency: String,
    pub product: String,
    pub sku: String,
    pub meter: String,
    /// A tiered meter's tiers (`(from units, unit price)`, ascending; `unit_price` is the
    /// first's), e.g. Log Analytics' free first 5 GB; empty when not tiered.
    pub tiers: Vec<(f64, f64)>,
}

/// The answer to a query: one price, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Price),
    Unknown(String),
}

/// The price source of one command: the API, its cache, what it warned about.
pub struct Prices {
    base_url: String,
    currency: String,
    cache_dir: PathBuf,
    /// Items per query URL, fetched or read once per command.
    memo: Mutex<HashMap<String, std::result::Result<Vec<Value>, String>>>,
    /// Warnings (a stale cache used), each once.
    pub warnings: Mutex<Vec<String>>,
}

impl Prices {
    pub fn new(base_url: &str, currency: &str, cache_dir: &Path) -> Prices {
        Prices {
            base_url: base_url.trim_end_matches('?').to_string(),
            currency: currency.to_string(),
            cache_dir: cache_dir.to_path_buf(),
            memo: Mutex::new(HashMap::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The price matching `q`: exactly one consumption price (several distinct ones are an
    /// error naming them; none is `Unknown` with the reason).
    pub fn lookup(&self, q: &PriceQuery) -> Result<Lookup> {
        let filter = odata_filter(q)?;
        let url = self.query_url(&filter);
        let items = match self.items(&url) {
            Ok(items) => items,
            Err(e) => return Ok(Lookup::Unknown(e)),
        };
        choose(&items, q, &self.currency)
    }

    fn query_url(&self, filter: &str) -> String {
        let mut url = url::Url::parse(&self.base_url)
            .unwrap_or_else(|_| url::Url::parse("http://invalid.invalid/").unwrap());
        url.query_pairs_mut()
            .append_pair("currencyCode", &format!("'{}'", self.currency))
            .append_pair("$filter", filter);
        url.to_string()
    }

    /// The items of a query: from this command's memo, a fresh cache entry, the API, or (API
    /// unreachable) a stale cache entry with a warning.
    fn items(&self, url: &str) -> std::result::Result<Vec<Value>, String> {
        if let Some(hit) = self.memo.lock().unwrap_or_else(|e| e.into_inner()).get(url) {
            return hit.clone();
        }
        let got = self.items_uncached(url);
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.to_string(), got.clone());
        got
    }

    fn items_uncached(&self, url: &str) -> std::result::Result<Vec<Value>, String> {
        let cached = self.read_cache(url);
        if let Some((items, age)) = &cached {
            if *age < FRESH_FOR {
                return Ok(items.clone());
            }
        }
        match fetch_all(url) {
            Ok(items) => {
                self.write_cache(url, &items);
                Ok(items)
            }
            Err(e) => match cached {
                Some((items, age)) => {
                    self.warn(format!(
                        "prices API unreachable ({e}): using prices cached {} ago",
                        humantime::format_duration(Duration::from_secs(age.as_secs() / 60 * 60))
                    ));
                    Ok(items)
                }
                None => Err(format!("prices API unreachable and nothing cached: {e}")),
            },
        }
    }

    fn warn(&self, w: String) {
        let mut ws = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !ws.contains(&w) {
            ws.push(w);
        }
    }

    fn cache_path(&self, url: &str) -> PathBuf {
        self.cache_dir.join(format!(
            "{}.json",
            crate::util::digest::sha256_hex(url.as_bytes())
        ))
    }

    /// A cached answer and its age.
    fn read_cache(&self, url: &str) -> Option<(Vec<Value>, Duration)> {
        let text = std::fs::read_to_string(self.cache_path(url)).ok()?;
        let doc: Value = serde_json::from_str(&text).ok()?;
        if doc.get("url").and_then(Value::as_str) != Some(url) {
            return None;
        }
        let fetched = doc.get("fetched_at").and_then(Value::as_u64)?;
        let items = doc.get("items")?.as_array()?.clone();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some((items, Duration::from_secs(now.saturating_sub(fetched))))
    }

    /// Keeps an answer (a failure to write is not an error: the next command asks again).
    fn write_cache(&self, url: &str, items: &[Value]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let doc = serde_json::json!({ "url": url, "fetched_at": now, "items": items });
        if crate::util::fs::create_private_dir(&self.cache_dir).is_ok() {
            let _ = crate::util::fs::write_replace(
                &self.cache_path(url),
                doc.to_string().as_bytes(),
                false,
            );
        }
    }
}

/// `serviceName eq '…' and …`, with `priceType eq 'Consumption'` (values quoted, `'` doubled).
pub fn odata_filter(q: &PriceQuery) -> Result<String> {
    let fields = [
        ("serviceName", &q.service),
        ("productName", &q.product),
        ("skuName", &q.sku),
        ("meterName", &q.meter),
        ("armRegionName", &q.region),
    ];
    let mut parts: Vec<String> = fields
        .iter()
        .filter_map(|(f, v)| {
            v.as_ref()
                .map(|v| format!("{f} eq '{}'", v.replace('\'', "''")))
        })
        .collect();
    if parts.is_empty() {
        return Err(anyhow!(
            "price() needs at least one of service, product, sku, meter, region"
        ));
    }
    parts.push("priceType eq 'Consumption'".into());
    Ok(parts.join(" and "))
}

/// The one consumption price among `items` that matches `q` (its unit, when given); a tiered
/// meter's rows make one price with its tiers.
pub fn choose(items: &[Value], q: &PriceQuery, currency: &str) -> Result<Lookup> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut found: Vec<Price> = Vec::new();
    for item in items {
        let consumption = s(item, "type") == "Consumption" || s(item, "priceType") == "Consumption";
        let from = item
            .get("tierMinimumUnits")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let unit = s(item, "unitOfMeasure");
        let unit_ok = q
            .unit
            .as_deref()
            .is_none_or(|u| u.eq_ignore_ascii_case(&unit));
        let Some(price) = item.get("retailPrice").and_then(Value::as_f64) else {
            continue;
        };
        if !(consumption && unit_ok) {
            continue;
        }
        let p = Price {
            unit_price: price,
            unit,
            currency: Some(s(item, "currencyCode"))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| currency.to_string()),
            product: s(item, "productName"),
            sku: s(item, "skuName"),
            meter: s(item, "meterName"),
            tiers: vec![(from, price)],
        };
        let same_meter = |f: &Price| {
            (&f.product, &f.sku, &f.meter, &f.unit, &f.currency)
                == (&p.product, &p.sku, &p.meter, &p.unit, &p.currency)
        };
        match found.iter_mut().find(|f| same_meter(f)) {
            Some(f) if !f.tiers.iter().any(|t| t.0 == from) => f.tiers.push((from, price)),
            Some(_) => {}
            None => found.push(p),
        }
    }
    for f in &mut found {
        f.tiers.sort_by(|a, b| a.0.total_cmp(&b.0));
        f.unit_price = f.tiers[0].1;
        if f.tiers.len() == 1 {
            f.tiers.clear();
        }
    }
    match found.len() {
        0 => Ok(Lookup::Unknown(format!(
            "no consumption price matches {}",
            describe(q)
        ))),
        1 => Ok(Lookup::Found(found.remove(0))),
        n => {
            let names: Vec<String> = found
                .iter()
                .take(8)
                .map(|p| {
                    format!(
                        "{} / {} / {} ({} per {})",
                        p.product, p.sku, p.meter, p.unit_price, p.unit
                    )
                })
                .collect();
            Err(anyhow!(
                "price({}) is ambiguous: {n} prices match: {}; name the product, sku, meter or unit",
                describe(q),
                names.join("; ")
            ))
        }
    }
}

/// The query as the step wrote it, for messages.
pub fn describe(q: &PriceQuery) -> String {
    let fields = [
        ("service", &q.service),
        ("product", &q.product),
        ("sku", &q.sku),
        ("meter", &q.meter),
        ("region", &q.region),
        ("unit", &q.unit),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(f, v)| v.as_ref().map(|v| format!("{f}: {v:?}")))
        .collect();
    format!("#{{ {} }}", parts.join(", "))
}

/// Every page of a query (`Items`, then `NextPageLink` until none).
fn fetch_all(url: &str) -> std::result::Result<Vec<Value>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("stepwise/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let mut items = Vec::new();
        let mut next = Some(url.to_string());
        let mut pages = 0;
        while let Some(page) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(format!("more than {MAX_PAGES} pages: narrow the query"));
            }
            let resp = client.get(&page).send().await.map_err(|e| e.to_string())?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            let body = resp.bytes().await.map_err(|e| e.to_string())?;
            let doc: Value =
                serde_json::from_slice(&body).map_err(|e| format!("not a prices answer: {e}"))?;
            let Some(page_items) = doc.get("Items").and_then(Value::as_array) else {
                return Err("not a prices answer: no Items".into());
            };
            items.extend(page_items.iter().cloned());
            next = doc
                .get("NextPageLink")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
        Ok(items)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(product: &str, unit: Option<&str>) -> PriceQuery {
        PriceQuery {
            service: Some("Redis Cache".into()),
            product: Some(product.into()),
            unit: unit.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn the_filter_quotes_values_and_asks_for_consumption_prices() {
        let f = odata_filter(&PriceQuery {
            service: Some("Azure Database for PostgreSQL".into()),
            sku: Some("B1ms".into()),
            meter: Some("O'Brien".into()),
            region: Some("eastus".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f,
            "serviceName eq 'Azure Database for PostgreSQL' and skuName eq 'B1ms' and meterName eq 'O''Brien' and armRegionName eq 'eastus' and priceType eq 'Consumption'"
        );
        assert!(odata_filter(&PriceQuery::default()).is_err());
    }

    #[test]
    fn one_price_is_chosen_by_type_tier_and_unit_and_several_are_ambiguous() {
        let item = |meter: &str, price: f64, unit: &str, kind: &str, tier: f64| {
            json!({ "type": kind, "tierMinimumUnits": tier, "retailPrice": price,
                    "unitOfMeasure": unit, "currencyCode": "USD", "productName": "P",
                    "skuName": "S", "meterName": meter })
        };
        let items = [
            item("C0 Cache", 0.022, "1 Hour", "Consumption", 0.0),
            item("C0 Cache", 0.011, "1 Hour", "Reservation", 0.0),
            item("C0 Cache", 0.020, "1 Hour", "Consumption", 100.0),
            item("Data", 0.5, "1 GB", "Consumption", 0.0),
        ];
        // (the unit asked for, the price chosen: none found, or an error)
        type Want = Result<Option<f64>, ()>;
        let table: Vec<(Option<&str>, Want)> = vec![
            (Some("1 Hour"), Ok(Some(0.022))),
            (Some("1 hour"), Ok(Some(0.022))),
            (Some("1/Month"), Ok(None)),
            (None, Err(())),
        ];
        for (unit, want) in table {
            let got = choose(&items, &q("P", unit), "USD");
            match (got, want) {
                (Ok(Lookup::Found(p)), Ok(Some(w))) => assert_eq!(p.unit_price, w, "{unit:?}"),
                (Ok(Lookup::Unknown(_)), Ok(None)) => {}
                (Err(e), Err(())) => assert!(e.to_string().contains("ambiguous: 2 prices")),
                (got, want) => panic!("{unit:?}: {got:?} vs {want:?}"),
            }
        }
    }
}
