//! A task waiting for its form (the proxy's `MODAL` status, its code 21): a button that opens
//! a form on Midjourney (Custom Zoom) is answered with such a task instead of a job, and
//! `POST /mj/submit/modal` runs it with the caller's prompt. Nothing is stored for it until
//! then: its id says what it is (the picture, the action, when it was asked for), and every use
//! checks again that the picture is the caller's, so an id made up by hand opens nothing the
//! caller could not act on anyway.

use serde_json::json;
use time::OffsetDateTime;

use super::Task;
use crate::domain::ImageId;

/// The actions that open a form, by the names `App::act` takes.
const FORMS: [&str; 1] = ["zoom-custom"];

/// A task waiting for its form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModalTask {
    /// The picture the button was pressed on.
    pub image: ImageId,
    /// The action the form completes (`zoom-custom`).
    pub action: &'static str,
    /// When the button was pressed, Unix milliseconds.
    pub made_ms: i64,
}

impl ModalTask {
    /// The task for `action` pressed on `image` now; `None` for an action that opens no form.
    pub fn new(image: ImageId, action: &str) -> Option<Self> {
        let action = FORMS.into_iter().find(|a| *a == action)?;
        let made_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(i64::MAX);
        Some(Self {
            image,
            action,
            made_ms,
        })
    }

    /// `modal-<image>-<ms>-<action>`: letters, digits and dashes only, so it goes in a path
    /// as it is.
    pub fn id(&self) -> String {
        format!("modal-{}-{}-{}", self.image, self.made_ms, self.action)
    }

    /// Reads an id [`ModalTask::id`] made; `None` for any other.
    pub fn parse(id: &str) -> Option<Self> {
        let rest = id.trim().strip_prefix("modal-")?;
        let image: ImageId = rest.get(..36)?.parse().ok()?;
        let (ms, action) = rest.get(36..)?.strip_prefix('-')?.split_once('-')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            image,
            action: FORMS.into_iter().find(|a| *a == action)?,
            made_ms: ms.parse().ok()?,
        })
    }

    /// The task object while it waits: `MODAL`, its `finalPrompt` the form's value as
    /// Midjourney fills it in (`prompt` of the picture's generation, with `--zoom 2`).
    pub fn task(&self, prompt: &str) -> Task {
        let filled = form_value(prompt);
        Task {
            id: self.id(),
            action: "ZOOM",
            status: "MODAL",
            progress: "0%".into(),
            prompt: filled.clone(),
            prompt_en: filled.clone(),
            description: "Waiting for window confirm".into(),
            state: None,
            submit_time: self.made_ms,
            start_time: None,
            finish_time: None,
            image_url: None,
            fail_reason: None,
            buttons: Vec::new(),
            properties: json!({"finalPrompt": filled, "remix": true, "imageId": self.image.to_string()}),
        }
    }
}

/// The value Custom Zoom's form opens with: the prompt with `--zoom 2` in place of any zoom it
/// had (what Midjourney fills in).
pub fn form_value(prompt: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    let mut skipping = false;
    for word in prompt.split_whitespace() {
        if skipping {
            skipping = false;
            continue;
        }
        if word.eq_ignore_ascii_case("--zoom") {
            skipping = true;
            continue;
        }
        words.push(word);
    }
    words.push("--zoom");
    words.push("2");
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_and_nothing_else_does() {
        let image: ImageId = "0b7e1d0a-7f36-4c2e-9d76-2f1c0c4b8a11".parse().unwrap();
        let task = ModalTask::new(image, "zoom-custom").unwrap();
        let id = task.id();
        assert!(
            id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{id}"
        );
        assert_eq!(ModalTask::parse(&id), Some(task.clone()));
        assert!(ModalTask::new(image, "pan-left").is_none());
        for bad in [
            String::new(),
            image.to_string(),
            format!("modal-{image}"),
            format!("modal-{image}-12-pan-left"),
            format!("modal-{image}--zoom-custom"),
            format!("modal-{image}-1x-zoom-custom"),
            format!("modal-{}-1-zoom-custom", &image.to_string()[..35]),
            "modal-é".repeat(20),
        ] {
            assert_eq!(ModalTask::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn the_form_opens_with_a_zoom_of_two() {
        assert_eq!(form_value("a fox --ar 1:1"), "a fox --ar 1:1 --zoom 2");
        assert_eq!(
            form_value("a fox --zoom 1.2 --ar 1:1"),
            "a fox --ar 1:1 --zoom 2"
        );
        let task = ModalTask::new(
            "0b7e1d0a-7f36-4c2e-9d76-2f1c0c4b8a11".parse().unwrap(),
            "zoom-custom",
        )
        .unwrap()
        .task("a fox");
        assert_eq!(task.status, "MODAL");
        assert_eq!(task.properties["finalPrompt"], "a fox --zoom 2");
    }
}
