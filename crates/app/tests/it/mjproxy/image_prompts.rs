//! Image prompts and video through the proxy routes: `base64Array` on `/mj/submit/imagine`
//! stored as the caller's imports and used as image prompts (on the sandbox), `/mj/submit/video`
//! against the Discord simulator (a start frame sent inline animated into a video grid and its
//! clips, then one clip extended), and bad input refused with code 4 and nothing created.

use std::sync::Arc;

use atelier::cli::simulate::{SandboxPainter, client_config};
use atelier_simulator::Timing;
use serde_json::{Value, json};

use super::{CONFIG, Proxy, data_url};
use crate::http::{Server, client, key_for};
use crate::support::DataDir;

/// A generation as the regular API shows it to `key`.
async fn generation(p: &Proxy, key: &str, id: &str) -> (u16, Value) {
    let r = client()
        .get(p.server.url(&format!("/v1/generations/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagine_takes_pictures_sent_inline_as_image_prompts() {
    let p = Proxy::start(0, "").await;
    let bare = data_url()
        .split_once(";base64,")
        .map(|(_, b)| b.to_owned())
        .unwrap();
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/imagine",
            &json!({"prompt": "a fox in these colours", "base64Array": [data_url(), bare]}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let id = r["result"].as_str().unwrap().to_owned();
    let task = p.ended(&p.alice, &id).await;
    assert_eq!(
        (task["status"].as_str(), task["action"].as_str()),
        (Some("SUCCESS"), Some("IMAGINE")),
        "{task}"
    );
    // The two pictures are alice's imports, and the generation starts from them.
    let (_, g) = generation(&p, &p.alice, &id).await;
    let inputs = g["parameters"]["inputs"]
        .as_array()
        .expect("inputs")
        .clone();
    assert_eq!(inputs.len(), 2, "{g}");
    for image in &inputs {
        let path = format!("/v1/images/{}", image.as_str().unwrap());
        let mine = client()
            .get(p.server.url(&path))
            .bearer_auth(&p.alice)
            .send()
            .await
            .unwrap();
        assert_eq!(mine.status(), 200);
        let theirs = client()
            .get(p.server.url(&path))
            .bearer_auth(&p.bob)
            .send()
            .await
            .unwrap();
        assert_eq!(theirs.status(), 404, "bob sees alice's picture");
    }
    // The older single `base64` is one image prompt.
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/imagine",
            &json!({"prompt": "a fox", "base64": data_url()}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, g) = generation(&p, &p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(g["parameters"]["inputs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_prompts_and_video_that_cannot_be_honoured_create_nothing() {
    // The niji bot type goes to a provider that takes no image prompts and makes no grid.
    let p = Proxy::start(
        0,
        "[providers.sandbox.video]\nenabled = true\n[server.mj_proxy]\nniji_provider = \"sandbox-video\"\n",
    )
    .await;
    let six: Vec<String> = (0..6).map(|_| data_url()).collect();
    let not_a_picture = "data:image/png;base64,bm90IGEgcGljdHVyZQ==";
    for (path, body, says) in [
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "base64Array": ["%%%"]}),
            "base64Array[0] is not base64",
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "base64Array": [data_url(), not_a_picture]}),
            "picture 2",
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "base64Array": six}),
            "6 image prompts: the limit is 5",
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "base64Array": [data_url()], "botType": "NIJI_JOURNEY"}),
            "takes no image prompts",
        ),
        (
            "/mj/submit/video",
            json!({"prompt": "waves", "image": data_url()}),
            "makes no video",
        ),
        (
            "/mj/submit/video",
            json!({"image": data_url(), "botType": "NIJI_JOURNEY"}),
            "takes no image prompts",
        ),
        (
            "/mj/submit/video",
            json!({"prompt": "waves"}),
            "image is required",
        ),
        (
            "/mj/submit/video",
            json!({"action": "extend", "taskId": "x"}),
            "needs index",
        ),
        (
            "/mj/submit/video",
            json!({"action": "extend", "taskId": "x", "index": 7}),
            "index must be 0 to 3, not 7",
        ),
        (
            "/mj/submit/video",
            json!({"image": data_url(), "videoType": "vid_9"}),
            "videoType must be",
        ),
        (
            "/mj/submit/video",
            json!({"image": data_url(), "videoType": "vid_1.1_i2v_720"}),
            "(HD) is not supported",
        ),
    ] {
        let (status, r) = p.post(&p.alice, path, &body).await;
        assert_eq!((status, &r["code"]), (400, &json!(4)), "{path} {body}: {r}");
        let description = r["description"].as_str().unwrap_or_default();
        assert!(description.contains(says), "{path}: {description}");
    }
    // Extend on a task that is not the caller's: not found, code 3.
    let theirs = p.imagine(&p.bob, "bob's fox").await;
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/video",
            &json!({"action": "extend", "taskId": theirs, "index": 0}),
        )
        .await;
    assert_eq!((status, &r["code"]), (404, &json!(3)), "{r}");
    assert_eq!(
        p.generations(&p.alice).await,
        0,
        "bad input created something (imports included)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_sent_with_a_submit_its_admission_refuses_are_not_stored() {
    // Credits on and none granted: every submit is refused at admission (402, code 9), and
    // the pictures sent with it must not stay behind as imports.
    let p = Proxy::start(0, "[credits]\nenabled = true\n").await;
    for (path, body) in [
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "base64Array": [data_url(), data_url()]}),
        ),
        (
            "/mj/submit/blend",
            json!({"base64Array": [data_url(), data_url()]}),
        ),
        ("/mj/submit/describe", json!({"base64": data_url()})),
    ] {
        let (status, r) = p.post(&p.alice, path, &body).await;
        assert_eq!((status, &r["code"]), (402, &json!(9)), "{path}: {r}");
    }
    assert_eq!(p.generations(&p.alice).await, 0, "imports were left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_animates_a_start_frame_then_extends_a_clip_on_midjourney() {
    let mut config = atelier_simulator::Config::new(Arc::new(SandboxPainter));
    config.image_side = 128;
    config.timing = Timing::instant();
    let sim = atelier_simulator::start(config)
        .await
        .expect("simulator starts");
    let text = format!(
        "{}\n[jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n{CONFIG}",
        client_config(&sim).replace("history_poll_secs = 5.0", "history_poll_secs = 0.5")
    );
    let data = DataDir::raw(&text);
    let alice = key_for(&data, "alice@example.com", false);
    let server = tokio::task::spawn_blocking(move || Server::on(data))
        .await
        .unwrap();
    let bob = String::new();
    let p = Proxy { server, alice, bob };
    let uploads = sim.control().stats().uploads;

    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/video",
            &json!({"prompt": "the tide comes in", "image": data_url(), "endImage": data_url(), "motion": "high", "batchSize": 2, "state": "clip 9"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let id = r["result"].as_str().unwrap().to_owned();
    let task = p.ended(&p.alice, &id).await;
    assert_eq!(
        (task["status"].as_str(), task["action"].as_str()),
        (Some("SUCCESS"), Some("VIDEO")),
        "{task}"
    );
    assert_eq!(task["state"], "clip 9");
    // The start and end frames went to Discord once each, and the bot was asked for a video
    // starting with one and ending on the other.
    assert_eq!(sim.control().stats().uploads - uploads, 2);
    let (_, g) = generation(&p, &p.alice, &id).await;
    assert_eq!(
        g["prompt"],
        "the tide comes in --video --motion high --bs 2"
    );
    assert_eq!(g["parameters"]["end_frame"], true, "{g}");
    let channel = &sim.accounts()[0].channel_id;
    let asked = sim
        .control()
        .messages(channel)
        .iter()
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .find(|c| c.contains("the tide comes in --video"))
        .expect("the bot's video grid message");
    assert!(asked.starts_with("**http://127.0.0.1:"), "{asked}");
    assert!(asked.contains("--bs 2 --end http://127.0.0.1:"), "{asked}");
    let images = g["images"].as_array().expect("images");
    let kinds: Vec<(&str, &str)> = images
        .iter()
        .map(|i| (i["role"].as_str().unwrap(), i["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("grid", "video"),
            ("upscale_1", "video"),
            ("upscale_2", "video")
        ],
        "{g}"
    );

    // Extend the second clip (index 1), with low motion, through Extend's Remix form: filled
    // with the clip's prompt, its picture first.
    assert!(sim.control().set_remix(&sim.accounts()[0].user_id, true));
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/video",
            &json!({"action": "extend", "taskId": id, "index": 1, "state": "longer"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let extended = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(extended["state"], "longer");
    assert_eq!(
        (extended["status"].as_str(), extended["action"].as_str()),
        (Some("SUCCESS"), Some("VIDEO")),
        "{extended}"
    );
    let (_, e) = generation(&p, &p.alice, extended["id"].as_str().unwrap()).await;
    assert_eq!(
        e["parameters"]["action"],
        json!({"name": "extend", "index": 2, "motion": "low"})
    );
    assert_eq!(e["images"][0]["kind"], "video", "{e}");
    // Clip 3 was not made (batchSize 2): said so, nothing queued.
    let before = p.generations(&p.alice).await;
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/video",
            &json!({"action": "extend", "taskId": id, "index": 3}),
        )
        .await;
    assert_eq!((status, &r["code"]), (400, &json!(4)), "{r}");
    assert_eq!(p.generations(&p.alice).await, before);
    sim.shutdown().await;
}
