//! Which button an action presses on a Midjourney message, and what result it waits for.

use atelier_discord::rest::Component;

use super::exchange::Send;
use super::reading::Kind;
use super::refs::Shot;
use super::router::{Expect, normalise};
use crate::domain::{Action, ErrorCode};
use crate::providers::ProviderError;

/// The button press of `action` on `source`, and the result it waits for.
pub fn press(source: &Shot, action: Action) -> Result<(Send, Expect), ProviderError> {
    let (prefixes, built, kinds, index): (Vec<String>, Option<String>, Vec<Kind>, Option<u8>) =
        match action {
            Action::Upscale { index } => (
                vec![format!("MJ::JOB::upsample::{index}::")],
                Some(format!("MJ::JOB::upsample::{index}::")),
                vec![Kind::Upscale],
                Some(index),
            ),
            Action::Variation { index } => (
                vec![format!("MJ::JOB::variation::{index}::")],
                Some(format!("MJ::JOB::variation::{index}::")),
                vec![Kind::Variation],
                None,
            ),
            Action::Reroll => (
                vec!["MJ::JOB::reroll::0::".into()],
                None,
                vec![Kind::Imagine, Kind::Reroll],
                None,
            ),
            Action::VaryStrong { .. } => (
                vec!["MJ::JOB::high_variation::1::".into()],
                None,
                vec![Kind::Variation],
                None,
            ),
            Action::VarySubtle { .. } => (
                vec!["MJ::JOB::low_variation::1::".into()],
                None,
                vec![Kind::Variation],
                None,
            ),
            Action::UpscaleSubtle { .. } => {
                (vec!["_subtle::1::".into()], None, vec![Kind::Upscale], None)
            }
            Action::UpscaleCreative { .. } => (
                vec!["_creative::1::".into()],
                None,
                vec![Kind::Upscale],
                None,
            ),
            Action::ZoomOut { factor, .. } => (
                vec![format!(
                    "MJ::Outpaint::{}::1::",
                    if factor == 15 { 75 } else { 50 }
                )],
                None,
                vec![Kind::Zoom],
                None,
            ),
            Action::Pan { direction, .. } => {
                let d = serde_json::to_value(direction)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (
                    vec![format!("MJ::JOB::pan_{d}::1::")],
                    None,
                    vec![Kind::Pan],
                    None,
                )
            }
            // Video's buttons are only ever read off the message (§7: never built).
            Action::Animate { .. } | Action::VideoUpscale { .. } | Action::Extend { .. } => (
                vec![super::video::button_prefix(action)],
                None,
                vec![Kind::Video],
                None,
            ),
        };
    let custom_id = source
        .buttons
        .iter()
        .find(|b| {
            prefixes.iter().any(|p| {
                b.starts_with(p.as_str()) || (p.starts_with('_') && b.contains(p.as_str()))
            })
        })
        .cloned()
        .or_else(|| Some(format!("{}{}", built?, source.job_hash.as_ref()?)))
        .ok_or_else(|| {
            ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("the Midjourney message has no {action} button"),
            )
        })?;
    let expect = Expect {
        kinds,
        index,
        source_message: Some(source.message_id.clone()),
        prompt: source.prompt.as_deref().map(normalise),
    };
    Ok((
        Send::Button(Component::button(
            &source.message_id,
            source.flags,
            &custom_id,
        )),
        expect,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_come_from_the_message_or_the_hash() {
        let mut grid = Shot {
            message_id: "1".into(),
            flags: 0,
            job_hash: Some("h".into()),
            url: None,
            buttons: vec![
                "MJ::JOB::upsample::2::real".into(),
                "MJ::JOB::upsample_v7_2x_subtle::1::real::SOLO".into(),
            ],
            prompt: None,
        };
        let custom_id = |grid: &Shot, action: Action| match press(grid, action) {
            Ok((Send::Button(c), _)) => Some(c.custom_id),
            _ => None,
        };
        assert_eq!(
            custom_id(&grid, Action::Upscale { index: 2 }).as_deref(),
            Some("MJ::JOB::upsample::2::real")
        );
        assert_eq!(
            custom_id(&grid, Action::Upscale { index: 3 }).as_deref(),
            Some("MJ::JOB::upsample::3::h")
        );
        assert_eq!(
            custom_id(&grid, Action::UpscaleSubtle { index: 1 }).as_deref(),
            Some("MJ::JOB::upsample_v7_2x_subtle::1::real::SOLO")
        );
        assert_eq!(custom_id(&grid, Action::Reroll), None);
        grid.job_hash = None;
        assert_eq!(custom_id(&grid, Action::Upscale { index: 3 }), None);
    }
}
