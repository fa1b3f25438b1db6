//! Cost estimates: the steps' `fn cost()` priced by a local stand-in for the Azure Retail
//! Prices API (it answers `$filter` queries with API-shaped pages, one item a page, through
//! `NextPageLink`), `stepwise cost`, `plan --cost` and its delta, the cache, unknown prices,
//! and the budget.

use crate::support;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use support::{replace, repo, Project};

/// Every field the Retail Prices API documents for an item.
const ITEM_FIELDS: &[&str] = &[
    "currencyCode",
    "tierMinimumUnits",
    "retailPrice",
    "unitPrice",
    "armRegionName",
    "location",
    "effectiveStartDate",
    "meterId",
    "meterName",
    "productId",
    "skuId",
    "productName",
    "skuName",
    "serviceName",
    "serviceId",
    "serviceFamily",
    "unitOfMeasure",
    "type",
    "isPrimaryMeterRegion",
    "armSkuName",
];

/// A local Retail Prices API: `GET /api/retail/prices?currencyCode='USD'&$filter=...`.
struct PriceServer {
    port: u16,
    /// The query strings it answered.
    seen: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl PriceServer {
    fn start() -> PriceServer {
        use support::http::response;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let catalogue = catalogue();
        let (s, d) = (seen.clone(), down.clone());
        let port = Arc::new(std::sync::OnceLock::<u16>::new());
        let p = port.clone();
        let bound = support::http::serve(move |_, target| {
            if d.load(Ordering::SeqCst) {
                return response("503 Service Unavailable", "text/plain", b"");
            }
            let query = target
                .split_once('?')
                .map(|x| x.1)
                .unwrap_or("")
                .to_string();
            s.lock().unwrap().push(query.clone());
            let body = page(&catalogue, *p.get().unwrap(), &query).to_string();
            response("200 OK", "application/json", body.as_bytes())
        });
        port.set(bound).unwrap();
        PriceServer {
            port: bound,
            seen,
            down,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/retail/prices", self.port)
    }
}

/// The fixture's items with every documented field filled in.
fn catalogue() -> Vec<Value> {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/prices.json")).unwrap(),
    )
    .unwrap();
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut m = json!({
                "currencyCode": "USD", "tierMinimumUnits": 0.0,
                "location": "US East", "effectiveStartDate": "2024-01-01T00:00:00Z",
                "meterId": format!("00000000-0000-0000-0000-{i:012}"),
                "productId": format!("DZH318Z0{i:04}"), "skuId": format!("DZH318Z0{i:04}/0001"),
                "serviceId": "DZH3180HX10K", "serviceFamily": "Databases",
                "isPrimaryMeterRegion": true, "armSkuName": "",
            });
            for (k, v) in item.as_object().unwrap() {
                m[k] = v.clone();
            }
            m["unitPrice"] = m["retailPrice"].clone();
            m
        })
        .collect()
}

/// Items a page: one, so that every query matching several rows (a tiered meter, a price with
/// decoys of other types) is read through `NextPageLink`.
const PAGE: usize = 1;

/// One page of the items matching `$filter` (`field eq 'value'` joined by `and`; `priceType`
/// filters `type`), `PAGE` a page, with `NextPageLink` to the next.
fn page(catalogue: &[Value], port: u16, query: &str) -> Value {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let filter = get("$filter").unwrap_or_default();
    let skip: usize = get("$skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let conds: Vec<(String, String)> = filter
        .split(" and ")
        .filter_map(|c| {
            let (field, value) = c.split_once(" eq ")?;
            let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
            Some((field.trim().to_string(), value.replace("''", "'")))
        })
        .collect();
    let matching: Vec<&Value> = catalogue
        .iter()
        .filter(|item| {
            conds.iter().all(|(f, v)| {
                let field = if f == "priceType" { "type" } else { f.as_str() };
                item[field].as_str() == Some(v.as_str())
            })
        })
        .collect();
    let items: Vec<&Value> = matching.iter().skip(skip).take(PAGE).copied().collect();
    let next = (skip + PAGE < matching.len()).then(|| {
        let mut u = url::Url::parse(&format!("http://127.0.0.1:{port}/api/retail/prices")).unwrap();
        u.query_pairs_mut()
            .append_pair("currencyCode", &get("currencyCode").unwrap_or_default())
            .append_pair("$filter", &filter)
            .append_pair("$skip", &(skip + PAGE).to_string());
        u.to_string()
    });
    json!({
        "BillingCurrency": "USD",
        "CustomerEntityId": "Default",
        "CustomerEntityType": "Retail",
        "Items": items,
        "NextPageLink": next,
        "Count": items.len(),
    })
}

/// The DraftGenie project (the example config with test secrets) priced by `server`.
fn draftgenie(server: &PriceServer) -> Project {
    let p = support::draftgenie_project(&[
        ("gemini_api_key", "gem-cost-test-1"),
        ("jwt_secret", "jwt-cost-test-secret-1"),
        ("rabbitmq_password", "rabbit-cost-test-1"),
    ]);
    let cfg = p.read("config.yaml") + format!("\ncost:\n  prices_url: {}\n", server.url()).as_str();
    p.config(&cfg);
    p
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The DraftGenie estimate computed by hand from tests/fixtures/prices.json: step → monthly.
fn by_hand(pg_compute_hourly: f64) -> Vec<(&'static str, f64)> {
    let hours = 730.0;
    let seconds = hours * 3600.0;
    let (vcpu, mem) = (0.000024, 0.000003);
    // An app of `cpu` vCPU and `gib` GiB, one replica: its two items, each rounded.
    let app = |cpu: f64, gib: f64| cents(seconds * cpu * vcpu) + cents(seconds * gib * mem);
    vec![
        ("create_monitoring", cents((10.0 - 5.0) * 2.3)),
        ("create_container_registry", cents(0.1666 * hours / 24.0)),
        ("create_key_vault", cents(0.03)),
        (
            "create_databases",
            cents(cents(pg_compute_hourly * hours) + cents(32.0 * 0.115) + cents(0.022 * hours)),
        ),
        ("deploy_infrastructure_services", cents(2.0 * app(0.5, 1.0))),
        (
            "deploy_application_services",
            cents(4.0 * app(0.5, 1.0) + app(1.0, 2.0) - cents(180000.0 * vcpu + 360000.0 * mem)),
        ),
    ]
}

fn cost_json(p: &Project, args: &[&str]) -> Value {
    let r = p.run(args);
    r.assert_code(0);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.all()));
    doc["cost"].clone()
}

#[test]
fn the_draftgenie_estimate_is_each_step_priced_as_computed_by_hand() {
    let server = PriceServer::start();
    let p = draftgenie(&server);
    let cost = cost_json(&p, &["cost", "--output", "json"]);
    let want = by_hand(0.017);
    for (step, monthly) in &want {
        assert_eq!(
            cost["steps"][step]["monthly"],
            json!(monthly),
            "{step}: {cost:#}"
        );
    }
    let total = cents(want.iter().map(|(_, m)| m).sum());
    assert_eq!(cost["monthly_total"], json!(total));
    assert_eq!(cost["currency"], "USD");
    assert_eq!(cost["delta_monthly"], Value::Null, "nothing recorded yet");
    assert_eq!(cost["unknown"], json!([]), "{cost:#}");
    // Items carry their basis and assumptions.
    let pg = &cost["steps"]["create_databases"]["items"][0];
    assert_eq!(pg["what"], "PostgreSQL Standard_B1ms compute");
    assert_eq!(pg["unit_price"], json!(0.017));
    assert_eq!(pg["quantity"], json!(730.0));
    assert!(cost["steps"]["deploy_application_services"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["assumption"]
            .as_str()
            .is_some_and(|a| a.contains("180,000 vCPU-seconds"))));
    // The answers had the documented shape, and queries asked for consumption prices in the
    // currency; a query with more matches than a page was followed through NextPageLink.
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|q| q.contains("currencyCode=%27USD%27")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|q| q.contains("%24skip=1")),
        "no second page was asked for: {seen:?}"
    );
    for item in catalogue() {
        for f in ITEM_FIELDS {
            assert!(
                item.get(*f).is_some(),
                "the stand-in's item lacks {f}: {item}"
            );
        }
    }
    // The human form: per step, the total, the assumptions.
    let r = p.run(&["cost"]);
    r.assert_code(0)
        .assert_contains("Monthly cost estimate (USD):")
        .assert_contains(&format!("Total: {total:.2} USD/month"))
        .assert_contains("assumption: 1 replica(s) (min_replicas) active all month");
    // Markdown for a pull request.
    p.run(&["cost", "--output", "markdown"])
        .assert_code(0)
        .assert_contains(&format!("| **total** | | **{total:.2}** |"));
    assert!(p.az_calls().is_empty(), "an estimate runs no command");
}

#[test]
fn a_sku_change_shows_its_delta_against_the_last_deployment() {
    let server = PriceServer::start();
    let p = draftgenie(&server);
    let cfg = replace(
        &p.read("config.yaml"),
        "deployment:\n",
        "deployment:\n  show_cost: true\n",
    );
    p.config(&cfg);
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains("Monthly cost estimate (USD):");
    let state = p.state();
    assert_eq!(
        state["steps"]["create_databases"]["cost_monthly"],
        json!(by_hand(0.017)[3].1)
    );
    let report = std::fs::read_to_string(p.report_of(&r)).unwrap();
    assert!(
        report.contains("Estimated cost"),
        "the run report shows the estimate"
    );

    let mut cfg = p.read("config.yaml");
    cfg = replace(&cfg, "sku: Standard_B1ms", "sku: Standard_D2s_v3");
    cfg = replace(&cfg, "tier: Burstable", "tier: GeneralPurpose");
    p.config(&cfg);
    let before = cents(by_hand(0.017).iter().map(|(_, m)| m).sum());
    let after = cents(by_hand(0.178).iter().map(|(_, m)| m).sum());
    let delta = cents(after - before);
    assert_eq!(delta, cents(cents(0.178 * 730.0) - cents(0.017 * 730.0)));
    let plan = p.run(&["plan", "--cost", "--output", "json"]);
    plan.assert_code(0);
    let doc: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(doc["cost"]["monthly_total"], json!(after));
    assert_eq!(doc["cost"]["delta_monthly"], json!(delta));
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains(&format!("({delta:+.2} USD since the last deployment)"));
}

#[test]
fn cached_prices_stand_in_when_the_api_is_down_and_nothing_fails_without_a_budget() {
    let server = PriceServer::start();
    let p = draftgenie(&server);
    let first = cost_json(&p, &["cost", "--output", "json"]);
    let asked = server.seen.lock().unwrap().len();
    // Within 24 hours the cache answers: the API is not asked again.
    assert_eq!(cost_json(&p, &["cost", "--output", "json"]), first);
    assert_eq!(server.seen.lock().unwrap().len(), asked);
    // A day and an hour later, with the API down: the cached prices, with their age.
    for f in support::walk(&p.path().join(".stepwise/prices")) {
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let t = doc["fetched_at"].as_u64().unwrap();
        doc["fetched_at"] = json!(t - 25 * 3600);
        std::fs::write(&f, doc.to_string()).unwrap();
    }
    server.down.store(true, Ordering::SeqCst);
    let r = p.run(&["cost"]);
    r.assert_code(0)
        .assert_contains("prices API unreachable (HTTP 503")
        .assert_contains("using prices cached 1day 1h ago");
    let total = first["monthly_total"].as_f64().unwrap();
    r.assert_contains(&format!("Total: {total:.2} USD/month"));
    // No cache and no API: every item unknown, with the reason; still exit 0.
    std::fs::remove_dir_all(p.path().join(".stepwise/prices")).unwrap();
    let cost = cost_json(&p, &["cost", "--output", "json"]);
    assert_eq!(cost["monthly_total"], json!(0.0));
    let unknown = cost["unknown"].as_array().unwrap();
    assert!(unknown.len() >= 10, "{cost:#}");
    assert!(unknown[0]["reason"]
        .as_str()
        .unwrap()
        .contains("prices API unreachable and nothing cached"));
}

#[test]
fn an_unknown_sku_is_reported_unknown_and_an_ambiguous_query_names_the_candidates() {
    let server = PriceServer::start();
    let p = draftgenie(&server);
    let cfg = replace(&p.read("config.yaml"), "vm_size: c0", "vm_size: c9");
    p.config(&cfg);
    let cost = cost_json(&p, &["cost", "--output", "json"]);
    let unknown = cost["unknown"].as_array().unwrap();
    assert_eq!(unknown.len(), 1, "{cost:#}");
    assert_eq!(unknown[0]["step"], "create_databases");
    assert_eq!(unknown[0]["what"], "Redis Basic C9");
    assert!(unknown[0]["reason"]
        .as_str()
        .unwrap()
        .contains("no consumption price matches"));
    // The other items are still priced.
    assert!(
        cost["steps"]["create_databases"]["monthly"]
            .as_f64()
            .unwrap()
            > 16.0
    );

    // A query that matches several prices is an error naming them, reported as unknown.
    let mut p = Project::new();
    p.config(&format!("cost:\n  prices_url: {}\n", server.url()))
        .step(
            "01_cache.rhai",
            r#"let step = #{};
fn run() {}
fn cost() { [#{ what: "a cache", monthly: price(#{ service: "Redis Cache", meter: "C0 Cache" }).unit_price }] }
"#,
        )
        .step(
            "02_reads.rhai",
            r#"let step = #{};
fn run() {}
fn cost() { az(["vm", "list"]); [] }
"#,
        );
    p.local_state();
    let cost = cost_json(&p, &["cost", "--output", "json"]);
    let unknown = cost["unknown"].as_array().unwrap();
    let reason = |step: &str| {
        unknown
            .iter()
            .find(|u| u["step"] == step)
            .map(|u| u["reason"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(
        reason("cache").contains("is ambiguous: 2 prices match"),
        "{cost:#}"
    );
    assert!(
        reason("cache").contains("Azure Redis Cache Standard"),
        "{cost:#}"
    );
    assert!(
        reason("reads").contains("fn cost() is read-only: az() is refused"),
        "{cost:#}"
    );
    assert!(p.az_calls().is_empty());
}

#[test]
fn a_deployment_over_budget_is_refused_before_any_command_unless_allowed() {
    let server = PriceServer::start();
    let p = draftgenie(&server);
    let cfg = p
        .read("config.yaml")
        .replace("\ncost:\n", "\ncost:\n  budget_monthly: 100\n");
    p.config(&cfg);
    let total = cents(by_hand(0.017).iter().map(|(_, m)| m).sum());
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains(&format!(
            "the monthly estimate {total:.2} USD exceeds the budget 100.00 USD"
        ))
        .assert_contains("most from: deploy_application_services")
        .assert_contains("--allow-over-budget");
    assert!(p.az_calls().is_empty(), "refused before any az call");
    assert!(p.docker_calls().is_empty());
    // plan says the deployment would be refused.
    p.run(&["plan"])
        .assert_code(1)
        .assert_contains("a deployment would be refused");
    // Prices unknown while a budget is set (no API, nothing cached): refused too.
    server.down.store(true, Ordering::SeqCst);
    std::fs::remove_dir_all(p.path().join(".stepwise/prices")).unwrap();
    p.deploy(&[])
        .assert_code(1)
        .assert_contains("could not be priced");
    server.down.store(false, Ordering::SeqCst);
    // Allowed: it deploys, warning.
    let r = p.deploy(&["--allow-over-budget"]);
    r.assert_code(0)
        .assert_contains("going on (--allow-over-budget)");
    assert!(!p.az_calls().is_empty());
}
