//! `price(#{ service, product, sku, meter, region, unit })`: a consumption price from the
//! Azure Retail Prices API, in `fn cost()` only.

use super::context::{current, err, HostResult};
use crate::sys::prices::{describe, Lookup, PriceQuery};
use rhai::{Dynamic, Map};

/// The matching price as `#{ unit_price, unit, currency, product, sku, meter }`, or `()` when
/// there is none (the reason is kept: an item priced with it is reported `unknown` with it).
/// Several distinct matches are an error naming them.
pub(super) fn price(query: Map) -> HostResult<Dynamic> {
    let ctx = current("price")?;
    let Some(cost) = &ctx.cost else {
        return Err(err("price() is only available in fn cost()"));
    };
    let q = query_of(&query)?;
    match cost.prices.lookup(&q).map_err(|e| err(e.to_string()))? {
        Lookup::Found(p) => {
            let mut m = Map::new();
            m.insert("unit_price".into(), Dynamic::from_float(p.unit_price));
            m.insert("unit".into(), p.unit.into());
            m.insert("currency".into(), p.currency.into());
            m.insert("product".into(), p.product.into());
            m.insert("sku".into(), p.sku.into());
            m.insert("meter".into(), p.meter.into());
            let tiers: rhai::Array = p
                .tiers
                .iter()
                .map(|(from, price)| {
                    let mut t = Map::new();
                    t.insert("from".into(), Dynamic::from_float(*from));
                    t.insert("unit_price".into(), Dynamic::from_float(*price));
                    Dynamic::from_map(t)
                })
                .collect();
            m.insert("tiers".into(), tiers.into());
            Ok(m.into())
        }
        Lookup::Unknown(reason) => {
            cost.misses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{}: {reason}", describe(&q)));
            Ok(Dynamic::UNIT)
        }
    }
}

fn query_of(m: &Map) -> HostResult<PriceQuery> {
    let known = ["service", "product", "sku", "meter", "region", "unit"];
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(err(format!(
            "price(): unknown key `{k}` (keys: {})",
            known.join(", ")
        )));
    }
    let get = |k: &str| m.get(k).filter(|v| !v.is_unit()).map(|v| v.to_string());
    Ok(PriceQuery {
        service: get("service"),
        product: get("product"),
        sku: get("sku"),
        meter: get("meter"),
        region: get("region"),
        unit: get("unit"),
    })
}
