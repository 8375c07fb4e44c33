//! The Midjourney bot through our client: the /imagine message sequence, every button,
//! modals, /describe and /blend through the upload flow, errors, queueing, the other
//! commands and niji.

use std::time::Duration;

use atelier_discord::rest::ModalSubmit;
use atelier_simulator::{Config, NIJI_BOT_ID, Painter, Timing};
use image::imageops;
use serde_json::{Value, json};

use crate::support::{
    Client, NoisyPainter, button, buttons, config, decode, download, is_final, start,
};

/// Fewer progress steps for the button tour.
fn short() -> Config {
    Config {
        timing: Timing {
            before_waiting: Duration::from_millis(2),
            step: Duration::from_millis(2),
            steps: vec![0, 50],
        },
        ..config()
    }
}

fn hash_of(message: &Value) -> String {
    button(message, "MJ::JOB::upsample::1::")
        .rsplit("::")
        .next()
        .unwrap()
        .to_owned()
}

async fn image_of(message: &Value) -> image::RgbaImage {
    let response = download(message["attachments"][0]["url"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    decode(&response.bytes().await.unwrap())
}

#[tokio::test]
async fn imagine_plays_the_whole_message_sequence() {
    let sim = start(config()).await;
    let account = sim.accounts()[0].clone();
    let uid = account.user_id.clone();
    let mut client = Client::connect(&sim, &account).await;
    let prompt = "a red fox in the snow, watercolor --ar 3:2";
    let nonce = client.imagine(prompt).await;

    let created = client
        .until("INTERACTION_CREATE", |n, d| {
            n == "INTERACTION_CREATE" && d["nonce"] == nonce
        })
        .await;
    let success = client
        .until("INTERACTION_SUCCESS", |n, d| {
            n == "INTERACTION_SUCCESS" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(created["id"], success["id"]);
    let waiting = client
        .until("waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(
        waiting["content"],
        format!("**{prompt}** - <@{uid}> (Waiting to start)")
    );
    assert_eq!(waiting["author"]["id"], "936929561302675456");
    assert_eq!(waiting["author"]["bot"], true);
    assert_eq!(waiting["interaction_metadata"]["id"], created["id"]);
    assert_eq!(waiting["interaction_metadata"]["name"], "imagine");
    assert_eq!(waiting["interaction"]["user"]["id"], uid.as_str());
    assert_eq!(waiting["channel_id"], account.channel_id.as_str());

    let mut updates = Vec::new();
    let finished = loop {
        let (name, data) = client.dispatch().await;
        match name.as_str() {
            "MESSAGE_UPDATE" => updates.push(data),
            "MESSAGE_CREATE" => break data,
            other => panic!("unexpected {other}"),
        }
    };
    let contents: Vec<&str> = updates
        .iter()
        .map(|u| u["content"].as_str().unwrap())
        .collect();
    let want: Vec<String> = [0, 31, 62, 93]
        .iter()
        .map(|p| format!("**{prompt}** - <@{uid}> ({p}%) (fast)"))
        .collect();
    assert_eq!(contents, want);
    assert!(
        updates
            .iter()
            .all(|u| u["id"] == waiting["id"] && u.get("nonce").is_none())
    );
    // Each running update carries the job's cancel button, which names the job.
    let cancel = button(&updates[0], "MJ::CancelJob::ByJobid::");
    assert!(updates.iter().all(|u| buttons(u) == [cancel.clone()]));
    assert_eq!(updates[0]["attachments"], json!([]));
    let preview = &updates[1]["attachments"][0];
    assert!(
        preview["filename"]
            .as_str()
            .unwrap()
            .ends_with("_grid_0.webp")
    );
    assert!(
        preview["url"]
            .as_str()
            .unwrap()
            .contains("/ephemeral-attachments/")
    );
    let response = download(preview["url"].as_str().unwrap()).await;
    assert_eq!(response.headers()["content-type"], "image/webp");
    assert_eq!(
        decode(&response.bytes().await.unwrap()).dimensions(),
        (64, 64)
    );

    assert_eq!(finished["nonce"], nonce.as_str());
    assert_eq!(
        finished["content"],
        format!("**{prompt}** - <@{uid}> (fast)")
    );
    assert!(is_final(&finished));
    let hash = hash_of(&finished);
    assert_eq!(cancel, format!("MJ::CancelJob::ByJobid::{hash}"));
    let attachment = &finished["attachments"][0];
    assert_eq!(
        attachment["filename"],
        format!("atelier_tester_1_a_red_fox_in_the_snow_watercolor_{hash}.png")
    );
    assert_eq!(
        (
            attachment["width"].as_u64(),
            attachment["content_type"].as_str()
        ),
        (Some(64), Some("image/png"))
    );
    let ids = buttons(&finished);
    assert_eq!(
        ids[..5],
        [
            format!("MJ::JOB::upsample::1::{hash}"),
            format!("MJ::JOB::upsample::2::{hash}"),
            format!("MJ::JOB::upsample::3::{hash}"),
            format!("MJ::JOB::upsample::4::{hash}"),
            format!("MJ::JOB::reroll::0::{hash}::SOLO"),
        ]
    );
    assert_eq!(ids[5], format!("MJ::JOB::variation::1::{hash}"));
    let deleted = client
        .until("MESSAGE_DELETE", |n, _| n == "MESSAGE_DELETE")
        .await;
    assert_eq!(deleted["id"], waiting["id"]);
    assert_eq!(deleted["guild_id"], account.guild_id.as_str());

    // The history keeps the final and not the deleted progress message.
    let history = client
        .rest
        .messages(
            &account.channel_id,
            &atelier_discord::rest::MessageQuery::default(),
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], finished["id"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_button_does_what_it_says() {
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let uid = account.user_id.clone();
    let mut client = Client::connect(&sim, &account).await;
    // V7: its upscales carry the model's re-upscales (V8.1's have none).
    let prompt = "a lighthouse at dusk --v 7";
    let nonce = client.imagine(prompt).await;
    let grid = client.final_for(&nonce).await;
    let hash = hash_of(&grid);
    let grid_image = image_of(&grid).await;

    // U1-U4: exactly the quadrants, answered at once as replies.
    let mut upscales = Vec::new();
    for i in 1..=4u32 {
        let nonce = client
            .press(&grid, &format!("MJ::JOB::upsample::{i}::{hash}"))
            .await
            .unwrap();
        let up = client.final_for(&nonce).await;
        assert_eq!(up["content"], format!("**{prompt}** - Image #{i} <@{uid}>"));
        assert_eq!(up["type"], 19);
        assert_eq!(up["message_reference"]["message_id"], grid["id"]);
        assert_eq!(up["interaction_metadata"]["type"], 3);
        let (x, y) = (((i - 1) % 2) * 32, ((i - 1) / 2) * 32);
        let want = imageops::crop_imm(&grid_image, x, y, 32, 32).to_image();
        assert_eq!(image_of(&up).await, want, "U{i}");
        upscales.push(up);
    }
    let u1 = upscales.swap_remove(0);
    let web = u1["components"][4]["components"][1]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        web,
        format!("https://www.midjourney.com/jobs/{hash}?index=0")
    );
    // A button can be pressed again.
    let again = client
        .press(&grid, &format!("MJ::JOB::upsample::1::{hash}"))
        .await
        .unwrap();
    client.final_for(&again).await;

    for (prefix, running, done) in [
        (
            "MJ::JOB::upsample_v7_2x_subtle",
            "Upscaling by",
            "Upscaled (Subtle) by",
        ),
        (
            "MJ::JOB::upsample_v7_2x_creative",
            "Upscaling by",
            "Upscaled (Creative) by",
        ),
    ] {
        let nonce = client.press(&u1, &button(&u1, prefix)).await.unwrap();
        let waiting = client
            .until("waiting", |n, d| {
                n == "MESSAGE_CREATE" && d["nonce"] == nonce
            })
            .await;
        assert_eq!(
            waiting["content"],
            format!("**{prompt}** - {running} <@{uid}> (Waiting to start)")
        );
        let hd = client.final_for(&nonce).await;
        assert_eq!(
            hd["content"],
            format!("**{prompt}** - {done} <@{uid}> (fast)")
        );
        assert_eq!(image_of(&hd).await.dimensions(), (64, 64));
        assert_eq!(buttons(&hd).len(), 3, "vary subtle, vary strong, bookmark");
    }

    for (prefix, shown, action) in [
        (
            "MJ::JOB::high_variation",
            prompt.to_owned(),
            "Variations (Strong) by ",
        ),
        (
            "MJ::JOB::low_variation",
            prompt.to_owned(),
            "Variations (Subtle) by ",
        ),
        (
            "MJ::Outpaint::50",
            format!("{prompt} --zoom 2"),
            "Zoom Out by ",
        ),
        (
            "MJ::Outpaint::75",
            format!("{prompt} --zoom 1.5"),
            "Zoom Out by ",
        ),
        ("MJ::JOB::pan_left", prompt.to_owned(), "Pan Left by "),
        ("MJ::JOB::pan_down", prompt.to_owned(), "Pan Down by "),
    ] {
        let nonce = client.press(&u1, &button(&u1, prefix)).await.unwrap();
        let result = client.final_for(&nonce).await;
        assert_eq!(
            result["content"],
            format!("**{shown}** - {action}<@{uid}> (fast)"),
            "{prefix}"
        );
        assert_eq!(buttons(&result).len(), 9);
        assert_ne!(hash_of(&result), hash);
    }

    // Custom Zoom opens a modal; submitting it runs the zoom.
    let nonce = client
        .press(&u1, &button(&u1, "MJ::CustomZoom::"))
        .await
        .unwrap();
    let modal = client
        .until("modal", |n, d| {
            n == "INTERACTION_MODAL_CREATE" && d["nonce"] == nonce
        })
        .await;
    let custom_id = modal["custom_id"].as_str().unwrap().to_owned();
    assert!(custom_id.starts_with("MJ::OutpaintCustomZoomModal::"));
    let input = &modal["components"][0]["components"][0];
    assert_eq!(input["value"], format!("{prompt} --zoom 2"));
    let submit = ModalSubmit {
        id: modal["id"].as_str().unwrap().to_owned(),
        custom_id,
        fields: vec![(
            input["custom_id"].as_str().unwrap().to_owned(),
            format!("{prompt} --zoom 1.8"),
        )],
    };
    let nonce = atelier_discord::new_nonce();
    client
        .rest
        .submit_modal(&client.ctx, &submit, &nonce)
        .await
        .unwrap();
    let zoomed = client.final_for(&nonce).await;
    assert_eq!(
        zoomed["content"],
        format!("**{prompt} --zoom 1.8** - Zoom Out by <@{uid}> (fast)")
    );
    // The modal is used up.
    assert!(
        client
            .rest
            .submit_modal(&client.ctx, &submit, &atelier_discord::new_nonce())
            .await
            .is_err()
    );

    // Vary (Region) opens Discord's iframe modal; nothing else happens.
    let nonce = client
        .press(&u1, &button(&u1, "MJ::Inpaint::"))
        .await
        .unwrap();
    let iframe = client
        .until("iframe", |n, d| {
            n == "INTERACTION_IFRAME_MODAL_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert!(
        iframe["custom_id"]
            .as_str()
            .unwrap()
            .starts_with("MJ::iframe::")
    );

    // Grid buttons: V2 and reroll.
    let nonce = client
        .press(&grid, &format!("MJ::JOB::variation::2::{hash}"))
        .await
        .unwrap();
    let varied = client.final_for(&nonce).await;
    assert_eq!(
        varied["content"],
        format!("**{prompt}** - Variations by <@{uid}> (fast)")
    );
    assert_ne!(image_of(&varied).await, grid_image);
    let nonce = client
        .press(&grid, &format!("MJ::JOB::reroll::0::{hash}::SOLO"))
        .await
        .unwrap();
    let rerolled = client.final_for(&nonce).await;
    assert_eq!(
        rerolled["content"],
        format!("**{prompt}** - <@{uid}> (fast)")
    );
    assert_eq!(rerolled["interaction_metadata"]["type"], 3);
    assert!(rerolled.get("interaction").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn describe_and_blend_use_the_upload_flow() {
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let uid = account.user_id.clone();
    let mut client = Client::connect(&sim, &account).await;
    let picture = NoisyPainter.grid("fox", 1, 48);
    let uploaded = client
        .rest
        .upload_attachment(&account.channel_id, "fox photo.png", picture.clone())
        .await
        .unwrap();
    let nonce = client
        .command(
            "describe",
            json!([{"type": 11, "name": "image", "value": 0}]),
            json!([uploaded.to_json()]),
        )
        .await
        .unwrap();
    let first = client
        .until("describe", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(first["interaction"]["name"], "describe");
    let image_url = first["embeds"][0]["image"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = download(&image_url).await;
    assert_eq!(response.bytes().await.unwrap().to_vec(), picture);
    let described = client
        .until("describe update", |n, d| {
            n == "MESSAGE_UPDATE" && d["id"] == first["id"]
        })
        .await;
    let description = described["embeds"][0]["description"].as_str().unwrap();
    let options: Vec<&str> = description.split("\n\n").collect();
    assert_eq!(options.len(), 4);
    assert!(
        options
            .iter()
            .enumerate()
            .all(|(i, o)| o.starts_with(&format!("{}\u{fe0f}\u{20e3} ", i + 1)))
    );
    assert!(options[0].ends_with("--ar 1:1"));
    assert_eq!(
        buttons(&described)[..5],
        [
            "MJ::Job::PicReader::1",
            "MJ::Job::PicReader::2",
            "MJ::Job::PicReader::3",
            "MJ::Job::PicReader::4",
            "MJ::Picread::Retry",
        ]
    );
    // Picking option 2 opens a modal holding it; submitting imagines it.
    let nonce = client
        .press(&described, "MJ::Job::PicReader::2")
        .await
        .unwrap();
    let modal = client
        .until("modal", |n, d| {
            n == "INTERACTION_MODAL_CREATE" && d["nonce"] == nonce
        })
        .await;
    let chosen = modal["components"][0]["components"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(format!("2\u{fe0f}\u{20e3} {chosen}"), options[1]);
    let submit = ModalSubmit {
        id: modal["id"].as_str().unwrap().to_owned(),
        custom_id: modal["custom_id"].as_str().unwrap().to_owned(),
        fields: vec![(
            "MJ::Picreader::Modal::PromptField".to_owned(),
            chosen.clone(),
        )],
    };
    let nonce = atelier_discord::new_nonce();
    client
        .rest
        .submit_modal(&client.ctx, &submit, &nonce)
        .await
        .unwrap();
    let imagined = client.final_for(&nonce).await;
    assert_eq!(
        imagined["content"],
        format!("**{chosen}** - <@{uid}> (fast)")
    );

    // /blend: two different images become two s.mj.run links.
    let other = NoisyPainter.grid("owl", 2, 48);
    let files = client
        .rest
        .upload_attachments(
            &account.channel_id,
            vec![("a.png".into(), picture.clone()), ("b.png".into(), other)],
        )
        .await
        .unwrap();
    let attachments: Vec<Value> = files
        .iter()
        .map(atelier_discord::rest::UploadedAttachment::to_json)
        .collect();
    let options = json!([
        {"type": 11, "name": "image1", "value": 0},
        {"type": 11, "name": "image2", "value": 1},
        {"type": 3, "name": "dimensions", "value": "--ar 1:1"},
    ]);
    let nonce = client
        .command("blend", options.clone(), json!(attachments))
        .await
        .unwrap();
    let blended = client.final_for(&nonce).await;
    let content = blended["content"].as_str().unwrap();
    let links: Vec<&str> = content.split("**").nth(1).unwrap().split(' ').collect();
    assert_eq!(links.len(), 4, "{content}");
    assert!(
        links[0].starts_with("<https://s.mj.run/") && links[1].starts_with("<https://s.mj.run/")
    );
    assert_eq!(links[2..], ["--ar", "1:1"]);
    assert!(content.ends_with(&format!("** - <@{uid}> (fast)")));
    assert_eq!(blended["interaction"]["name"], "blend");

    // The same image twice is refused.
    let same = client
        .rest
        .upload_attachments(
            &account.channel_id,
            vec![
                ("a.png".into(), picture.clone()),
                ("a2.png".into(), picture),
            ],
        )
        .await
        .unwrap();
    let attachments: Vec<Value> = same
        .iter()
        .map(atelier_discord::rest::UploadedAttachment::to_json)
        .collect();
    let nonce = client
        .command("blend", options, json!(attachments))
        .await
        .unwrap();
    let refused = client
        .until("duplicate", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(refused["embeds"][0]["title"], "Duplicate images detected");
    sim.shutdown().await;
}

#[tokio::test]
async fn image_prompts_are_uploads_sent_in_a_message_then_its_cdn_urls() {
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let uid = account.user_id.clone();
    let mut client = Client::connect(&sim, &account).await;
    let pictures = [
        NoisyPainter.grid("fox", 1, 48),
        NoisyPainter.grid("owl", 2, 48),
    ];
    let files = client
        .rest
        .upload_attachments(
            &account.channel_id,
            vec![
                ("a.png".into(), pictures[0].clone()),
                ("b.png".into(), pictures[1].clone()),
            ],
        )
        .await
        .unwrap();
    let message = client
        .rest
        .send_message(&account.channel_id, "", &files)
        .await
        .unwrap();
    assert_eq!(message["author"]["id"], uid.as_str());
    assert_eq!(message["type"], 0);
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments[0]["filename"], "a.png");
    assert_eq!(attachments[1]["content_type"], "image/png");
    let urls: Vec<String> = attachments
        .iter()
        .map(|a| a["url"].as_str().unwrap().to_owned())
        .collect();
    // Signed like every CDN URL, and served with the uploaded bytes.
    for (url, bytes) in urls.iter().zip(&pictures) {
        assert!(url.contains("?ex=") && url.contains("&is=") && url.contains("&hm="));
        let served = download(url).await;
        assert_eq!(served.status(), 200);
        assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    // An /imagine that starts with them runs like any other.
    let prompt = format!("{} {} a fox and an owl", urls[0], urls[1]);
    let nonce = client.imagine(&prompt).await;
    let grid = client.final_for(&nonce).await;
    assert_eq!(grid["content"], format!("**{prompt}** - <@{uid}> (fast)"));
    // A link of this CDN that no longer verifies is one the bot cannot fetch.
    let forged = urls[0].replace("&hm=", "&hm=0");
    let nonce = client.imagine(&format!("{forged} a fox")).await;
    let refused = client
        .until("invalid link", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(refused["embeds"][0]["title"], "Invalid link");

    // Bad bodies are Discord's form errors, and keep nothing.
    let api = format!(
        "{}/channels/{}/messages",
        sim.api_base(),
        account.channel_id
    );
    let before = sim.control().messages(&account.channel_id).len();
    for (body, field) in [
        (
            json!({"attachments": [{"id": "0", "uploaded_filename": "nope/x.png"}]}),
            "attachments",
        ),
        (json!({"attachments": [{"id": "0"}]}), "attachments"),
        (json!({"content": 12}), "content"),
        (json!({"content": ""}), "content"),
    ] {
        let response = crate::support::http()
            .post(&api)
            .header("authorization", &account.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], 50035, "{body}");
        assert!(error["errors"].get(field).is_some(), "{body}: {error}");
    }
    assert_eq!(sim.control().messages(&account.channel_id).len(), before);
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_prompts_get_midjourneys_embeds() {
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;

    let nonce = client.imagine("a red fox --foo 3").await;
    let invalid = client
        .until("invalid", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    let embed = &invalid["embeds"][0];
    assert_eq!(embed["title"], "Invalid parameter");
    assert_eq!(embed["description"], "Unrecognized parameter(s): `--foo`");
    assert_eq!(embed["color"], 16_711_680);
    assert_eq!(embed["footer"]["text"], "/imagine a red fox --foo 3");
    assert_eq!(invalid["flags"], 64);

    let nonce = client.imagine("a fox --stylize 5000").await;
    let invalid = client
        .until("out of range", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(invalid["embeds"][0]["title"], "Invalid parameter");

    let nonce = client.imagine("a BANNED fox --v 7").await;
    let banned = client
        .until("banned", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert_eq!(banned["embeds"][0]["title"], "Banned prompt detected");
    assert_eq!(
        banned["embeds"][0]["footer"]["text"],
        "/imagine a BANNED fox --v 7"
    );
    assert!(button(&banned, "MJ::Prompt::Appeal::").len() > 20);

    // Ephemeral errors stay out of the history; the banned notice is in it.
    let history = sim.control().messages(&account.channel_id);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["id"], banned["id"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn concurrency_queues_then_refuses() {
    let sim = start(Config {
        mj_concurrency: 1,
        mj_queue: 1,
        timing: Timing {
            before_waiting: Duration::from_millis(2),
            step: Duration::from_millis(40),
            steps: vec![0, 50],
        },
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let first = client.imagine("one").await;
    let second = client.imagine("two").await;
    let third = client.imagine("three").await;
    let queued = client
        .until("queued", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == second
        })
        .await;
    assert_eq!(queued["embeds"][0]["title"], "Job queued");
    assert_eq!(queued["embeds"][0]["color"], 16_776_960);
    assert_eq!(queued["embeds"][0]["footer"]["text"], "/imagine two");
    let full = client
        .until("full", |n, d| n == "MESSAGE_CREATE" && d["nonce"] == third)
        .await;
    assert_eq!(full["embeds"][0]["title"], "Queue full");
    let done = client.final_for(&first).await;
    assert!(done["content"].as_str().unwrap().starts_with("**one**"));
    let waiting = client
        .until("second starts", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == second
        })
        .await;
    assert!(
        waiting["content"]
            .as_str()
            .unwrap()
            .ends_with("(Waiting to start)")
    );
    client.final_for(&second).await;
    let stats = sim.control().stats();
    assert_eq!(
        (stats.jobs_started, stats.jobs_finished, stats.jobs_running),
        (2, 2, 0)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_presses_are_refused_like_discord() {
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a fox").await;
    let grid = client.final_for(&nonce).await;

    let gone = json!({"id": "1234567890", "flags": 0});
    let error = client
        .press(&gone, "MJ::JOB::upsample::1::x")
        .await
        .unwrap_err();
    assert!(error.is_unknown_message(), "{error}");
    let error = client
        .press(&grid, "MJ::JOB::upsample::1::not-on-this-message")
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));
    let submit = ModalSubmit {
        id: "1234".into(),
        custom_id: "MJ::ImagineModal::1".into(),
        fields: vec![("x".into(), "y".into())],
    };
    let error = client
        .rest
        .submit_modal(&client.ctx, &submit, "1")
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));
    sim.shutdown().await;
}

#[tokio::test]
async fn other_commands_and_niji() {
    let sim = start(short()).await;
    let account = sim.accounts()[1].clone();
    let uid = account.user_id.clone();
    let mut client = Client::connect(&sim, &account).await;

    let nonce = client.command("relax", json!([]), json!([])).await.unwrap();
    let done = client
        .until("relax ack", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    assert!(done["content"].as_str().unwrap().starts_with("Done!"));
    assert_eq!(done["flags"], 64);
    let nonce = client.imagine("slow fox").await;
    let grid = client.final_for(&nonce).await;
    assert_eq!(
        grid["content"],
        format!("**slow fox** - <@{uid}> (relaxed)")
    );

    let nonce = client.command("info", json!([]), json!([])).await.unwrap();
    let thinking = client
        .until("info", |n, d| n == "MESSAGE_CREATE" && d["nonce"] == nonce)
        .await;
    assert_eq!(thinking["flags"], 64 | 128);
    let info = client
        .until("info update", |n, d| {
            n == "MESSAGE_UPDATE" && d["id"] == thinking["id"]
        })
        .await;
    assert!(
        info["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .starts_with("Your info")
    );
    assert!(
        info["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("**Job Mode**: Relaxed")
    );

    let nonce = client
        .command("settings", json!([]), json!([]))
        .await
        .unwrap();
    let thinking = client
        .until("settings", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    let settings = client
        .until("settings update", |n, d| {
            n == "MESSAGE_UPDATE" && d["id"] == thinking["id"]
        })
        .await;
    assert!(buttons(&settings).contains(&"MJ::Settings::RemixMode".to_owned()));
    let nonce = client
        .press(&settings, "MJ::Settings::FastMode")
        .await
        .unwrap();
    client
        .until("ack", |n, d| {
            n == "INTERACTION_SUCCESS" && d["nonce"] == nonce
        })
        .await;

    let nonce = client
        .command(
            "shorten",
            json!([{"type": 3, "name": "prompt", "value": "A very red fox standing in the snow"}]),
            json!([]),
        )
        .await
        .unwrap();
    let first = client
        .until("shorten", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    let shortened = client
        .until("shorten update", |n, d| {
            n == "MESSAGE_UPDATE" && d["id"] == first["id"]
        })
        .await;
    assert_eq!(
        shortened["embeds"][0]["footer"]["text"],
        "Click on a button to imagine one of the shortened prompts"
    );
    assert_eq!(
        button(&shortened, "MJ::Job::PromptAnalyzer::1"),
        "MJ::Job::PromptAnalyzer::1"
    );

    client.ctx.application_id = NIJI_BOT_ID.to_owned();
    let nonce = client.imagine("a fox spirit --niji 6").await;
    let niji = client.final_for(&nonce).await;
    assert_eq!(niji["author"]["id"], NIJI_BOT_ID);
    assert_eq!(
        niji["content"],
        format!("**a fox spirit --niji 6** - <@{uid}> (fast)")
    );
    let hash = hash_of(&niji);
    let nonce = client
        .press(&niji, &format!("MJ::JOB::upsample::1::{hash}"))
        .await
        .unwrap();
    let up = client.final_for(&nonce).await;
    assert!(button(&up, "MJ::JOB::upsample_v6r1_2x_subtle").ends_with("::SOLO"));
    sim.shutdown().await;
}

#[tokio::test]
async fn previews_and_results_are_the_painters() {
    let sim = start(Config {
        timing: Timing::instant(),
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a seeded fox --seed 42").await;
    let waiting = client
        .until("waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    let grid = client.final_for(&nonce).await;
    assert_ne!(waiting["id"], grid["id"]);
    let want = decode(&NoisyPainter.grid("a seeded fox --seed 42", 42, 64));
    assert_eq!(image_of(&grid).await, want);
    sim.shutdown().await;
}

#[tokio::test]
async fn parameters_are_refused_in_the_words_of_the_shared_table() {
    use atelier_midjourney_params::Version;
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    for (prompt, says) in [
        (
            "a fox --stop 50 --v 7",
            "--stop is not compatible with --version 7",
        ),
        ("a fox --q 3 --v 7", "--q 3: expected 1, 2 or 4"),
        (
            "a fox --ar 99999:1",
            "--ar 99999:1: expected W:H in whole numbers, from 9:128 to 128:9",
        ),
        (
            "a fox --v 99",
            "--v 99: expected 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7, 8 or 8.1",
        ),
    ] {
        let nonce = client.imagine(prompt).await;
        let invalid = client
            .until(prompt, |n, d| n == "MESSAGE_CREATE" && d["nonce"] == nonce)
            .await;
        assert_eq!(
            invalid["embeds"][0]["title"], "Invalid parameter",
            "{prompt}"
        );
        assert_eq!(invalid["embeds"][0]["description"], says, "{prompt}");
        // The app's Midjourney provider refuses with the same refusal, from the same table.
        let refusal = atelier_midjourney_params::check(prompt, Version::DEFAULT)
            .expect_err("refused")
            .to_string();
        assert_eq!(refusal, says);
    }
    let nonce = client.imagine("\u{200B}\u{200D}\u{2060}\u{FEFF}").await;
    let empty = client
        .until("empty", |n, d| n == "MESSAGE_CREATE" && d["nonce"] == nonce)
        .await;
    assert_eq!(empty["embeds"][0]["title"], "Empty prompt");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_model_decides_the_buttons_of_an_upscale() {
    let sim = start(short()).await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let upscale = async |client: &mut Client, prompt: &str| {
        let nonce = client.imagine(prompt).await;
        let grid = client.final_for(&nonce).await;
        let u1 = button(&grid, "MJ::JOB::upsample::1::");
        let nonce = client.press(&grid, &u1).await.unwrap();
        client.final_for(&nonce).await
    };
    let reupscales = |message: &Value| -> Vec<String> {
        buttons(message)
            .into_iter()
            .filter(|b| b.starts_with("MJ::JOB::upsample_"))
            .map(|b| b.split("::").nth(2).unwrap().to_owned())
            .collect()
    };
    // V8.1, the default: no Upscale (Subtle/Creative); vary, zoom and pan stay.
    let v81 = upscale(&mut client, "a harbour").await;
    assert!(reupscales(&v81).is_empty(), "{:?}", buttons(&v81));
    for prefix in [
        "MJ::JOB::low_variation",
        "MJ::Outpaint::50",
        "MJ::JOB::pan_up",
    ] {
        button(&v81, prefix);
    }
    // A button the message does not carry cannot be pressed.
    let hash = button(&v81, "MJ::JOB::low_variation")
        .split("::")
        .nth(4)
        .unwrap()
        .to_owned();
    let refused = client
        .press(
            &v81,
            &format!("MJ::JOB::upsample_v7_2x_subtle::1::{hash}::SOLO"),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    for (prompt, model) in [
        ("a harbour --v 7", "upsample_v7_2x_subtle"),
        ("a harbour --draft --v 7", "upsample_v7_2x_subtle"),
        (
            "a harbour --oref https://s.mj.run/abc --ow 250",
            "upsample_v7_2x_subtle",
        ),
        ("a harbour --v 6.1", "upsample_v6r1_2x_subtle"),
        ("a harbour --niji 7", "upsample_v7_2x_subtle"),
    ] {
        let up = upscale(&mut client, prompt).await;
        assert_eq!(reupscales(&up)[0], model, "{prompt}");
    }
    // What V8.1 refuses (--draft, --oref and --q are V7's; --stop is gone since V7).
    for prompt in [
        "a harbour --draft",
        "a harbour --stop 50 --v 7",
        "a harbour --hd --v 7",
        "a harbour --q 4",
    ] {
        let nonce = client.imagine(prompt).await;
        let invalid = client
            .until("refusal", |n, d| {
                n == "MESSAGE_CREATE" && d["nonce"] == nonce
            })
            .await;
        assert_eq!(
            invalid["embeds"][0]["title"], "Invalid parameter",
            "{prompt}"
        );
        assert!(
            invalid["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .contains("is not compatible with --version"),
            "{prompt}: {invalid}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_cancel_button_stops_a_running_job() {
    let sim = start(Config {
        timing: Timing {
            before_waiting: Duration::from_millis(2),
            step: Duration::from_millis(200),
            steps: vec![0, 20, 40, 60, 80],
        },
        ..config()
    })
    .await;
    let account = sim.accounts()[0].clone();
    let mut client = Client::connect(&sim, &account).await;
    let nonce = client.imagine("a slow harbour").await;
    let waiting = client
        .until("waiting", |n, d| {
            n == "MESSAGE_CREATE" && d["nonce"] == nonce
        })
        .await;
    let running = client
        .until("progress", |n, d| {
            n == "MESSAGE_UPDATE" && d["id"] == waiting["id"]
        })
        .await;
    let cancel = button(&running, "MJ::CancelJob::ByJobid::");
    client.press(&running, &cancel).await.unwrap();
    let deleted = client
        .until("MESSAGE_DELETE", |n, d| {
            n == "MESSAGE_DELETE" && d["id"] == waiting["id"]
        })
        .await;
    assert_eq!(deleted["channel_id"], account.channel_id.as_str());
    // No result comes, and the job counts as canceled.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let history = client
        .rest
        .messages(
            &account.channel_id,
            &atelier_discord::rest::MessageQuery::default(),
        )
        .await
        .unwrap();
    assert!(history.is_empty(), "{history:?}");
    let stats = sim.control().stats();
    assert_eq!(
        (stats.jobs_canceled, stats.jobs_finished, stats.jobs_running),
        (1, 0, 0)
    );
    // The deleted message's button cannot be pressed again.
    assert!(client.press(&running, &cancel).await.is_err());
    sim.shutdown().await;
}
