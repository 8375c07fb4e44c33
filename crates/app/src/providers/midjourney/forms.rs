//! The forms (Discord modals) a Midjourney job fills rather than fails on: Custom Zoom's,
//! whose one field is the new prompt with its `--zoom`, and Extend's under Remix mode, whose
//! one field is the prompt. Each is filled with the job's prompt, which for Custom Zoom is the
//! caller's new prompt. Any other form (a remix prompt for a variation, Vary (Region)'s editor)
//! would wait for a person, so the job fails on it instead (`account.rs`).

use atelier_discord::rest::ModalSubmit;

/// The text field of a form the job fills, by the form's `custom_id` as the bot names it.
fn field(custom_id: &str) -> Option<&'static str> {
    if custom_id.starts_with("MJ::OutpaintCustomZoomModal::") {
        Some("MJ::OutpaintCustomZoomModal::prompt")
    } else if custom_id.starts_with("MJ::AnimateModal::") {
        // `MJ::AnimateModal::<hash>::<i>::<high|low>::1`
        Some("MJ::AnimateModal::prompt")
    } else {
        None
    }
}

/// Whether the job fills a form with this `custom_id` rather than failing on it.
pub fn fills(custom_id: &str) -> bool {
    field(custom_id).is_some()
}

/// The modal submit for form `id` (`custom_id` as the bot named it), its field filled with
/// `prompt`; `None` for a form the job does not fill.
pub fn submit(id: &str, custom_id: &str, prompt: &str) -> Option<ModalSubmit> {
    Some(ModalSubmit {
        id: id.to_owned(),
        custom_id: custom_id.to_owned(),
        fields: vec![(field(custom_id)?.to_owned(), prompt.to_owned())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_is_filled_in_its_own_field() {
        let zoom = submit("9", "MJ::OutpaintCustomZoomModal::h", "fox --zoom 1.5").unwrap();
        assert_eq!(
            zoom.fields,
            [(
                "MJ::OutpaintCustomZoomModal::prompt".to_owned(),
                "fox --zoom 1.5".to_owned()
            )]
        );
        let extend = submit("9", "MJ::AnimateModal::h::1::low::1", "fox").unwrap();
        assert_eq!(extend.fields[0].0, "MJ::AnimateModal::prompt");
        // A remix prompt or Vary (Region) waits for a person: not filled.
        for other in [
            "MJ::RemixModal::h::1::1",
            "MJ::iframe::t",
            "MJ::ImagineModal::1",
        ] {
            assert!(!fills(other), "{other}");
            assert!(submit("9", other, "fox").is_none());
        }
    }
}
