//! `POST /mj/submit/video`, the video submit of the proxies that added Midjourney's video: its
//! body mapped onto what Atelier already plays. Without `action`, a start frame (`image`, a URL
//! put first in the prompt as it is, or a picture sent inline, stored as the caller's import
//! and used as an image prompt) animated by an imagine of `prompt` with `--video --motion m`
//! (and `--loop`, `--end URL`, `--bs n`), whose clips are upscaled with it; without `image`
//! but with `taskId`, Animate pressed on that task's picture `index`. With `action: "extend"`,
//! Extend pressed on the task's clip `index` (0–3). Answered in the proxy's envelope like the
//! other submits; the task's `action` is `VIDEO`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::super::auth::Caller;
use super::super::input::Body;
use super::super::{Problem, Shared};
use super::envelope::{self, Envelope, MjError};
use super::{caller, hook, imagine_with_pictures, pictures, state, submitted, tasks};
use crate::app::GenerationWithImages;
use crate::domain::{GenerationRequest, GenerationStatus, ImageId, Motion, Role, UpscaleSelection};

/// Standard definition, the proxies' default `videoType`: what Midjourney's Discord makes.
const SD: &str = "vid_1.1_i2v_480";
/// High definition, which no parameter of Midjourney's Discord prompt asks for.
const HD: &str = "vid_1.1_i2v_720";

/// `POST /mj/submit/video`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VideoRequest {
    /// What happens in the clip (optional with a start frame; ignored by `extend`).
    prompt: Option<String>,
    /// `low` (default) or `high`.
    motion: Option<String>,
    /// The start frame: a picture's URL, or the picture as a data URL or bare base64.
    image: Option<String>,
    /// The last frame (`--end`), a URL or the picture as a data URL or base64; not with `loop`.
    end_image: Option<String>,
    /// Ends where it starts (`--loop`).
    #[serde(rename = "loop")]
    looped: Option<bool>,
    /// `extend`: the clip `index` of task `taskId` made longer.
    action: Option<String>,
    /// The task whose clip is extended (or, without `image`, whose picture is animated).
    task_id: Option<String>,
    /// The clip (or picture) of the task, 0 to 3.
    index: Option<i64>,
    /// `vid_1.1_i2v_480` (default); `vid_1.1_i2v_720` (HD) is refused.
    video_type: Option<String>,
    /// Clips made, 1, 2 or 4 (default, Midjourney's); each is upscaled with the grid.
    batch_size: Option<i64>,
    /// Receives the task object on each change.
    notify_hook: Option<String>,
    /// `MID_JOURNEY` (default) or `NIJI_JOURNEY`.
    bot_type: Option<String>,
    /// The caller's own string (at most 255 characters), kept with the task.
    state: Option<String>,
    /// Accepted and ignored (the proxy's choice of Discord account).
    #[expect(dead_code, reason = "accepted as the proxy documents it, and ignored")]
    #[schema(value_type = Option<Object>)]
    account_filter: Option<Value>,
    /// Accepted and ignored: pictures are always served by this server's links.
    #[expect(dead_code, reason = "accepted as the proxy documents it, and ignored")]
    no_storage: Option<bool>,
}

/// What a video body asks for.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// An imagine with `--video`: `prompt` as sent (a start frame's URL first), `start` and
    /// `end` the start and end frames sent inline (their data URLs or base64), `upscale` the
    /// clips kept with the video grid.
    Imagine {
        prompt: String,
        start: Option<String>,
        end: Option<String>,
        upscale: Vec<u8>,
    },
    /// Animate (`animate-high|low`) on picture `index` (0-based) of task `task`.
    Animate {
        task: String,
        index: u8,
        motion: Motion,
    },
    /// Extend (`extend-high|low`) on clip `index` (0-based) of task `task`.
    Extend {
        task: String,
        index: u8,
        motion: Motion,
    },
}

/// Reads a video body into what it asks for, or says why not (code 4).
fn plan(body: &VideoRequest) -> Result<Plan, String> {
    match body.video_type.as_deref().map(str::trim) {
        None | Some("" | SD) => {}
        Some(HD) => {
            return Err(format!(
                "videoType {HD} (HD) is not supported by this server: Midjourney's Discord prompt has no parameter for a clip's resolution; send {SD}"
            ));
        }
        Some(other) => {
            return Err(format!("videoType must be {SD} or {HD}, not {other:?}"));
        }
    }
    let motion = match body.motion.as_deref().map(str::trim) {
        None | Some("") => Motion::Low,
        Some(m) if m.eq_ignore_ascii_case("low") => Motion::Low,
        Some(m) if m.eq_ignore_ascii_case("high") => Motion::High,
        Some(other) => return Err(format!("motion must be low or high, not {other:?}")),
    };
    let task = body
        .task_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let index = |what: &str| -> Result<u8, String> {
        match body.index {
            None => Err(format!(
                "{what} needs index, the task's picture or clip (0 to 3)"
            )),
            Some(i) => u8::try_from(i)
                .ok()
                .filter(|i| *i <= 3)
                .ok_or_else(|| format!("index must be 0 to 3, not {i}")),
        }
    };
    let image = body
        .image
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty());
    // What only a new video from a start frame takes, refused on a task's picture or clip
    // rather than dropped.
    let on_task = |what: &str| -> Result<(), String> {
        let given: Vec<&str> = [
            ("image", image.is_some()),
            (
                "endImage",
                body.end_image
                    .as_deref()
                    .is_some_and(|e| !e.trim().is_empty()),
            ),
            ("loop", body.looped == Some(true)),
            ("batchSize", body.batch_size.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if given.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what} takes no {}: they make a new video from a start frame (leave out taskId)",
                given.join(", ")
            ))
        }
    };
    match body.action.as_deref().map(str::trim) {
        None | Some("") => {}
        Some(a) if a.eq_ignore_ascii_case("extend") => {
            let task = task.ok_or("action extend needs taskId, the task whose clip is extended")?;
            on_task("action extend")?;
            return Ok(Plan::Extend {
                task: task.to_owned(),
                index: index("action extend")?,
                motion,
            });
        }
        Some(other) => return Err(format!("action must be extend or left out, not {other:?}")),
    }
    let Some(image) = image else {
        return match task {
            Some(task) => {
                on_task("Animate of a task's picture (taskId)")?;
                Ok(Plan::Animate {
                    task: task.to_owned(),
                    index: index("Animate of a task's picture (taskId)")?,
                    motion,
                })
            }
            None => Err(
                "image is required: the start frame, as a URL or base64 (or taskId and index to animate a task's picture)"
                    .into(),
            ),
        };
    };
    if task.is_some() || body.index.is_some() {
        return Err(
            "image and taskId are two ways to start a video: send the start frame, or taskId and index to animate a task's picture, not both"
                .into(),
        );
    }
    let bs = match body.batch_size {
        None => 4,
        Some(n @ (1 | 2 | 4)) => n as u8,
        Some(n) => return Err(format!("batchSize must be 1, 2 or 4, not {n}")),
    };
    url_or_picture(image, "image")?;
    let (first, start) = if is_url(image) {
        (Some(image.to_owned()), None)
    } else {
        (None, Some(image.to_owned()))
    };
    let mut words: Vec<String> = first.into_iter().collect();
    if let Some(text) = body
        .prompt
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        words.push(text.to_owned());
    }
    words.push(format!("--video --motion {}", motion.as_str()));
    if body.looped == Some(true) {
        words.push("--loop".into());
    }
    let mut end = None;
    match body
        .end_image
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(url) if url_or_picture(url, "endImage")? => words.push(format!("--end {url}")),
        // Uploaded like the start frame; the provider writes its `--end`.
        Some(inline) => end = Some(inline.to_owned()),
        None => {}
    }
    // Four is Midjourney's own batch size: said only when it differs.
    if bs != 4 {
        words.push(format!("--bs {bs}"));
    }
    Ok(Plan::Imagine {
        prompt: words.join(" "),
        start,
        end,
        upscale: (1..=bs).collect(),
    })
}

/// A URL as the prompt takes it: http or https, a host, one word.
fn is_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !text.contains(char::is_whitespace)
    })
}

/// Whether `text` (field `field`) is a URL (`true`) or a picture sent inline (`false`): a
/// value with a scheme that is not a data URL must be an http(s) URL with a host, since base64
/// holds no `:`.
fn url_or_picture(text: &str, field: &str) -> Result<bool, String> {
    if is_url(text) {
        return Ok(true);
    }
    if text.contains(':') && !text.starts_with("data:") {
        return Err(format!(
            "{field} must be an http(s) URL with a host, or a picture as a data URL or base64"
        ));
    }
    Ok(false)
}

/// Image `index` (0-based) of a task: its upscale `index + 1`, or its one result for index 0.
fn picked(task: &GenerationWithImages, index: u8, what: &str) -> Result<ImageId, MjError> {
    let by_upscale = task
        .images
        .iter()
        .find(|i| i.role == Role::Upscale(index + 1));
    let single = (index == 0)
        .then(|| task.images.iter().find(|i| i.role == Role::Variant(1)))
        .flatten();
    by_upscale.or(single).map(|i| i.id).ok_or_else(|| {
        MjError::invalid(format!(
            "task {} has no {what} {index}: press its U{} button first",
            task.generation.id,
            index + 1
        ))
    })
}

#[utoipa::path(
    post,
    path = "/mj/submit/video",
    tag = "midjourney-proxy",
    operation_id = "mj_submit_video",
    summary = "midjourney-proxy: a clip from a start frame, or a task's clip extended",
    description = "Without `action`: the start frame `image` (a URL, put first in the prompt, or a data URL / base64, stored as the caller's import and used as an image prompt) animated by an imagine of `prompt` with `--video --motion low|high`, `--loop` (`loop: true`), `--end URL` (`endImage`: a URL, or a picture sent inline, stored and uploaded like the start frame) and `--bs n` (`batchSize` 1, 2 or 4; that many clips are upscaled with the video grid); without `image`, `taskId` and `index` animate that task's picture. With `action: \"extend\"`, `taskId` and `index` (0–3): the task's clip extended. `videoType` `vid_1.1_i2v_720` (HD) is refused; `state` comes back in the task; `accountFilter` and `noStorage` are ignored. The task's `action` is `VIDEO`.",
    request_body = VideoRequest,
    responses(
        (status = 200, description = "Submitted: code 1, or 22 behind others; `result` is the task id", body = Envelope),
        (status = 400, description = "Bad input (code 4): no start frame, not a picture, a bad motion, index, batchSize or videoType, HD, `loop` with `endImage`, a provider that makes no video, a task without that clip", body = Envelope),
        (status = 404, description = "No such task of the caller's (code 3)", body = Envelope),
        (status = 402, description = "Not enough credits (code 9)", body = Envelope),
        (status = 409, description = "The task has not succeeded (code 4)", body = Envelope),
        (status = 429, description = "Over the key's rate (code 9, `Retry-After`)", body = Envelope),
        (status = 503, description = "The provider's queue is full (code 23, `Retry-After`)", body = Envelope),
    )
)]
pub async fn video(
    State(s): State<Shared>,
    c: Result<Caller, Problem>,
    body: Result<Body<VideoRequest>, Problem>,
) -> Result<axum::Json<Envelope>, MjError> {
    let actor = caller(c)?;
    let Body(body) = body?;
    let plan = plan(&body).map_err(MjError::invalid)?;
    let reference = state(body.state.as_deref())?;
    let (provider, niji) = s.settings.mj_proxy.provider(body.bot_type.as_deref())?;
    let notify = body.notify_hook.as_deref();
    let (task, index, motion, word, what) = match plan {
        Plan::Imagine {
            prompt,
            start,
            end,
            upscale,
        } => {
            if !s.app.makes_clips(provider.as_deref())? {
                return Err(MjError::invalid(format!(
                    "provider {:?} makes no video: /mj/submit/video needs one that does",
                    provider.as_deref().unwrap_or("(the default)")
                )));
            }
            let mut request = GenerationRequest::new(prompt);
            request.provider = provider;
            request.client_reference = reference.map(str::to_owned);
            request.upscale = UpscaleSelection::from_indices(&upscale)
                .map_err(|e| MjError::invalid(e.to_string()))?;
            if niji {
                request.extra.insert("bot".into(), "niji".into());
            }
            let inline = pictures(&start.into_iter().collect::<Vec<_>>(), "image")?;
            let end = pictures(&end.into_iter().collect::<Vec<_>>(), "endImage")?.pop();
            let g = imagine_with_pictures(
                &s,
                actor,
                request,
                inline,
                end,
                "sent to /mj/submit/video",
                notify,
            )
            .await?;
            return Ok(submitted(&s, &g).await);
        }
        Plan::Animate {
            task,
            index,
            motion,
        } => (task, index, motion, "animate", "picture"),
        Plan::Extend {
            task,
            index,
            motion,
        } => (task, index, motion, "extend", "clip"),
    };
    // A button pressed on one of the task's results: the task's provider plays it.
    let g = tasks::visible(&s, actor, &task).await?;
    if g.generation.status != GenerationStatus::Succeeded {
        return Err(MjError::new(
            StatusCode::CONFLICT,
            envelope::VALIDATION_ERROR,
            format!(
                "task {task} is {}: a video is made from a task that succeeded",
                g.generation.status.as_str()
            ),
        ));
    }
    let image = picked(&g, index, what)?;
    let action = format!("{word}-{}", motion.as_str());
    // Checked before the hook's secret is made: bad input writes nothing.
    s.app.check_action(actor, image, &action, None).await?;
    let hook = hook(&s, actor, notify).await?;
    let made = s
        .app
        .act_notified(
            actor,
            image,
            &action,
            &UpscaleSelection::none(),
            hook,
            reference,
        )
        .await?;
    Ok(submitted(&s, &made).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> VideoRequest {
        serde_json::from_value(json).unwrap()
    }

    fn imagine(json: Value) -> (String, Option<String>, Vec<u8>) {
        match plan(&body(json)).unwrap() {
            Plan::Imagine {
                prompt,
                start,
                upscale,
                ..
            } => (prompt, start, upscale),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_start_frame_url_goes_first_in_a_video_prompt() {
        let (prompt, start, upscale) = imagine(serde_json::json!({
            "prompt": "a fox runs", "image": "https://x/a.png", "motion": "high",
            "loop": true, "batchSize": 2
        }));
        assert_eq!(
            prompt,
            "https://x/a.png a fox runs --video --motion high --loop --bs 2"
        );
        assert_eq!((start, upscale), (None, vec![1, 2]));
        // The defaults: low motion, four clips, no prompt needed.
        let (prompt, _, upscale) = imagine(serde_json::json!({
            "image": "https://x/a.png", "endImage": "https://x/e.png",
            "videoType": "vid_1.1_i2v_480"
        }));
        assert_eq!(
            prompt,
            "https://x/a.png --video --motion low --end https://x/e.png"
        );
        assert_eq!(upscale, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_start_frame_sent_inline_is_a_picture_to_import() {
        let (prompt, start, _) = imagine(serde_json::json!({
            "prompt": "waves", "image": "data:image/png;base64,iVBORw0KGgo="
        }));
        assert_eq!(prompt, "waves --video --motion low");
        assert_eq!(start.as_deref(), Some("data:image/png;base64,iVBORw0KGgo="));
        // An end frame sent inline is uploaded too: the provider writes its `--end`.
        let Ok(Plan::Imagine { prompt, end, .. }) = plan(&body(serde_json::json!({
            "image": "https://x/a.png", "endImage": "iVBORw0KGgo="
        }))) else {
            panic!("not an imagine")
        };
        assert_eq!(prompt, "https://x/a.png --video --motion low");
        assert_eq!(end.as_deref(), Some("iVBORw0KGgo="));
    }

    #[test]
    fn extend_and_animate_name_a_task_and_an_index() {
        assert_eq!(
            plan(&body(serde_json::json!({
                "action": "extend", "taskId": "t", "index": 3, "motion": "high"
            }))),
            Ok(Plan::Extend {
                task: "t".into(),
                index: 3,
                motion: Motion::High
            })
        );
        assert_eq!(
            plan(&body(serde_json::json!({"taskId": "t", "index": 0}))),
            Ok(Plan::Animate {
                task: "t".into(),
                index: 0,
                motion: Motion::Low
            })
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_in_one_line() {
        for (json, says) in [
            (
                serde_json::json!({"action": "extend", "taskId": "t"}),
                "needs index",
            ),
            (
                serde_json::json!({"action": "extend", "index": 1}),
                "needs taskId",
            ),
            (
                serde_json::json!({"action": "extend", "taskId": "t", "index": 7}),
                "index must be 0 to 3, not 7",
            ),
            (
                serde_json::json!({"action": "extend", "taskId": "t", "index": -1}),
                "not -1",
            ),
            (
                serde_json::json!({"action": "shorten", "taskId": "t", "index": 1}),
                "action must be extend",
            ),
            (
                serde_json::json!({"image": "https://x/a.png", "videoType": "vid_1.1_i2v_720"}),
                "(HD) is not supported",
            ),
            (
                serde_json::json!({"image": "https://x/a.png", "videoType": "vid_2"}),
                "videoType must be",
            ),
            (
                serde_json::json!({"image": "https://x/a.png", "motion": "medium"}),
                "motion must be low or high",
            ),
            (
                serde_json::json!({"image": "https://x/a.png", "batchSize": 3}),
                "batchSize must be 1, 2 or 4, not 3",
            ),
            (serde_json::json!({"prompt": "a fox"}), "image is required"),
            // Nothing is dropped: what a request cannot mean together is refused.
            (serde_json::json!({"taskId": "t"}), "needs index"),
            (
                serde_json::json!({"taskId": "t", "index": 1, "image": "https://x/a.png"}),
                "not both",
            ),
            (
                serde_json::json!({"taskId": "t", "index": 1, "loop": true}),
                "takes no loop",
            ),
            (
                serde_json::json!({"action": "extend", "taskId": "t", "index": 1, "endImage": "https://x/e.png"}),
                "takes no endImage",
            ),
            (serde_json::json!({"image": "http://"}), "with a host"),
            (serde_json::json!({"image": "ftp://x/a.png"}), "http(s) URL"),
            (
                serde_json::json!({"image": "file:///etc/passwd"}),
                "http(s) URL",
            ),
            (
                serde_json::json!({"image": "https://x/a.png", "endImage": "javascript:alert(1)"}),
                "endImage must be",
            ),
        ] {
            let refused = plan(&body(json.clone())).unwrap_err();
            assert!(refused.contains(says), "{json}: {refused}");
        }
    }
}
