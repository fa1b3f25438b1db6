//! "Did you mean …?": the closest of a set of known names to a name that is not one of them.

/// The known name closest to `name`, if one is close enough to be what was meant (a typo: a
/// few letters off, relative to the name's length).
pub fn closest<'a, I>(name: &str, known: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (name.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .filter(|k| *k != name)
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, k)| (*d, *k))
        .map(|(_, k)| k)
}

/// `; did you mean `X`?` for a message, or nothing.
pub fn did_you_mean<'a, I>(name: &str, known: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    closest(name, known)
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["auto_approve", "dry_run", "verbose", "protected"];
        for (typo, want) in [
            ("auto_aprove", Some("auto_approve")),
            ("autoapprove", Some("auto_approve")),
            ("dryrun", Some("dry_run")),
            ("verbos", Some("verbose")),
            ("protectd", Some("protected")),
            ("colour", None),
            ("x", None),
        ] {
            assert_eq!(closest(typo, known), want, "{typo}");
        }
        assert_eq!(
            did_you_mean("helo", ["hello", "world"]),
            "; did you mean `hello`?"
        );
        assert_eq!(did_you_mean("zzz", ["hello"]), "");
    }
}
