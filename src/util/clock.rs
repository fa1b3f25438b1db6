//! The clock: timestamps as stepwise writes them.

/// The current time as RFC 3339 (UTC).
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The current UTC time as a compact, sortable stamp: `20261126T113149Z`, or with
/// nanoseconds `20261126T113149.123456789Z`.
pub fn compact_now(nanos: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let frac = if nanos {
        format!(".{:09}", now.nanosecond())
    } else {
        String::new()
    };
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}{frac}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
