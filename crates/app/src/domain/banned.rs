//! Banned words: what an operator refuses to send to any provider, matched as whole words
//! (or whole phrases) whatever their case, so "ass" never refuses "class".

/// The banned words or phrases found in `text`, as configured, in the list's order.
pub fn found<'a>(text: &str, banned: &'a [String]) -> Vec<&'a str> {
    let words = tokens(text);
    banned
        .iter()
        .filter(|phrase| {
            let phrase = tokens(phrase);
            !phrase.is_empty() && words.windows(phrase.len()).any(|w| w == phrase.as_slice())
        })
        .map(String::as_str)
        .collect()
}

/// Refuses a request whose prompt or negative prompt holds a banned word, naming them all.
pub fn check(request: &super::GenerationRequest, banned: &[String]) -> Result<(), super::Invalid> {
    let mut hits: Vec<&str> = Vec::new();
    let texts = [
        Some(request.prompt.as_str()),
        request.negative_prompt.as_deref(),
    ];
    for text in texts.into_iter().flatten() {
        for word in found(text, banned) {
            if !hits.contains(&word) {
                hits.push(word);
            }
        }
    }
    if hits.is_empty() {
        Ok(())
    } else {
        Err(super::Invalid::Other(format!(
            "the prompt contains words this server refuses: {}",
            hits.join(", ")
        )))
    }
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::found;

    fn list(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn whole_words_and_phrases_match_in_any_case() {
        let banned = list(&["gore", "red wedding", "Blood"]);
        assert_eq!(found("A castle, GORE everywhere", &banned), ["gore"]);
        assert_eq!(found("the Red  Wedding, painted", &banned), ["red wedding"]);
        assert_eq!(found("blood-red sky", &banned), ["Blood"]);
        assert!(found("gorgeous red dress at a wedding", &banned).is_empty());
        assert!(found("bloodhound", &banned).is_empty());
        assert!(found("anything", &list(&["", "  "])).is_empty());
        assert_eq!(found("ÉTÉ chaud", &list(&["été"])), ["été"]);
    }
}
