//! Which button an action presses on a Midjourney message, and what result it waits for.
//!
//! An action is pressed only from the buttons present on the message, read by
//! [`action_of`]: Midjourney's buttons differ from one model to the next (V8.1 results have
//! no Upscale Subtle/Creative; the re-upscale ids carry the model, `upsample_v7_2x_subtle`),
//! so no `custom_id` is ever built. An action the message does not offer is refused, naming
//! what it does offer.

use atelier_discord::rest::Component;

use super::exchange::Send;
use super::reading::Kind;
use super::refs::Shot;
use super::router::{Expect, normalise};
use crate::domain::action::{Direction, Motion};
use crate::domain::{Action, ErrorCode, Role};
use crate::providers::ProviderError;

/// What the button `custom_id` does, on a message showing image `index` (its solo buttons'
/// own number is always 1); `None` for the buttons that are no action of ours (bookmark,
/// Vary (Region), links…).
pub fn action_of(custom_id: &str, index: u8) -> Option<Action> {
    let parts: Vec<&str> = custom_id.split("::").collect();
    let numbered = |i: &str| i.parse::<u8>().ok().filter(|i| (1..=4).contains(i));
    let solo = parts.last() == Some(&"SOLO");
    match parts.as_slice() {
        ["MJ", "JOB", "upsample", i, _] => numbered(i).map(|index| Action::Upscale { index }),
        ["MJ", "JOB", "variation", i, _] => numbered(i).map(|index| Action::Variation { index }),
        ["MJ", "JOB", "reroll", ..] => Some(Action::Reroll),
        ["MJ", "JOB", "high_variation", ..] if solo => Some(Action::VaryStrong { index }),
        ["MJ", "JOB", "low_variation", ..] if solo => Some(Action::VarySubtle { index }),
        ["MJ", "JOB", verb, ..] if solo && is_reupscale(verb, "_subtle") => {
            Some(Action::UpscaleSubtle { index })
        }
        ["MJ", "JOB", verb, ..] if solo && is_reupscale(verb, "_creative") => {
            Some(Action::UpscaleCreative { index })
        }
        // Video: Animate on a still, a video grid's clips, Extend on a clip.
        ["MJ", "JOB", "animate_high", ..] if solo => Some(Action::Animate {
            index,
            motion: Motion::High,
        }),
        ["MJ", "JOB", "animate_low", ..] if solo => Some(Action::Animate {
            index,
            motion: Motion::Low,
        }),
        ["MJ", "JOB", "video_virtual_upscale", i, _] => {
            numbered(i).map(|index| Action::VideoUpscale { index })
        }
        ["MJ", "JOB", "animate_high_extend", ..] => Some(Action::Extend {
            index,
            motion: Motion::High,
        }),
        ["MJ", "JOB", "animate_low_extend", ..] => Some(Action::Extend {
            index,
            motion: Motion::Low,
        }),
        ["MJ", "JOB", pan, ..] if solo => {
            let direction = match *pan {
                "pan_left" => Direction::Left,
                "pan_right" => Direction::Right,
                "pan_up" => Direction::Up,
                "pan_down" => Direction::Down,
                _ => return None,
            };
            Some(Action::Pan { index, direction })
        }
        ["MJ", "Outpaint", "50", ..] => Some(Action::ZoomOut { index, factor: 20 }),
        ["MJ", "Outpaint", "75", ..] => Some(Action::ZoomOut { index, factor: 15 }),
        // Opens a form, filled with the job's prompt (`forms.rs`).
        ["MJ", "CustomZoom", _] => Some(Action::ZoomCustom { index }),
        _ => None,
    }
}

/// `upsample_v7_2x_subtle`, `upsample_v6r1_2x_creative`: a solo re-upscale of any model.
fn is_reupscale(verb: &str, kind: &str) -> bool {
    verb.strip_prefix("upsample_v")
        .and_then(|rest| rest.strip_suffix(kind))
        .is_some_and(|model| model.ends_with("_2x") && model.len() > 3)
}

/// The actions the buttons of `shot` offer, in the message's order, on a message showing
/// image `index`.
pub fn offered(shot: &Shot, index: u8) -> Vec<Action> {
    let mut actions: Vec<Action> = Vec::new();
    for action in shot.buttons.iter().filter_map(|b| action_of(b, index)) {
        if !actions.contains(&action) {
            actions.push(action);
        }
    }
    actions
}

/// The button press of `action` on `source` (the grid, or the message showing the image the
/// action acts on), and the result it waits for.
pub fn press(source: &Shot, action: Action) -> Result<(Send, Expect), ProviderError> {
    let index = match action.source() {
        Role::Upscale(index) => index,
        _ => 0,
    };
    let custom_id = source
        .buttons
        .iter()
        .find(|b| action_of(b, index) == Some(action))
        .ok_or_else(|| {
            let offers: Vec<String> = offered(source, index)
                .iter()
                .map(ToString::to_string)
                .collect();
            let offers = if offers.is_empty() {
                "no action".to_owned()
            } else {
                offers.join(", ")
            };
            ProviderError::new(
                ErrorCode::InvalidParameter,
                format!("the Midjourney message offers no {action} button (it offers {offers})"),
            )
        })?;
    let (kinds, result_index) = match action {
        Action::Upscale { index } => (vec![Kind::Upscale], Some(index)),
        Action::Variation { .. } | Action::VaryStrong { .. } | Action::VarySubtle { .. } => {
            (vec![Kind::Variation], None)
        }
        Action::Reroll => (vec![Kind::Imagine, Kind::Reroll], None),
        Action::UpscaleSubtle { .. } | Action::UpscaleCreative { .. } => {
            (vec![Kind::Upscale], None)
        }
        Action::ZoomOut { .. } | Action::ZoomCustom { .. } => (vec![Kind::Zoom], None),
        Action::Pan { .. } => (vec![Kind::Pan], None),
        Action::Animate { .. } | Action::VideoUpscale { .. } | Action::Extend { .. } => {
            (vec![Kind::Video], None)
        }
    };
    let expect = Expect {
        kinds,
        index: result_index,
        source_message: Some(source.message_id.clone()),
        prompt: source.prompt.as_deref().map(normalise),
    };
    Ok((
        Send::Button(Component::button(
            &source.message_id,
            source.flags,
            custom_id,
        )),
        expect,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(buttons: &[&str]) -> Shot {
        Shot {
            message_id: "1".into(),
            flags: 0,
            job_hash: Some("h".into()),
            url: None,
            buttons: buttons.iter().map(|b| (*b).to_owned()).collect(),
            prompt: None,
        }
    }

    fn custom_id(source: &Shot, action: Action) -> Option<String> {
        match press(source, action) {
            Ok((Send::Button(c), _)) => Some(c.custom_id),
            _ => None,
        }
    }

    #[test]
    fn buttons_are_pressed_only_as_the_message_offers_them() {
        let grid = shot(&[
            "MJ::JOB::upsample::2::real",
            "MJ::JOB::reroll::0::real::SOLO",
            "MJ::JOB::variation::4::real",
        ]);
        assert_eq!(
            custom_id(&grid, Action::Upscale { index: 2 }).as_deref(),
            Some("MJ::JOB::upsample::2::real")
        );
        // Never built from the job's hash: U3 is not on this message.
        assert_eq!(custom_id(&grid, Action::Upscale { index: 3 }), None);
        let refused = press(&grid, Action::Upscale { index: 3 }).err().unwrap();
        assert_eq!(refused.code, ErrorCode::InvalidParameter);
        assert!(
            refused
                .message
                .contains("offers no u3 button (it offers u2, reroll, v4)"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn solo_buttons_of_every_model_act_on_the_image_the_message_shows() {
        let v7 = shot(&[
            "MJ::JOB::upsample_v7_2x_subtle::1::h::SOLO",
            "MJ::JOB::upsample_v6r1_2x_creative::1::h::SOLO",
            "MJ::JOB::low_variation::1::h::SOLO",
            "MJ::JOB::high_variation::1::h::SOLO",
            "MJ::Outpaint::50::1::h::SOLO",
            "MJ::Outpaint::75::1::h::SOLO",
            "MJ::JOB::pan_up::1::h::SOLO",
            "MJ::CustomZoom::h",
            "MJ::Inpaint::1::h::SOLO",
            "MJ::BOOKMARK::h",
        ]);
        let names: Vec<String> = offered(&v7, 3).iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "upscale-subtle",
                "upscale-creative",
                "vary-subtle",
                "vary-strong",
                "zoom-out-2x",
                "zoom-out-1.5x",
                "pan-up",
                "zoom-custom"
            ]
        );
        assert_eq!(
            custom_id(&v7, Action::UpscaleSubtle { index: 3 }).as_deref(),
            Some("MJ::JOB::upsample_v7_2x_subtle::1::h::SOLO")
        );
        assert_eq!(
            custom_id(
                &v7,
                Action::ZoomOut {
                    index: 3,
                    factor: 15
                }
            )
            .as_deref(),
            Some("MJ::Outpaint::75::1::h::SOLO")
        );
        // A V8.1 result has no re-upscale: refused, not built.
        let v8 = shot(&["MJ::JOB::low_variation::1::h::SOLO"]);
        assert_eq!(custom_id(&v8, Action::UpscaleCreative { index: 1 }), None);
    }

    #[test]
    fn video_buttons_are_read_like_the_others() {
        let still = shot(&[
            "MJ::JOB::low_variation::1::h::SOLO",
            "MJ::JOB::animate_high::1::h::SOLO",
            "MJ::JOB::animate_low::1::h::SOLO",
        ]);
        let names: Vec<String> = offered(&still, 2).iter().map(ToString::to_string).collect();
        assert_eq!(names, ["vary-subtle", "animate-high", "animate-low"]);
        let grid = shot(&["MJ::JOB::video_virtual_upscale::3::h"]);
        assert_eq!(offered(&grid, 0), [Action::VideoUpscale { index: 3 }]);
        let clip = shot(&["MJ::JOB::animate_low_extend::1::c"]);
        assert_eq!(
            offered(&clip, 4),
            [Action::Extend {
                index: 4,
                motion: Motion::Low
            }]
        );
    }

    #[test]
    fn unknown_or_malformed_ids_are_no_action() {
        for id in [
            "MJ::JOB::upsample::5::h",
            "MJ::JOB::upsample::x::h",
            "MJ::JOB::upsample_v7_2x_subtle::1::h",
            "MJ::JOB::upsample_2x_subtle::1::h::SOLO",
            "MJ::JOB::pan_sideways::1::h::SOLO",
            "MJ::CancelJob::ByJobid::0b8f",
            "MJ::Outpaint::60::1::h::SOLO",
            "MJ::JOB::animate_medium::1::h::SOLO",
            "MJ::JOB::video_virtual_upscale::5::h",
            "",
            "::::",
        ] {
            assert_eq!(action_of(id, 1), None, "{id}");
        }
    }
}
