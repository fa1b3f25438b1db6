//! What a deployment will cost: the steps' `fn cost()` priced (`run::cost`), the change since
//! the estimate recorded at the last successful deployment of this environment, the budget
//! check that refuses a deployment before any command runs, and how the estimate is shown
//! (console, JSON, Markdown).

use crate::app::deploy::{with_runner, RunSetup};
use crate::app::options::DeployOptions;
use crate::app::project::Project;
use crate::run::cost::{round2, Estimate, StepCost, Unknown};
use crate::state::{State, StateStore};
use crate::sys::prices::Prices;
use crate::util::console::Console;
use crate::util::error::Kind;
use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where `record` keeps a step's estimate in its state record, and the state's currency.
const STEP_KEY: &str = "cost_monthly";
const CURRENCY_KEY: &str = "cost_currency";

/// The estimate as shown and as `--output json` gives it (`cost`).
#[derive(Debug, Clone, Serialize)]
pub struct CostDoc {
    pub currency: String,
    pub monthly_total: f64,
    /// Against the estimate recorded at the last successful deployment (`null`: none).
    pub delta_monthly: Option<f64>,
    pub steps: BTreeMap<String, StepCost>,
    pub unknown: Vec<Unknown>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Prices every step's `fn cost()` against `state` (for `outputs`), with the project's price
/// source (`cost.prices_url`, `cost.currency`; answers cached in `.stepwise/prices/`).
pub fn estimate(p: &Project, d: &DeployOptions, store: &dyn StateStore, state: &State) -> CostDoc {
    let settings = &p.config.settings.cost;
    let prices = Arc::new(Prices::new(
        &settings.prices_url,
        &settings.currency,
        std::path::Path::new(".stepwise/prices"),
    ));
    let setup = RunSetup {
        dry_run: true,
        ..RunSetup::default()
    };
    let est = with_runner(p, d, store, setup, state.salt(), |r| {
        crate::run::cost::estimate(r, state, prices)
    });
    doc(&est, state, &settings.currency)
}

/// The document of an estimate, with its change against what `state` recorded.
pub fn doc(est: &Estimate, state: &State, currency: &str) -> CostDoc {
    let same_currency = state.extra.get(CURRENCY_KEY).and_then(Value::as_str) == Some(currency);
    let recorded: Vec<f64> = state
        .steps
        .values()
        .filter_map(|r| r.extra.get(STEP_KEY).and_then(Value::as_f64))
        .collect();
    let total = est.monthly_total();
    CostDoc {
        currency: currency.to_string(),
        monthly_total: total,
        delta_monthly: (same_currency && !recorded.is_empty())
            .then(|| round2(total - recorded.iter().sum::<f64>())),
        steps: est.steps.clone(),
        unknown: est.unknown.clone(),
        warnings: est.warnings.clone(),
    }
}

/// Keeps each step's estimate in its state record (after a successful deployment), so that
/// the next estimate shows its change.
pub fn record(store: &dyn StateStore, doc: &CostDoc) -> Result<()> {
    let mut state = store.load()?;
    for (name, rec) in state.steps.iter_mut() {
        match doc.steps.get(name) {
            Some(c) => rec.extra.insert(STEP_KEY.into(), c.monthly.into()),
            None => rec.extra.remove(STEP_KEY),
        };
    }
    state
        .extra
        .insert(CURRENCY_KEY.into(), Value::String(doc.currency.clone()));
    store.save(&state)
}

/// Refuses (exit 1) a deployment whose estimate exceeds `cost.budget_monthly`, or whose
/// prices are unknown while a budget is set, unless `--allow-over-budget`.
pub fn check_budget(p: &Project, d: &DeployOptions, doc: &CostDoc) -> Result<()> {
    let Some(budget) = p.config.settings.cost.budget_monthly else {
        return Ok(());
    };
    let c = &doc.currency;
    let problem = if doc.monthly_total > budget {
        let mut top: Vec<(&String, &StepCost)> = doc.steps.iter().collect();
        top.sort_by(|a, b| b.1.monthly.total_cmp(&a.1.monthly));
        let most: Vec<String> = top
            .iter()
            .take(3)
            .map(|(n, s)| format!("{n} {:.2}", s.monthly))
            .collect();
        format!(
            "the monthly estimate {:.2} {c} exceeds the budget {budget:.2} {c} (cost.budget_monthly); most from: {}",
            doc.monthly_total,
            most.join(", ")
        )
    } else if !doc.unknown.is_empty() {
        let what: Vec<String> = doc
            .unknown
            .iter()
            .map(|u| format!("{} ({})", u.what, u.step))
            .collect();
        format!(
            "a budget is set (cost.budget_monthly: {budget:.2} {c}) but these could not be priced: {}",
            what.join(", ")
        )
    } else {
        return Ok(());
    };
    if d.allow_over_budget {
        p.console
            .warn(&format!("{problem}; going on (--allow-over-budget)"));
        return Ok(());
    }
    Err(Kind::Refused.error(format!(
        "{problem}. Nothing ran; pass --allow-over-budget to deploy anyway"
    )))
}

/// The estimate on the console: each step's items (with assumptions), the total and its
/// change, what could not be priced.
pub fn print(console: &Console, doc: &CostDoc) {
    let c = &doc.currency;
    console.line(&format!("Monthly cost estimate ({c}):"));
    for (name, s) in &doc.steps {
        console.line(&format!("  {name}: {:.2}", s.monthly));
        for i in &s.items {
            let basis = match (i.quantity, &i.unit, i.unit_price) {
                (Some(q), Some(u), Some(p)) => format!(" ({q} × {p} per {u})"),
                _ => String::new(),
            };
            console.line(&format!("    {:>10.2}  {}{basis}", i.monthly, i.what));
            if let Some(a) = &i.assumption {
                console.line(&format!("                assumption: {a}"));
            }
        }
    }
    console.line(&format!(
        "  Total: {:.2} {c}/month{}",
        doc.monthly_total,
        delta_text(doc.delta_monthly, c)
    ));
    for u in &doc.unknown {
        console.warn(&format!(
            "cost unknown: {} ({}): {}",
            u.what, u.step, u.reason
        ));
    }
    for w in &doc.warnings {
        console.warn(w);
    }
}

/// ` (+12.50 USD since the last deployment)`, or nothing without a recorded estimate.
pub fn delta_text(delta: Option<f64>, c: &str) -> String {
    match delta {
        Some(d) => format!(" ({d:+.2} {c} since the last deployment)"),
        None => " (no estimate recorded at a deployment yet)".to_string(),
    }
}

/// The estimate as a Markdown table (for pull-request summaries).
pub fn markdown(doc: &CostDoc) -> String {
    let c = &doc.currency;
    let mut out = format!(
        "### stepwise cost: {:.2} {c}/month{}\n\n| step | item | monthly ({c}) |\n|---|---|---:|\n",
        doc.monthly_total,
        delta_text(doc.delta_monthly, c)
    );
    for (name, s) in &doc.steps {
        for i in &s.items {
            out.push_str(&format!(
                "| `{name}` | {} | {:.2} |\n",
                crate::present::markdown::cell(&i.what),
                i.monthly
            ));
        }
    }
    out.push_str(&format!("| **total** | | **{:.2}** |\n", doc.monthly_total));
    for u in &doc.unknown {
        out.push_str(&format!(
            "\n- unknown: `{}` {}: {}",
            u.step,
            crate::present::markdown::cell(&u.what),
            crate::present::markdown::cell(&u.reason)
        ));
    }
    out.push('\n');
    out
}
