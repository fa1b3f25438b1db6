//! Cost estimates: each step's read-only `fn cost()` evaluated with prices (`price()`), its
//! items summed per step; what could not be priced is reported `unknown`, never an error.

use crate::decide::script;
use crate::run::executor::Runner;
use crate::run::host::{self, CostContext};
use crate::state::State;
use crate::sys::prices::Prices;
use rhai::Dynamic;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One line of a step's estimate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Item {
    pub what: String,
    pub monthly: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assumption: Option<String>,
}

/// A step's estimate: the sum of its priced items.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepCost {
    pub monthly: f64,
    pub items: Vec<Item>,
}

/// What could not be priced, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unknown {
    pub step: String,
    pub what: String,
    pub reason: String,
}

/// The estimate of every step with `fn cost()`.
#[derive(Debug, Clone, Default)]
pub struct Estimate {
    pub steps: BTreeMap<String, StepCost>,
    pub unknown: Vec<Unknown>,
    /// Warnings of the price source (a stale cache used).
    pub warnings: Vec<String>,
}

impl Estimate {
    pub fn monthly_total(&self) -> f64 {
        round2(self.steps.values().map(|s| s.monthly).sum())
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Evaluates the `fn cost()` of every step, in order, against `state` (for `outputs`).
pub fn estimate(runner: &Runner, state: &State, prices: Arc<Prices>) -> Estimate {
    let mut out = Estimate::default();
    let state = Arc::new(Mutex::new(state.clone()));
    for (i, step) in runner.steps.steps.iter().enumerate() {
        if !step.has_cost {
            continue;
        }
        let mut ctx = runner.context(i, false, state.clone(), "", None, true);
        Arc::get_mut(&mut ctx)
            .expect("a context just made has one owner")
            .cost = Some(CostContext {
            prices: prices.clone(),
            misses: Mutex::new(Vec::new()),
        });
        let result = host::with_context(ctx.clone(), || {
            script::call_fn(runner.engine, &step.ast, "cost")
        });
        let missed = ctx
            .cost
            .as_ref()
            .map(|c| c.misses.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        match result {
            Ok(v) => {
                let (cost, unknown) = items_of(&step.name, v, &missed);
                out.unknown.extend(unknown);
                out.steps.insert(step.name.clone(), cost);
            }
            Err(e) => out.unknown.push(Unknown {
                step: step.name.clone(),
                what: "fn cost()".into(),
                reason: runner.masker.mask(&script::runtime_error(&step.file, &e)),
            }),
        }
    }
    out.warnings = prices
        .warnings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    out
}

/// A `cost()` result (an array of maps; `()` means nothing) as priced items and unknowns.
fn items_of(step: &str, v: Dynamic, missed: &[String]) -> (StepCost, Vec<Unknown>) {
    let mut cost = StepCost {
        monthly: 0.0,
        items: Vec::new(),
    };
    let mut unknown = Vec::new();
    let list: Vec<Dynamic> = if v.is_unit() {
        Vec::new()
    } else if v.is_array() {
        v.cast::<rhai::Array>()
    } else {
        vec![v]
    };
    // Items without an amount, in order: paired with the prices not found, in order, when
    // there are as many (one price per item, the usual shape); else each gets them all.
    let unpriced = list
        .iter()
        .filter(|e| {
            (*e).clone()
                .try_cast::<rhai::Map>()
                .is_some_and(|m| m.get("monthly").is_none_or(|x| x.is_unit()))
        })
        .count();
    let mut nth_unpriced = 0;
    for entry in list {
        let Some(m) = entry.clone().try_cast::<rhai::Map>() else {
            unknown.push(Unknown {
                step: step.into(),
                what: entry.to_string(),
                reason: "fn cost() returns a list of #{ what: ..., monthly: ... } maps".into(),
            });
            continue;
        };
        let text = |k: &str| m.get(k).filter(|x| !x.is_unit()).map(|x| x.to_string());
        let num = |k: &str| {
            m.get(k).and_then(|x| {
                x.as_float()
                    .ok()
                    .or_else(|| x.as_int().ok().map(|i| i as f64))
            })
        };
        let what = text("what").unwrap_or_else(|| "(unnamed item)".into());
        match num("monthly") {
            Some(monthly) if monthly.is_finite() => {
                cost.items.push(Item {
                    what,
                    monthly: round2(monthly),
                    quantity: num("quantity"),
                    unit: text("unit"),
                    unit_price: num("unit_price"),
                    assumption: text("assumption"),
                });
            }
            _ => unknown.push(Unknown {
                step: step.into(),
                what,
                reason: text("reason").unwrap_or_else(|| {
                    nth_unpriced += 1;
                    match missed.len() {
                        0 => "no monthly amount".into(),
                        n if n == unpriced => missed[nth_unpriced - 1].clone(),
                        _ => missed.join("; "),
                    }
                }),
            }),
        }
    }
    cost.monthly = round2(cost.items.iter().map(|i| i.monthly).sum());
    (cost, unknown)
}
