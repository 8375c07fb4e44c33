//! Image tags: what a tag may be and how many an image may carry, the same for every
//! front-end (CLI, HTTP, MCP).

use super::request::Invalid;

/// Most tags one image carries.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;

/// Normalises tags to add (trimmed, lower-cased, duplicates removed) and checks each: 1 to
/// [`MAX_TAG_CHARS`] letters, digits, `-`, `_` or `:` (so no space or control character).
/// More than [`MAX_TAGS`] are refused before any is looked at.
pub fn normalise(tags: &[String]) -> Result<Vec<String>, Invalid> {
    if tags.is_empty() {
        return Err(Invalid::Other("give at least one tag".into()));
    }
    if tags.len() > MAX_TAGS {
        return Err(Invalid::Other(format!(
            "{} tags given: an image carries at most {MAX_TAGS}",
            tags.len()
        )));
    }
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim().to_lowercase();
        let n = t.chars().count();
        let ok = (1..=MAX_TAG_CHARS).contains(&n)
            && t.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ':'));
        if !ok {
            // Shown escaped and cut short: a tag may be long or hold control characters.
            let shown: String = t.chars().take(MAX_TAG_CHARS).collect();
            let cut = if n > MAX_TAG_CHARS { "…" } else { "" };
            return Err(Invalid::Other(format!(
                "invalid tag {shown:?}{cut} ({n} characters): use 1 to {MAX_TAG_CHARS} letters, \
                 digits, '-', '_' or ':'"
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The tags an image has once `new` (already normalised) is added to `current`, sorted;
/// refused when there would be more than [`MAX_TAGS`].
pub fn merged(current: &[String], new: &[String]) -> Result<Vec<String>, Invalid> {
    let mut all: Vec<String> = current.iter().chain(new).cloned().collect();
    all.sort();
    all.dedup();
    if all.len() > MAX_TAGS {
        return Err(too_many(all.len()));
    }
    Ok(all)
}

fn too_many(n: usize) -> Invalid {
    Invalid::Other(format!(
        "an image carries at most {MAX_TAGS} tags; this would make {n}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tags_are_normalised_and_checked() {
        assert_eq!(
            normalise(&strings(&[" Cover ", "keep", "COVER"])).unwrap(),
            ["cover", "keep"]
        );
        assert!(normalise(&[]).is_err());
        let longest = "é".repeat(MAX_TAG_CHARS);
        assert!(normalise(std::slice::from_ref(&longest)).is_ok());
        for bad in [
            "",
            "two words",
            "bell\u{7}",
            "tab\there",
            "new\nline",
            &"x".repeat(MAX_TAG_CHARS + 1),
        ] {
            let e = normalise(&strings(&[bad])).unwrap_err().to_string();
            assert!(e.contains("invalid tag"), "{bad:?}: {e}");
        }
        let e = normalise(&strings(&["a\u{1b}[31m"]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\u{1b}'), "control characters are escaped: {e}");
    }

    #[test]
    fn an_image_carries_at_most_max_tags() {
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(
            normalise(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 32")
        );
        let current: Vec<String> = many[..MAX_TAGS - 1].to_vec();
        let one = merged(&current, &many[MAX_TAGS - 1..MAX_TAGS]).unwrap();
        assert_eq!(one.len(), MAX_TAGS);
        assert!(merged(&one, &many[MAX_TAGS..]).is_err());
        // Tags already there do not count twice.
        assert_eq!(merged(&one, &one[..3]).unwrap().len(), MAX_TAGS);
    }
}
