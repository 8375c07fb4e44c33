//! Fixture readings (full), the content grammar, error rules, liberal field handling, typed
//! input errors, and inputs that must never panic.

use super::*;
use serde_json::json;

const MJ: &str = MIDJOURNEY_BOT_ID;
const USER: &str = "1162400934712115230";
const CHANNEL: &str = "1162401122461745222";
const PROMPT: &str = "a red fox in the snow, watercolor --ar 3:2 --v 6.1";
const GRID: &str = "4b6c2e0a-7f3d-4c1e-9a8b-2d5f6e7c8a90";
const GRID_MESSAGE: &str = "1268751450819633213";
const UPSCALE_MESSAGE: &str = "1268751623410581545";
const IMAGINE_INTERACTION: &str = "1268751190123456512";
const PROGRESS_MESSAGE: &str = "1268751196351209472";
/// Interaction id and nonce shared by the error fixtures.
const ERROR_INTERACTION: &str = "1268754400820359268";
const ERROR_NONCE: &str = "1268754400334082048";

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_str!(concat!("../fixtures/", $name, ".json")))
    };
}

/// Reads a fixture and compares the whole reading, as the CLI would print it.
fn check((name, input): (&str, &str), expected: &Value) {
    let reading = read_json(input.as_bytes(), &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let actual = serde_json::to_value(&reading).expect("a reading serialises");
    assert_eq!(
        &actual, expected,
        "{name}\nactual:   {actual:#}\nexpected: {expected:#}"
    );
}

/// A complete expected reading: the defaults of a Midjourney message in our channel,
/// overlaid with `fields`.
fn reading(fields: &Value) -> Value {
    let mut base = json!({
        "kind": "ignore", "progress": null, "prompt": null, "mode": null, "index": null,
        "variant": null, "job_hash": null, "seed": null, "buttons": [], "prompts": [], "error": null,
        "nonce": null, "interaction_id": null, "message_id": null, "channel_id": CHANNEL,
        "referenced_message_id": null, "author_id": MJ, "user_id": USER, "attachment": null,
        "flags": {"raw": 0, "ephemeral": false, "loading": false},
    });
    for (key, value) in fields.as_object().expect("fields are an object") {
        assert!(base.get(key).is_some(), "unknown reading field {key}");
        base[key] = value.clone();
    }
    base
}

fn grid_buttons(hash: &str) -> Value {
    json!([
        format!("MJ::JOB::upsample::1::{hash}"),
        format!("MJ::JOB::upsample::2::{hash}"),
        format!("MJ::JOB::upsample::3::{hash}"),
        format!("MJ::JOB::upsample::4::{hash}"),
        format!("MJ::JOB::reroll::0::{hash}::SOLO"),
        format!("MJ::JOB::variation::1::{hash}"),
        format!("MJ::JOB::variation::2::{hash}"),
        format!("MJ::JOB::variation::3::{hash}"),
        format!("MJ::JOB::variation::4::{hash}"),
    ])
}

fn upscale_buttons(hash: &str) -> Value {
    json!([
        format!("MJ::JOB::upsample_v6r1_2x_subtle::1::{hash}::SOLO"),
        format!("MJ::JOB::upsample_v6r1_2x_creative::1::{hash}::SOLO"),
        format!("MJ::JOB::low_variation::1::{hash}::SOLO"),
        format!("MJ::JOB::high_variation::1::{hash}::SOLO"),
        format!("MJ::Inpaint::1::{hash}::SOLO"),
        format!("MJ::Outpaint::50::1::{hash}::SOLO"),
        format!("MJ::Outpaint::75::1::{hash}::SOLO"),
        format!("MJ::CustomZoom::{hash}"),
        format!("MJ::JOB::pan_left::1::{hash}::SOLO"),
        format!("MJ::JOB::pan_right::1::{hash}::SOLO"),
        format!("MJ::JOB::pan_up::1::{hash}::SOLO"),
        format!("MJ::JOB::pan_down::1::{hash}::SOLO"),
        format!("MJ::BOOKMARK::{hash}"),
    ])
}

/// The attachment as read: signed URLs kept whole (they stop working if stripped).
fn attachment_of(
    id: &str,
    filename: &str,
    size: u64,
    dims: (u32, u32),
    content_type: &str,
    ephemeral: bool,
) -> Value {
    let base = if ephemeral {
        "ephemeral-attachments"
    } else {
        "attachments"
    };
    let signature = "?ex=66ae2b53&is=66acd9d3&hm=5e1f0c9a7d2b4e6f8a0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a&";
    json!({
        "url": format!("https://cdn.discordapp.com/{base}/{CHANNEL}/{id}/{filename}{signature}"),
        "proxy_url": format!("https://media.discordapp.net/{base}/{CHANNEL}/{id}/{filename}{signature}"),
        "filename": filename,
        "content_type": content_type,
        "width": dims.0,
        "height": dims.1,
        "size": size,
    })
}

fn png(id: &str, hash: &str, size: u64, dims: (u32, u32)) -> Value {
    let filename = format!("atelier_tester_a_red_fox_in_the_snow_watercolor_{hash}.png");
    attachment_of(id, &filename, size, dims, "image/png", false)
}

fn grid_png() -> Value {
    png("1268751450475565107", GRID, 7_812_030, (2688, 1792))
}

fn preview(percent: u64) -> Value {
    attachment_of(
        &format!("12687512{percent:02}00000000{percent:02}"),
        &format!("{GRID}_grid_0.webp"),
        180_000 + percent * 1000,
        (1344, 896),
        "image/webp",
        true,
    )
}

fn error(code: &str, fatal_for: &str, title: &str, message: &str) -> Value {
    json!({"code": code, "fatal_for": fatal_for, "title": title, "message": message})
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one test each, asserting the full reading.

#[test]
fn fixture_waiting() {
    check(
        fixture!("waiting"),
        &reading(&json!({
            "kind": "waiting", "prompt": PROMPT, "nonce": "1268751189838086144",
            "interaction_id": IMAGINE_INTERACTION, "message_id": PROGRESS_MESSAGE,
        })),
    );
}

#[test]
fn fixture_progress_0_has_no_preview_yet() {
    check(
        fixture!("progress_0"),
        &reading(&json!({
            "kind": "progress", "progress": 0, "prompt": PROMPT, "mode": "fast",
            "interaction_id": IMAGINE_INTERACTION, "message_id": PROGRESS_MESSAGE,
        })),
    );
}

#[test]
fn fixture_progress_31_legacy_interaction() {
    check(
        fixture!("progress_31"),
        &reading(&json!({
            "kind": "progress", "progress": 31, "prompt": PROMPT, "mode": "fast", "job_hash": GRID,
            "interaction_id": IMAGINE_INTERACTION, "message_id": PROGRESS_MESSAGE, "attachment": preview(31),
        })),
    );
}

#[test]
fn fixture_progress_62_interaction_metadata() {
    check(
        fixture!("progress_62"),
        &reading(&json!({
            "kind": "progress", "progress": 62, "prompt": PROMPT, "mode": "fast", "job_hash": GRID,
            "interaction_id": IMAGINE_INTERACTION, "message_id": PROGRESS_MESSAGE, "attachment": preview(62),
        })),
    );
}

#[test]
fn fixture_progress_93_stealth_and_both_interaction_fields() {
    check(
        fixture!("progress_93"),
        &reading(&json!({
            "kind": "progress", "progress": 93, "prompt": PROMPT, "mode": "fast", "job_hash": GRID,
            "interaction_id": IMAGINE_INTERACTION, "message_id": PROGRESS_MESSAGE, "attachment": preview(93),
        })),
    );
}

#[test]
fn fixture_imagine_grid_2023_shape() {
    check(
        fixture!("imagine_grid"),
        &reading(&json!({
            "kind": "imagine", "prompt": PROMPT, "mode": "fast", "job_hash": GRID,
            "buttons": grid_buttons(GRID), "message_id": GRID_MESSAGE, "attachment": grid_png(),
        })),
    );
}

#[test]
fn fixture_imagine_grid_2025_shape_keeps_nonce_link_and_second_line() {
    let hash = "c7a4e1b9-3d2f-4a6e-8b0c-5f9d1e2a3b4c";
    let filename = format!("atelier_tester_a_lighthouse_at_dusk_{hash}.png");
    check(
        fixture!("imagine_grid_2025"),
        &reading(&json!({
            "kind": "imagine", "prompt": "a lighthouse at dusk --v 7", "mode": "relaxed", "job_hash": hash,
            "buttons": grid_buttons(hash), "nonce": "1371234501234567168",
            "interaction_id": "1371234502345687040", "message_id": "1371234567890123776",
            "attachment": attachment_of("1371234567634276432", &filename, 6_912_331, (2048, 2048), "image/png", false),
        })),
    );
}

#[test]
fn fixture_upscale_image_2() {
    let hash = "9d1e3f52-6a4b-4c7d-8e2f-0b1a2c3d4e5f";
    check(
        fixture!("upscale"),
        &reading(&json!({
            "kind": "upscale", "prompt": PROMPT, "index": 2, "job_hash": hash,
            "buttons": upscale_buttons(hash), "message_id": UPSCALE_MESSAGE,
            "referenced_message_id": GRID_MESSAGE,
            "attachment": png("1268751623012128849", hash, 1_811_877, (1344, 896)),
        })),
    );
}

#[test]
fn fixture_upscale_creative() {
    let hash = "8f7e6d5c-4b3a-4291-8a7b-6c5d4e3f2a1b";
    check(
        fixture!("upscale_creative"),
        &reading(&json!({
            "kind": "upscale", "prompt": PROMPT, "mode": "fast", "variant": "creative", "job_hash": hash,
            "buttons": [
                format!("MJ::JOB::low_variation::1::{hash}::SOLO"),
                format!("MJ::JOB::high_variation::1::{hash}::SOLO"),
                format!("MJ::BOOKMARK::{hash}"),
            ],
            "message_id": "1268753002340941844", "referenced_message_id": UPSCALE_MESSAGE,
            "attachment": png("1268753001917452349", hash, 9_120_331, (2688, 1792)),
        })),
    );
}

#[test]
fn fixture_variation_strong() {
    let hash = "2f8e6d4c-1a3b-4c5d-9e7f-a1b2c3d4e5f6";
    check(
        fixture!("variation_strong"),
        &reading(&json!({
            "kind": "variation", "prompt": PROMPT, "mode": "fast", "variant": "strong", "job_hash": hash,
            "buttons": grid_buttons(hash), "message_id": "1268752011234582601",
            "referenced_message_id": UPSCALE_MESSAGE,
            "attachment": png("1268752010899034162", hash, 7_702_114, (2688, 1792)),
        })),
    );
}

#[test]
fn fixture_variation_subtle_with_extra_spaces_and_button_interaction() {
    let hash = "6b5a4c3d-2e1f-4a0b-8c9d-e8f7a6b5c4d3";
    check(
        fixture!("variation_subtle"),
        &reading(&json!({
            "kind": "variation", "prompt": PROMPT, "mode": "relaxed", "variant": "subtle", "job_hash": hash,
            "buttons": grid_buttons(hash), "nonce": "1268752170031104000",
            "interaction_id": "1268752170500866098", "message_id": "1268752244723421234",
            "attachment": png("1268752244400459857", hash, 7_599_120, (2688, 1792)),
        })),
    );
}

#[test]
fn fixture_zoom() {
    let hash = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    check(
        fixture!("zoom"),
        &reading(&json!({
            "kind": "zoom", "prompt": PROMPT, "mode": "fast", "job_hash": hash,
            "buttons": grid_buttons(hash), "message_id": "1268752530012345678",
            "attachment": png("1268752529664204880", hash, 7_421_003, (2688, 1792)),
        })),
    );
}

#[test]
fn fixture_pan() {
    let hash = "5e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c1b";
    check(
        fixture!("pan"),
        &reading(&json!({
            "kind": "pan", "prompt": PROMPT, "mode": "relaxed", "variant": "left", "job_hash": hash,
            "buttons": grid_buttons(hash), "message_id": "1268752777665544332",
            "attachment": png("1268752777300641813", hash, 6_120_442, (2688, 1344)),
        })),
    );
}

#[test]
fn fixture_describe() {
    check(
        fixture!("describe"),
        &reading(&json!({
            "kind": "describe",
            "prompts": [
                "A red fox standing in fresh snow, watercolor illustration, soft blue shadows, loose brushwork --ar 3:2",
                "watercolor painting of a fox in a winter forest, in the style of muted earth tones, delicate washes --ar 3:2",
                "a fox sitting in the snow, children's book illustration, white and orange --ar 3:2",
                "an orange fox on a snowy hill, minimalist watercolor, negative space --ar 3:2",
            ],
            "buttons": [
                "MJ::Job::PicReader::1", "MJ::Job::PicReader::2", "MJ::Job::PicReader::3",
                "MJ::Job::PicReader::4", "MJ::Picread::Retry", "MJ::Job::PicReader::all",
            ],
            "interaction_id": "1268753390012538960", "message_id": "1268753399219302472",
        })),
    );
}

#[test]
fn fixture_blend_without_interaction() {
    let hash = "d3c2b1a0-9f8e-4d7c-8b6a-5f4e3d2c1b0a";
    let filename = format!("atelier_tester_{hash}.png");
    check(
        fixture!("blend"),
        &reading(&json!({
            "kind": "blend", "prompt": "<https://s.mj.run/Qd3x8Rk2aLs> <https://s.mj.run/7GhJ2kLpQw0> --ar 1:1",
            "mode": "relaxed", "job_hash": hash, "buttons": grid_buttons(hash), "message_id": "1268753801551654922",
            "attachment": attachment_of("1268753801220317235", &filename, 7_002_145, (2048, 2048), "image/png", false),
        })),
    );
}

#[test]
fn fixture_shorten() {
    check(
        fixture!("shorten"),
        &reading(&json!({
            "kind": "shorten",
            "prompts": [
                "red fox, snow, watercolor",
                "red fox in the snow, watercolor",
                "A red fox in the snow, watercolor",
                "A very red fox standing in the snow",
                "A very red fox standing in the snow, watercolor",
            ],
            "buttons": [
                "MJ::Job::PromptAnalyzer::1", "MJ::Job::PromptAnalyzer::2", "MJ::Job::PromptAnalyzer::3",
                "MJ::Job::PromptAnalyzer::4", "MJ::Job::PromptAnalyzer::5", "MJ::Job::PromptAnalyzer::show_details",
            ],
            "interaction_id": "1268754100234817558", "message_id": "1268754109118431272",
        })),
    );
}

#[test]
fn fixture_error_banned_prompt() {
    check(
        fixture!("error_banned_prompt"),
        &reading(&json!({
            "kind": "error", "prompt": "a fox fighting in a bloody battle --v 6.1",
            "error": error("banned_prompt", "job", "Banned prompt detected",
                "Sorry! Our AI moderators feel your prompt might be against our community standards.\n\n\
                 If you think this is a mistake, please press the **Appeal** button below and we will send \
                 it to a more sophisticated AI to double-check the result."),
            "buttons": ["MJ::Prompt::Appeal::1268754402305933433"],
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268754402305933433",
        })),
    );
}

#[test]
fn fixture_error_invalid_parameter_ephemeral() {
    check(
        fixture!("error_invalid_parameter"),
        &reading(&json!({
            "kind": "error", "prompt": "a red fox --foo 3",
            "error": error("invalid_parameter", "job", "Invalid parameter", "Unrecognized parameter(s): `--foo`"),
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268754588172189816",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_queue_full() {
    check(
        fixture!("error_queue_full"),
        &reading(&json!({
            "kind": "error", "prompt": "a red fox in the snow --relax",
            "error": error("queue_full", "job", "Queue full",
                "You have too many jobs queued. Wait for some of your current jobs to finish before submitting more."),
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268754701231046729",
        })),
    );
}

#[test]
fn fixture_job_queued_is_waiting_not_failure() {
    check(
        fixture!("error_job_queued"),
        &reading(&json!({
            "kind": "waiting", "prompt": PROMPT,
            "error": error("job_queued", "none", "Job queued",
                "You have reached the maximum allowed number of concurrent jobs. Your job will start once at \
                 least one of your current jobs finishes."),
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268754822199939172",
        })),
    );
}

#[test]
fn fixture_error_credits_exhausted() {
    check(
        fixture!("error_credits_exhausted"),
        &reading(&json!({
            "kind": "error",
            "error": error("insufficient_credits", "account", "Credits exhausted",
                "You have exhausted your fast hours for this month. You can purchase more hours, or switch to \
                 relax mode with `/relax`."),
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268754950151835668",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_subscription_required() {
    check(
        fixture!("error_subscription_required"),
        &reading(&json!({
            "kind": "error",
            "error": error("subscription_required", "account", "Subscription required",
                "To use this command, you need an active Midjourney subscription. Use `/subscribe` to get a plan."),
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755081210466354",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_pending_mod_message() {
    check(
        fixture!("error_pending_mod"),
        &reading(&json!({
            "kind": "error",
            "error": error("moderation", "account", "Pending mod message",
                "You have a pending moderation message. Please acknowledge it before using the bot further."),
            "buttons": ["MJ::ModMessage::Acknowledge::1268755190123458618"],
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755190123458618",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_action_needed() {
    check(
        fixture!("error_action_needed"),
        &reading(&json!({
            "kind": "error",
            "error": error("action_required", "account", "Action needed to continue",
                "Your recent prompts were flagged by our moderators. Please review our community guidelines and \
                 confirm that you will follow them."),
            "buttons": ["MJ::Prompt::Acknowledge::1268755300987224134", "MJ::Prompt::Appeal::1268755300987224134"],
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755300987224134",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_captcha() {
    check(
        fixture!("error_captcha"),
        &reading(&json!({
            "kind": "error",
            "error": error("captcha", "account", "Action needed to continue",
                "Wow! You're making so many AI images we need to verify you're human 😂\n\n\
                 Please click the button that best describes the image."),
            "buttons": ["MJ::Captcha::answer::a1", "MJ::Captcha::answer::b2", "MJ::Captcha::answer::c3"],
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755412345679872",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_ai_moderator_content() {
    check(
        fixture!("error_ai_moderator"),
        &reading(&json!({
            "kind": "error",
            "error": {
                "code": "banned_prompt", "fatal_for": "job", "title": null,
                "message": "Sorry! Our AI moderator thinks this prompt is probably against our community standards.",
            },
            "nonce": "1268755520080388096", "interaction_id": "1268755520541827163", "message_id": "1268755523108880474",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

// The forms people have reported (§7): no title, a description only. Each must fail the job
// or take the account out, never read as `ignore` (a silent timeout).

#[test]
fn fixture_error_ai_moderator_embed_without_title() {
    check(
        fixture!("error_ai_moderator_untitled"),
        &reading(&json!({
            "kind": "error",
            "error": {
                "code": "banned_prompt", "fatal_for": "job", "title": null,
                "message": "Sorry! Our AI moderator thinks this prompt is probably against our community standards.",
            },
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755523108880475",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_pending_mod_with_empty_title() {
    check(
        fixture!("error_pending_mod_untitled"),
        &reading(&json!({
            "kind": "error",
            "error": {
                "code": "moderation", "fatal_for": "account", "title": null,
                "message": "You have a pending moderation message. Please acknowledge it before using the bot further.",
            },
            "buttons": ["MJ::ModMessage::Acknowledge::1268755190123458618"],
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755190123458619",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_blocked_description_only() {
    check(
        fixture!("error_blocked_untitled"),
        &reading(&json!({
            "kind": "error",
            "error": {
                "code": "blocked", "fatal_for": "account", "title": null,
                "message": "You have been blocked from accessing Midjourney. This happens on repeated or serious ToS violations.",
            },
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755601234567168",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_error_captcha_description_only() {
    check(
        fixture!("error_captcha_untitled"),
        &reading(&json!({
            "kind": "error",
            "error": {
                "code": "captcha", "fatal_for": "account", "title": null,
                "message": "Wow! You\u{2019}re making so many AI images we need to verify you\u{2019}re human 😂\n\n\
                            Please click the button that best describes the image.",
            },
            "nonce": ERROR_NONCE, "interaction_id": ERROR_INTERACTION, "message_id": "1268755698765432832",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_show_reply_gives_job_id_and_seed() {
    check(
        fixture!("show_seed"),
        &reading(&json!({
            "kind": "show", "prompt": PROMPT, "job_hash": GRID, "seed": 3_170_212_415_u32,
            "message_id": "1268756059123712030", "channel_id": "1162410833018511452", "user_id": null,
        })),
    );
}

#[test]
fn fixture_progress_preview_alone() {
    let filename = format!("{GRID}_0_step_7.jpeg");
    check(
        fixture!("progress_preview_attachment_only"),
        &reading(&json!({
            "kind": "progress", "job_hash": GRID, "interaction_id": IMAGINE_INTERACTION,
            "message_id": PROGRESS_MESSAGE,
            "attachment": attachment_of("1268751260000000007", &filename, 48_213, (512, 341), "image/jpeg", true),
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_progress_cancel_button_gives_the_job_id() {
    let filename = format!("{GRID}_0_step_5.jpeg");
    check(
        fixture!("progress_cancel_button"),
        &reading(&json!({
            "kind": "progress", "prompt": "a red fox in the snow, watercolor --ar 3:2 --v 7",
            "progress": 46, "mode": "fast", "job_hash": GRID,
            "buttons": [format!("MJ::CancelJob::ByJobid::{GRID}")],
            "interaction_id": IMAGINE_INTERACTION, "message_id": PROGRESS_MESSAGE,
            "attachment": attachment_of("1268751250000000005", &filename, 41_877, (512, 341), "image/jpeg", true),
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_shorten_update_with_footer() {
    check(
        fixture!("shorten_update"),
        &reading(&json!({
            "kind": "shorten",
            "prompts": [
                "lighthouse, dusk, storm",
                "lighthouse at dusk, storm, oil painting",
                "a lighthouse at dusk in a storm",
                "a lighthouse at dusk in a storm, oil painting",
                "a lone lighthouse at dusk in a storm, oil painting",
            ],
            "buttons": [
                "MJ::Job::PromptAnalyzer::1", "MJ::Job::PromptAnalyzer::2", "MJ::Job::PromptAnalyzer::3",
                "MJ::Job::PromptAnalyzer::4", "MJ::Job::PromptAnalyzer::5", "MJ::Job::PromptAnalyzer::show_details",
            ],
            "interaction_id": "1268754100234817558", "message_id": "1268754109118431299",
        })),
    );
}

#[test]
fn fixture_other_user_is_ignored() {
    check(
        fixture!("other_user"),
        &reading(&json!({
            "nonce": "1268755699959357440", "message_id": "1268755700123451403", "author_id": USER, "user_id": null,
        })),
    );
}

#[test]
fn fixture_other_bot_is_ignored_but_its_ids_are_reported() {
    check(
        fixture!("other_bot"),
        &reading(&json!({
            "job_hash": GRID, "buttons": grid_buttons(GRID), "message_id": "1268755811205271582",
            "author_id": "1139245071183032421", "attachment": grid_png(),
        })),
    );
}

#[test]
fn other_bot_is_read_when_the_caller_trusts_it() {
    let (_, input) = fixture!("other_bot");
    let reading = read_json(input.as_bytes(), &["1139245071183032421"]).expect("reads");
    assert_eq!(reading.kind, Kind::Imagine);
    assert_eq!(reading.prompt.as_deref(), Some(PROMPT));
}

#[test]
fn fixture_ephemeral_settings_reply() {
    check(
        fixture!("ephemeral_settings"),
        &reading(&json!({
            "buttons": [
                "MJ::Settings::VersionSelector", "MJ::Settings::RemixMode", "MJ::Settings::HighVariabilityMode::1",
                "MJ::Settings::LowVariabilityMode::1", "MJ::Settings::FastMode", "MJ::Settings::RelaxMode",
                "MJ::Settings::TurboMode", "MJ::Settings::ResetSettings",
            ],
            "nonce": "1268755899678154752", "interaction_id": "1268755900140359771", "message_id": "1268755905112940666",
            "flags": {"raw": 64, "ephemeral": true, "loading": false},
        })),
    );
}

#[test]
fn fixture_niji_upscale() {
    let hash = "e5d4c3b2-a190-4f8e-9d7c-6b5a4f3e2d1c";
    let filename = format!("atelier_tester_a_fox_spirit_girl_shrine_autumn_{hash}.png");
    check(
        fixture!("niji_upscale"),
        &reading(&json!({
            "kind": "upscale", "prompt": "a fox spirit girl, shrine, autumn --niji 6", "index": 1, "job_hash": hash,
            "buttons": upscale_buttons(hash), "message_id": "1268756011298205716",
            "referenced_message_id": "1268755950123454464", "author_id": NIJI_BOT_ID,
            "attachment": attachment_of("1268756010874785853", &filename, 1_610_022, (1024, 1024), "image/png", false),
        })),
    );
}

// ---------------------------------------------------------------------------------------------
// Content grammar (§3.2), table-driven. Each line is read as the content of a Midjourney
// message that carries a result image, unless the expectation says "no result".

/// A minimal message from the Midjourney bot.
fn message(content: &str, with_result: bool) -> Value {
    let mut m = json!({"id": "1", "channel_id": "2", "author": {"id": MJ}, "content": content});
    if with_result {
        m["attachments"] = json!([{"url": "https://cdn.discordapp.com/attachments/2/3/grid.png", "filename": "grid.png"}]);
    }
    m
}

fn read_content(content: &str, with_result: bool) -> Reading {
    read(&message(content, with_result), &[]).expect("a minimal message reads")
}

/// A reading in one line: `kind [prompt] NN% mode #index variant`, absent parts left out.
fn summary(r: &Reading) -> String {
    let mut parts = vec![
        serde_json::to_value(r.kind)
            .expect("kind")
            .as_str()
            .unwrap_or("?")
            .to_owned(),
    ];
    parts.extend(r.prompt.as_ref().map(|p| format!("[{p}]")));
    parts.extend(r.progress.map(|p| format!("{p}%")));
    parts.extend(r.mode.map(|m| {
        serde_json::to_value(m)
            .expect("mode")
            .as_str()
            .unwrap_or("?")
            .to_owned()
    }));
    parts.extend(r.index.map(|i| format!("#{i}")));
    parts.extend(r.variant.clone());
    parts.join(" ")
}

/// (content, summary of its reading when the message carries a result image).
#[rustfmt::skip]
const JOB_LINES: &[(&str, &str)] = &[
    ("**a cat** - <@123> (Waiting to start)", "waiting [a cat]"),
    ("Making variations for image #3 with prompt **a cat** - <@123> (Waiting to start)", "waiting [a cat] #3"),
    ("Upscaling image #2 with **a cat** - <@123> (Waiting to start)", "waiting [a cat] #2"),
    ("**a cat** - <@123> (paused)", "waiting [a cat]"),
    ("**a cat** - <@123> (0%) (relaxed)", "progress [a cat] 0% relaxed"),
    ("**a cat** - Variations (Strong) by <@123> (45%) (fast)", "progress [a cat] 45% fast strong"),
    ("**a cat** - Upscaling by <@123> (31%) (fast)", "progress [a cat] 31% fast"),
    ("**a cat** - Upscaling by <@123> (0%) (fast)\n-# Create, explore...", "progress [a cat] 0% fast"),
    ("**a cat** - Upscaling by <@123> (fast)", "progress [a cat] fast"),
    ("**a cat** - <@123> (31.5%) (turbo)", "progress [a cat] 31% turbo"),
    ("**a cat** - <@123> (100%) (turbo)", "progress [a cat] 100% turbo"),
    ("**a cat** - <@123> (100.0%) (turbo)", "progress [a cat] 100% turbo"),
    ("**a cat** - <@123> (Stopped)", "error [a cat]"),
    ("**a cat** - Image #4 <@123>", "upscale [a cat] #4"),
    ("**a cat** - Image #1", "upscale [a cat] #1"),
    ("**a cat** - Upscaled by <@123> (fast)", "upscale [a cat] fast"),
    ("**a cat** - Upscaled (Beta) by <@123> (fast)", "upscale [a cat] fast beta"),
    ("**a cat** - Upscaled (Subtle) by <@123> (relaxed)", "upscale [a cat] relaxed subtle"),
    ("**a cat** - Upscaled (4x) by <@123> (Open on website for full quality) (fast)", "upscale [a cat] fast 4x"),
    ("**a cat** - Light upscale by <@123> (fast)", "upscale [a cat] fast"),
    ("**a cat** - Variations by <@123> (fast)", "variation [a cat] fast"),
    ("**a cat** - Variations (Region) by <@123> (turbo)", "variation [a cat] turbo region"),
    ("**cat** - Variations (Strong) by <@1217674642169528330> [(Open on website for full quality)](<https://midjourney.com/jobs/b21f08de-3d62-49aa-b38f-e06eddec9765>) (fast)",
        "variation [cat] fast strong"),
    ("**a cat** - Remix by <@123> (fast)", "variation [a cat] fast"),
    ("**a cat** - Remix (Subtle) by <@123> (relaxed)", "variation [a cat] relaxed subtle"),
    ("**a cat** - Zoom Out by <@123> (relaxed, stealth)", "zoom [a cat] relaxed"),
    ("**a cat** - Pan Right by <@123> (relaxed)", "pan [a cat] relaxed right"),
    ("**a cat** - Pan Up by <@123> (fast)", "pan [a cat] fast up"),
    ("**a cat** - Pan Down by <@123> (fast)", "pan [a cat] fast down"),
    ("**a cat** - <@123> (fast)", "imagine [a cat] fast"),
    ("**a cat** - <@123> (relaxed, stealth)", "imagine [a cat] relaxed"),
    ("  **  a   cat **   -   <@!123>   ( Fast )  ", "imagine [a cat] fast"),
    ("**a **bold** cat** - <@123> (fast)", "imagine [a **bold** cat] fast"),
    ("**a cat (sitting) --no (dogs)** - <@123> (fast)", "imagine [a cat (sitting) --no (dogs)] fast"),
    ("**<https://s.mj.run/X-tG9-sshyk> Aerial photography --ar 16:9 --v 6.0** - <@1325403477765132341> (Open on website for full quality) (relaxed)",
        "imagine [<https://s.mj.run/X-tG9-sshyk> Aerial photography --ar 16:9 --v 6.0] relaxed"),
    ("**<https://s.mj.run/pnvVhedeTbw> cat --fast --video 1 --aspect 1:1** - <@1091167368845213706> [(Open on website for full quality)](<https://midjourney.com/jobs/b21f08de-3d62-49aa-b38f-e06eddec9765>) (fast)",
        "video [<https://s.mj.run/pnvVhedeTbw> cat --fast --video 1 --aspect 1:1] fast"),
    ("**** - <@123> (fast)", "blend [] fast"),
    ("**--v 7.0 --ar 1:1** - <@123> (relaxed)", "blend [--v 7.0 --ar 1:1] relaxed"),
    ("**<https://s.mj.run/JWu6jaL1D-8> <https://s.mj.run/QhfnQY-l68o> --v 5.1** - <@1012983546824114217> (relaxed)",
        "blend [<https://s.mj.run/JWu6jaL1D-8> <https://s.mj.run/QhfnQY-l68o> --v 5.1] relaxed"),
    ("**<https://s.mj.run/JWu6jaL1D-8> a cat** - <@123> (fast)", "imagine [<https://s.mj.run/JWu6jaL1D-8> a cat] fast"),
    // Statuses Midjourney never writes: no progress, no result, nothing for a job.
    ("**a cat** - <@123> (-5%) (fast)", "ignore [a cat] fast"),
    ("**a cat** - <@123> (- 5%) (fast)", "ignore [a cat] fast"),
    ("**a cat** - <@123> (+5%) (fast)", "ignore [a cat] fast"),
    ("**a cat** - <@123> (150%) (fast)", "ignore [a cat] fast"),
    ("**a cat** - <@123> (100.5%) (fast)", "ignore [a cat] fast"),
    ("**a cat** - <@123> (99999999999999999999%) (fast)", "ignore [a cat] fast"),
    ("**a cat** - Image #0 <@123>", "ignore [a cat]"),
    ("**a cat** - Image #5 <@123>", "ignore [a cat]"),
    ("**a cat** - Image #300 <@123>", "ignore [a cat]"),
    ("**a cat** - Image # <@123>", "ignore [a cat]"),
    ("Upscaling image #5 with **a cat** - <@123> (Waiting to start)", "ignore [a cat]"),
    // The /show DM reads as such (its job id and seed: `show_reply_gives_job_id_and_seed`).
    ("**a cat**\n**Job ID**: b21f08de-3d62-49aa-b38f-e06eddec9765\n**seed** 1234", "show [a cat]"),
    // Not job lines: acknowledgements, video intermediates, empty content.
    ("Done! Your jobs now use fast mode.", "ignore"),
    ("Displaying...", "ignore"),
    ("Remix mode turned on! You can disable it by running `/prefer remix` again.", "ignore"),
    ("", "ignore"),
];

#[test]
fn job_lines_accepted_by_every_proxy() {
    for (content, expected) in JOB_LINES {
        assert_eq!(
            summary(&read_content(content, true)),
            *expected,
            "content {content:?}"
        );
    }
}

#[test]
fn a_job_line_without_image_or_buttons_is_still_in_progress() {
    for content in [
        "**a cat** - <@123> (fast)",
        "**a cat** - Image #2 <@123>",
        "**a cat** - Zoom Out by <@123> (fast)",
    ] {
        assert_eq!(
            read_content(content, false).kind,
            Kind::Progress,
            "{content}"
        );
    }
}

#[test]
fn stopped_is_a_job_failure() {
    let r = read_content("**a cat** - <@123> (Stopped)", false);
    let error = r.error.expect("stopped is an error");
    assert_eq!(
        (error.code, error.fatal_for),
        (ErrorCode::Stopped, FatalFor::Job)
    );
    assert_eq!(
        error.message.as_deref(),
        Some("**a cat** - <@123> (Stopped)")
    );
}

#[test]
fn mention_gives_the_user_when_there_is_no_interaction() {
    assert_eq!(
        read_content("**a cat** - <@!4242> (fast)", true)
            .user_id
            .as_deref(),
        Some("4242")
    );
}

#[test]
fn imagine_shape_is_told_apart_by_the_interaction() {
    let content = "**<https://s.mj.run/a> <https://s.mj.run/b>** - <@123> (fast)";
    let cases = [
        (
            json!({"interaction_metadata": {"id": "9", "type": 2, "name": "imagine"}}),
            Kind::Imagine,
        ),
        (
            json!({"interaction": {"id": "9", "type": 2, "name": "blend"}}),
            Kind::Blend,
        ),
        (
            json!({"interaction_metadata": {"id": "9", "type": 3, "interacted_message_id": "8"}}),
            Kind::Reroll,
        ),
        (
            json!({"interaction_metadata": {"id": "9", "type": 5}}),
            Kind::Reroll,
        ),
        (json!({}), Kind::Blend),
    ];
    for (extra, kind) in cases {
        let mut m = message(content, true);
        for (key, value) in extra.as_object().expect("object") {
            m[key] = value.clone();
        }
        assert_eq!(read(&m, &[]).expect("reads").kind, kind, "{extra}");
    }
}

#[test]
fn an_mp4_result_is_video() {
    let mut m = message("**a cat walking** - <@123> (fast)", false);
    m["attachments"] = json!([{"url": "https://cdn.midjourney.com/video/x/0.mp4", "filename": "b21f08de-3d62-49aa-b38f-e06eddec9765_0.mp4", "content_type": "video/mp4"}]);
    let r = read(&m, &[]).expect("reads");
    assert_eq!(
        (r.kind, r.job_hash.as_deref()),
        (Kind::Video, Some("b21f08de-3d62-49aa-b38f-e06eddec9765"))
    );
}

// ---------------------------------------------------------------------------------------------
// Errors (§4)

fn embed_message(title: &str, description: &str, colour: u64) -> Value {
    json!({
        "id": "1", "channel_id": "2", "author": {"id": MJ}, "content": "",
        "embeds": [{"title": title, "description": description, "color": colour}],
    })
}

#[test]
fn error_titles_map_to_codes_and_scope() {
    use ErrorCode as C;
    use FatalFor::{Account, Job};
    let cases = [
        ("Banned prompt", C::BannedPrompt, Job),
        ("Banned image prompt", C::BannedPrompt, Job),
        (
            "Request cancelled due to output filters",
            C::BannedPrompt,
            Job,
        ),
        ("Invalid prompt", C::InvalidParameter, Job),
        ("Empty prompt", C::InvalidParameter, Job),
        ("Invalid link!", C::InvalidParameter, Job),
        ("Duplicate images detected", C::InvalidParameter, Job),
        ("Invalid request", C::InvalidRequest, Job),
        ("Job action restricted", C::InvalidRequest, Job),
        ("QUEUE FULL", C::QueueFull, Job),
        ("Plan Cancelled", C::SubscriptionRequired, Account),
        ("Subscription paused", C::SubscriptionRequired, Account),
        ("Blocked", C::Blocked, Account),
        ("Action required to continue", C::Captcha, Account),
        ("Please complete the task", C::Captcha, Account),
        ("Tos not accepted", C::TosNotAccepted, Account),
        ("  Credits exhausted  ", C::InsufficientCredits, Account),
        ("Something went wrong", C::ProviderError, Job),
        ("Could not complete", C::ProviderError, Job),
        ("Image denied", C::ProviderError, Job),
    ];
    for (title, code, fatal_for) in cases {
        // Colour is irrelevant for known titles; the unknown ones above fail by wording or red.
        let colour = if title == "Something went wrong" {
            16_711_680
        } else {
            0
        };
        let r = read(&embed_message(title, "details", colour), &[]).expect("reads");
        let error = r.error.unwrap_or_else(|| panic!("{title}: no error"));
        assert_eq!(
            (r.kind, error.code, error.fatal_for),
            (Kind::Error, code, fatal_for),
            "{title}"
        );
        assert_eq!(error.message.as_deref(), Some("details"));
    }
}

#[test]
fn an_unknown_warning_is_reported_but_fails_nothing() {
    let r = read(
        &embed_message("Heads up", "Fast hours are running low.", 16_776_960),
        &[],
    )
    .expect("reads");
    assert_eq!(r.kind, Kind::Ignore);
    let error = r.error.expect("warning is reported");
    assert_eq!(
        (error.code, error.fatal_for),
        (ErrorCode::Warning, FatalFor::None)
    );
}

#[test]
fn a_plain_embed_is_not_an_error() {
    let r = read(
        &embed_message(
            "Your info - atelier_tester",
            "**Subscription**: Standard",
            0,
        ),
        &[],
    )
    .expect("reads");
    assert_eq!((r.kind, r.error), (Kind::Ignore, None));
}

#[test]
fn content_failures_and_captcha_buttons() {
    let r = read_content("Failed to process your command :(", false);
    let error = r.error.expect("failure");
    assert_eq!(
        (r.kind, error.code, error.fatal_for),
        (Kind::Error, ErrorCode::ProviderUnavailable, FatalFor::Job)
    );

    let mut m = message("", false);
    m["components"] =
        json!([{"type": 1, "components": [{"type": 2, "custom_id": "MJ::Captcha::a"}]}]);
    let error = read(&m, &[]).expect("reads").error.expect("captcha");
    assert_eq!(
        (error.code, error.fatal_for),
        (ErrorCode::Captcha, FatalFor::Account)
    );
}

#[test]
fn reported_openings_are_errors_with_or_without_title_colour_or_embed() {
    use ErrorCode as C;
    use FatalFor::{Account, Job};
    #[rustfmt::skip]
    let cases = [
        ("Sorry! Our AI moderator thinks this prompt is probably against our community standards.", C::BannedPrompt, Job),
        ("**Sorry!** Our AI moderators feel your prompt might be against our community standards.", C::BannedPrompt, Job),
        ("You have a pending moderation message. Please acknowledge it before using the bot further.", C::Moderation, Account),
        ("You have been blocked from accessing Midjourney. This happens on repeated or serious ToS violations.", C::Blocked, Account),
        ("Wow! You're making so many AI images we need to verify you're human 😂", C::Captcha, Account),
        ("⚠️ Wow! You\u{2019}re making so many AI images we need to verify you\u{2019}re human", C::Captcha, Account),
        ("Could not validate this link. Please try again later.", C::InvalidParameter, Job),
    ];
    for (text, code, fatal_for) in cases {
        let no_title = json!({"id": "1", "channel_id": "2", "author": {"id": MJ}, "content": "",
            "embeds": [{"description": text}]});
        let empty_title = embed_message("", text, 0);
        let unknown_title = embed_message("Midjourney", text, 16_776_960);
        let mut forms = vec![no_title, empty_title, unknown_title];
        // As content, bold text would be a job line's prompt; Midjourney writes these plain.
        if !text.starts_with("**") {
            forms.push(message(text, false));
            forms.push(message(&format!("<@123> {text}"), false));
        }
        for m in forms {
            let r = read(&m, &[]).expect("reads");
            let error = r.error.unwrap_or_else(|| panic!("{text}: no error in {m}"));
            assert_eq!(
                (r.kind, error.code, error.fatal_for),
                (Kind::Error, code, fatal_for),
                "{m}"
            );
            assert!(
                error.message.as_deref().is_some_and(|t| t.contains(text)),
                "{m}"
            );
        }
    }
}

#[test]
fn error_words_inside_a_users_text_are_not_errors() {
    // A prompt may say anything: a job line, or a /shorten analysis quoting it, is still that
    // job's message.
    let line = "**You have been blocked from accessing Midjourney, a poster** - <@123> (fast)";
    assert_eq!(
        summary(&read_content(line, true)),
        "imagine [You have been blocked from accessing Midjourney, a poster] fast"
    );
    let progress = "**Sorry! Our AI moderator thinks so, a comic** - <@123> (12%) (fast)";
    assert_eq!(read_content(progress, true).kind, Kind::Progress);
    let shorten = json!({
        "id": "1", "channel_id": "2", "author": {"id": MJ}, "content": "",
        "embeds": [{
            "description": "**Important tokens**\nyou have a pending moderation message\n\n**Shortened prompts**\n\
                1️⃣ You have a pending moderation message. Please acknowledge it\n2️⃣ pending moderation message",
            "footer": {"text": "Click on a button to imagine one of the shortened prompts"},
        }],
    });
    let r = read(&shorten, &[]).expect("reads");
    assert_eq!((r.kind, r.error), (Kind::Shorten, None));
}

#[test]
fn a_message_with_the_cancel_button_is_still_running() {
    // Without a percentage, an image and a button would read as a finished grid: the cancel
    // button says the job runs, and it gives the job's id before any result exists.
    let hash = "b21f08de-3d62-49aa-b38f-e06eddec9765";
    let cancel = json!([{"type": 1, "components": [{"type": 2, "custom_id": format!("MJ::CancelJob::ByJobid::{hash}")}]}]);
    let mut m = message("**a cat** - <@123> (fast)", true);
    m["components"] = cancel.clone();
    let r = read(&m, &[]).expect("reads");
    assert_eq!(
        (r.kind, r.job_hash.as_deref()),
        (Kind::Progress, Some(hash))
    );
    let mut m = message("**a cat** - <@123> (Waiting to start)", false);
    m["components"] = cancel;
    let r = read(&m, &[]).expect("reads");
    assert_eq!((r.kind, r.job_hash.as_deref()), (Kind::Waiting, Some(hash)));
}

#[test]
fn an_attachment_alone_is_a_preview_only_when_named_like_one() {
    let hash = "b21f08de-3d62-49aa-b38f-e06eddec9765";
    let with = |filename: &str, url: &str| {
        let mut m = message("", false);
        m["attachments"] = json!([{"url": url, "filename": filename}]);
        read(&m, &[]).expect("reads")
    };
    let eph = |f: &str| {
        format!("https://cdn.discordapp.com/ephemeral-attachments/2/3/{f}?ex=1&is=2&hm=3&")
    };
    for name in [
        format!("{hash}_0_step_7.jpeg"),
        format!("{hash}_3_step_12.webp"),
        format!("{hash}_grid_0.webp"),
        format!("{hash}.png"),
    ] {
        let r = with(&name, &eph(&name));
        assert_eq!(
            (r.kind, r.job_hash.as_deref(), r.progress),
            (Kind::Progress, Some(hash), None),
            "{name}"
        );
    }
    // Not previews: a picture without a job id, a step name without a step number.
    for name in ["photo.png".to_owned(), format!("{hash}_0_step_.jpeg")] {
        let url = format!("https://cdn.discordapp.com/attachments/2/3/{name}");
        assert_eq!(with(&name, &url).kind, Kind::Ignore, "{name}");
    }
}

#[test]
fn show_reply_gives_job_id_and_seed() {
    let hash = "b21f08de-3d62-49aa-b38f-e06eddec9765";
    let cases = [
        (
            format!("**a cat --v 7**\n**Job ID**: {hash}\n**seed** 1234"),
            Some("a cat --v 7"),
            Some(1234),
        ),
        (
            format!("**Job ID:** {hash}\n**Seed:** 4294967295"),
            None,
            Some(u32::MAX),
        ),
        (
            format!("**a cat**\n**Job ID**: {hash}"),
            Some("a cat"),
            None,
        ),
        (
            format!("**a cat**\n**Job ID**: {hash}\n**seed** 4294967296"),
            Some("a cat"),
            None,
        ),
    ];
    for (content, prompt, seed) in cases {
        let r = read_content(&content, false);
        assert_eq!(
            (r.kind, r.job_hash.as_deref(), r.prompt.as_deref(), r.seed),
            (Kind::Show, Some(hash), prompt, seed),
            "{content}"
        );
    }
    // A seed without a job id names no job.
    assert_eq!(
        read_content("**a cat**\n**seed** 1234", false).kind,
        Kind::Ignore
    );
}

// ---------------------------------------------------------------------------------------------
// Liberal field handling

#[test]
fn nulls_wrong_types_and_missing_optionals_read_as_absent() {
    let m = json!({
        "id": 1_268_751_196_351_209_472_u64, "channel_id": "  1162401122461745222 ", "author": null,
        "content": "**a cat** - <@123> (Waiting to start)", "nonce": 1_268_751_189_838_086_144_u64,
        "interaction": null, "interaction_metadata": "oops", "attachments": null, "components": {"type": 1},
        "embeds": [null, 3, "x"], "flags": "64", "message_reference": {"message_id": null},
        "referenced_message": {"id": 77}, "mentions": null,
    });
    let r = read(&m, &[]).expect("reads");
    assert_eq!(
        r.kind,
        Kind::Waiting,
        "an unknown author is read, not ignored"
    );
    assert_eq!(r.message_id, "1268751196351209472");
    assert_eq!(r.channel_id, "1162401122461745222");
    assert_eq!(r.nonce.as_deref(), Some("1268751189838086144"));
    assert_eq!(r.referenced_message_id.as_deref(), Some("77"));
    assert_eq!(
        (r.author_id, r.interaction_id, r.attachment),
        (None, None, None)
    );
    assert_eq!(r.flags, Flags::default());
}

#[test]
fn interaction_metadata_wins_and_fields_are_merged() {
    let mut m = message("**a cat** - <@123> (fast)", true);
    m["interaction"] = json!({"id": "1", "type": 2, "name": "imagine", "user": {"id": "555"}});
    m["interaction_metadata"] = json!({"id": "2", "type": 2, "user_id": "556"});
    let r = read(&m, &[]).expect("reads");
    assert_eq!(
        (r.interaction_id.as_deref(), r.user_id.as_deref(), r.kind),
        (Some("2"), Some("556"), Kind::Imagine)
    );
}

#[test]
fn a_whole_gateway_dispatch_is_unwrapped() {
    let (_, input) = fixture!("waiting");
    let dispatch = format!(r#"{{"op":0,"t":"MESSAGE_CREATE","s":7,"d":{input}}}"#);
    let r = read_json(dispatch.as_bytes(), &[]).expect("reads");
    assert_eq!(
        (r.kind, r.message_id.as_str()),
        (Kind::Waiting, PROGRESS_MESSAGE)
    );
}

#[test]
fn buttons_are_collected_through_nested_layouts() {
    let mut m = message("", false);
    m["components"] = json!([
        {"type": 17, "components": [
            {"type": 9, "components": [{"type": 10, "content": "x"}],
             "accessory": {"type": 2, "custom_id": "MJ::A"}},
            {"type": 1, "components": [{"type": 2, "custom_id": "MJ::B"}, {"type": 2, "style": 5, "url": "https://x"}]},
        ]},
        {"type": 1, "components": [{"type": 3, "custom_id": "MJ::C", "options": []}]},
    ]);
    assert_eq!(
        read(&m, &[]).expect("reads").buttons,
        ["MJ::A", "MJ::B", "MJ::C"]
    );
}

#[test]
fn job_hash_sources_in_order() {
    let uuid = "b21f08de-3d62-49aa-b38f-e06eddec9765";
    let other = "00000000-1111-4222-8333-444444444444";
    let with = |content: &str, filename: &str, url: &str, buttons: &Value| {
        let mut m = message(content, false);
        m["attachments"] = json!([{"filename": filename, "url": url}]);
        m["components"] = buttons.clone();
        read(&m, &[]).expect("reads").job_hash
    };
    let none = json!([]);
    let job_row = json!([{"type": 1, "components": [
        {"type": 2, "custom_id": format!("MJ::BOOKMARK::{other}")},
        {"type": 2, "custom_id": format!("MJ::JOB::upsample::1::{uuid}")}]}]);
    let outpaint = json!([{"type": 1, "components": [{"type": 2, "custom_id": format!("MJ::Outpaint::50::1::{uuid}::SOLO")}]}]);
    let web_button = json!([{"type": 1, "components": [{"type": 2, "style": 5, "url": format!("https://www.midjourney.com/jobs/{uuid}")}]}]);
    let line = "**a cat** - <@1> (fast)";
    assert_eq!(
        with(line, "x.png", "https://x/x.png", &job_row).as_deref(),
        Some(uuid),
        "MJ::JOB first"
    );
    assert_eq!(
        with(line, "x.png", "https://x/x.png", &outpaint).as_deref(),
        Some(uuid),
        "any MJ button"
    );
    assert_eq!(
        with(line, &format!("{uuid}_0_0.png"), "https://x", &none).as_deref(),
        Some(uuid),
        "filename"
    );
    assert_eq!(
        with(line, &format!("{uuid}_grid_0.webp"), "https://x", &none).as_deref(),
        Some(uuid),
        "preview"
    );
    let linked = format!(
        "**a cat --sref https://cdn.midjourney.com/{other}/0_0.png** - <@1> [(Open on website for full quality)](<https://midjourney.com/jobs/{uuid}>) (fast)"
    );
    assert_eq!(
        with(&linked, "0_0.png", "https://x", &none).as_deref(),
        Some(uuid),
        "job link, not the prompt's URL"
    );
    assert_eq!(
        with(line, "0_0.png", "https://x", &web_button).as_deref(),
        Some(uuid),
        "link button"
    );
    assert_eq!(
        with(
            line,
            "0_0.png",
            &format!("https://cdn.midjourney.com/{uuid}/0_0.png"),
            &none
        )
        .as_deref(),
        Some(uuid),
        "url"
    );
    assert_eq!(with(line, "grid.png", "https://x/grid.png", &none), None);
}

#[test]
fn a_thinking_placeholder_of_our_command_is_waiting() {
    let mut m = message("", false);
    m["flags"] = json!(128);
    assert_eq!(
        read(&m, &[]).expect("reads").kind,
        Kind::Ignore,
        "no interaction: not ours to wait for"
    );
    m["interaction_metadata"] = json!({"id": "9", "type": 2, "name": "imagine"});
    assert_eq!(read(&m, &[]).expect("reads").kind, Kind::Waiting);
}

#[test]
fn flags_bits() {
    let mut m = message("", false);
    m["flags"] = json!(192);
    assert_eq!(
        read(&m, &[]).expect("reads").flags,
        Flags {
            raw: 192,
            ephemeral: true,
            loading: true
        }
    );
}

#[test]
fn kinds_that_deliver_results() {
    assert!(Kind::Upscale.is_result() && Kind::Describe.is_result());
    assert!(!Kind::Progress.is_result() && !Kind::Error.is_result() && !Kind::Ignore.is_result());
}

// ---------------------------------------------------------------------------------------------
// Typed input errors

#[test]
fn bad_inputs_give_one_line_typed_errors() {
    let cases: [(&[u8], &str); 12] = [
        (b"", "input is empty"),
        (b" \n\t ", "input is empty"),
        (b"\xEF\xBB\xBF", "input is empty"),
        (b"{", "input is not valid JSON"),
        (b"{\"id\": \"1\",}", "input is not valid JSON"),
        (b"\xff\xfe{}", "input is not valid JSON"),
        (b"[]", "got an array"),
        (b"null", "got null"),
        (b"\"hello\"", "got a string"),
        (b"{}", "no `id` field"),
        (
            br#"{"id": "1", "channel_id": null}"#,
            "no `channel_id` field",
        ),
        (
            br#"{"id": {"x": 1}, "channel_id": "2"}"#,
            "`id` is not a Discord id",
        ),
    ];
    for (input, expected) in cases {
        let error = read_json(input, &[]).expect_err("must fail");
        let text = error.to_string();
        assert!(text.contains(expected), "{input:?}: {text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
    assert!(matches!(
        read_json(b"{\"id\":\"\",\"channel_id\":\"2\"}", &[]),
        Err(ReadError::BadId("id"))
    ));
    assert!(matches!(
        read(&json!(1.5), &[]),
        Err(ReadError::NotAnObject("a number"))
    ));
}

// ---------------------------------------------------------------------------------------------
// Never panic

const ALL_FIXTURES: [(&str, &str); 30] = [
    fixture!("waiting"),
    fixture!("progress_0"),
    fixture!("progress_31"),
    fixture!("progress_62"),
    fixture!("progress_93"),
    fixture!("imagine_grid"),
    fixture!("imagine_grid_2025"),
    fixture!("upscale"),
    fixture!("upscale_creative"),
    fixture!("variation_strong"),
    fixture!("variation_subtle"),
    fixture!("zoom"),
    fixture!("pan"),
    fixture!("describe"),
    fixture!("blend"),
    fixture!("shorten"),
    fixture!("error_banned_prompt"),
    fixture!("error_invalid_parameter"),
    fixture!("error_queue_full"),
    fixture!("error_job_queued"),
    fixture!("error_credits_exhausted"),
    fixture!("error_subscription_required"),
    fixture!("error_pending_mod"),
    fixture!("error_action_needed"),
    fixture!("error_captcha"),
    fixture!("error_ai_moderator"),
    fixture!("other_user"),
    fixture!("other_bot"),
    fixture!("ephemeral_settings"),
    fixture!("niji_upscale"),
];

/// Deterministic xorshift; the tests need variety, not a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    for (name, input) in ALL_FIXTURES {
        let bytes = input.as_bytes();
        // Every cut in the first KiB (inside the first fields), then every 7th byte.
        for end in (0..bytes.len()).filter(|end| *end < 1024 || end % 7 == 0) {
            let _ = read_json(&bytes[..end], &[]);
        }
        assert!(read_json(bytes, &[]).is_ok(), "{name} reads whole");
    }
}

/// Bytes that break JSON structure, the content grammar, or UTF-8.
const MUTATIONS: &[u8] = b"{}[]\":,*()<@#%-0123456789 \\\n\xff\xe2";

#[test]
fn mutated_fixtures_and_garbage_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (_, input) in ALL_FIXTURES {
        for _ in 0..200 {
            let mut bytes = input.as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = MUTATIONS[rng.below(MUTATIONS.len())];
            }
            let _ = read_json(&bytes, &[]);
        }
    }
    for _ in 0..2000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
        let _ = read_json(&bytes, &[]);
    }
}

#[test]
fn adversarial_contents_never_panic() {
    const PIECES: [&str; 24] = [
        "**",
        "*",
        " - ",
        "-",
        "<@",
        "<@!",
        "123",
        ">",
        "(",
        ")",
        "%",
        "(31%)",
        "(fast)",
        "Image #",
        "#",
        " by ",
        "Variations",
        "\n",
        "é",
        "1\u{fe0f}\u{20e3}",
        "🦊",
        "\u{a0}",
        "[(Open on website for full quality)](<",
        "/jobs/b21f08de-3d62-49aa-b38f-e06eddec9765",
    ];
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let content: String = (0..rng.below(12))
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect();
        let mut m = message(&content, rng.below(2) == 0);
        m["embeds"] = json!([{"title": content.clone(), "description": content.clone(), "footer": {"text": format!("/imagine {content}")}}]);
        let _ = read(&m, &[]);
    }
}

#[test]
fn huge_and_deep_inputs_never_panic() {
    let huge = format!(
        r#"{{"id":"1","channel_id":"2","author":{{"id":"{MJ}"}},"content":"**{}** - <@1> ({}%) (fast)"}}"#,
        "fox ".repeat(1_000_000),
        "9".repeat(100_000)
    );
    let r = read_json(huge.as_bytes(), &[]).expect("reads");
    // A percentage far above 100 is no progress Midjourney writes: unreadable, not a result.
    assert_eq!((r.kind, r.progress), (Kind::Ignore, None));

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        read_json(deep.as_bytes(), &[]),
        Err(ReadError::Json(_))
    ));

    let mut nested = json!({"type": 2, "custom_id": "MJ::deep"});
    for _ in 0..100 {
        nested = json!({"type": 1, "components": [nested]});
    }
    let mut m = message("", false);
    m["components"] = json!([nested]);
    assert!(
        read(&m, &[]).expect("reads").buttons.is_empty(),
        "depth is capped, not followed forever"
    );
}
