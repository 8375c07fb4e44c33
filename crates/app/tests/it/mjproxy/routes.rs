//! Every proxy route over plain HTTP: imagine, fetch, action (U1 then an upscale's buttons),
//! blend and describe on pictures sent inline (image prompts and video are in
//! `mjproxy/image_prompts.rs`, shorten and Custom Zoom in `mjproxy/forms.rs`), cancel,
//! list-by-condition, image-seed, isolation between keys, bad input (with the proxy's codes,
//! proper statuses, and nothing created), the notify hook's task bodies, and the signed links.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Proxy, anonymous, custom_id, data_url};
use crate::http::client;
use crate::webhooks::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagine_fetch_action_and_the_upscale_buttons() {
    let p = Proxy::start(0, "").await;
    let id = p.imagine(&p.alice, "a red fox in the snow --seed 42").await;
    let task = p.ended(&p.alice, &id).await;
    assert_eq!(task["id"], id.as_str());
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["action"], "IMAGINE");
    assert_eq!(
        task["description"],
        "/imagine a red fox in the snow --seed 42"
    );
    assert_eq!(
        task["properties"]["finalPrompt"],
        "a red fox in the snow --seed 42"
    );
    assert!(task["submitTime"].as_i64().unwrap() <= task["finishTime"].as_i64().unwrap());
    assert_eq!(
        task["buttons"].as_array().unwrap().len(),
        9,
        "U1–U4, reroll, V1–V4"
    );
    let (status, picture) = anonymous(task["imageUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(picture.starts_with(b"\x89PNG"));
    let (status, seed) = p.get(&p.alice, &format!("/mj/task/{id}/image-seed")).await;
    assert_eq!(
        (status, &seed["code"], &seed["result"]),
        (200, &json!(1), &json!("42"))
    );

    // U2 through the action route, with the key as a bearer token this time.
    let r: Value = client()
        .post(p.server.url("/mj/submit/action"))
        .bearer_auth(&p.alice)
        .json(&json!({"customId": custom_id(&task, "U2"), "taskId": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["code"] == 1 || r["code"] == 22, "{r}");
    let up = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(up["action"], "UPSCALE");
    assert_eq!(up["status"], "SUCCESS", "{up}");
    let labels: Vec<&str> = up["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["label"].as_str().unwrap())
        .collect();
    for label in ["Vary (Strong)", "Upscale (Subtle)", "Zoom Out 2x"] {
        assert!(labels.contains(&label), "{labels:?}");
    }
    // A button of the upscale: vary (strong) makes a new grid.
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/action",
            &json!({"customId": custom_id(&up, "Vary (Strong)"), "taskId": up["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let vary = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(
        (vary["action"].as_str(), vary["status"].as_str()),
        (Some("VARIATION"), Some("SUCCESS"))
    );

    // list-by-condition: the caller's, in the order asked; unknown ids left out.
    let (status, list) = p
        .post(
            &p.alice,
            "/mj/task/list-by-condition",
            &json!({"ids": [up["id"], "nope", id, "0b7e1d0a-7f36-4c2e-9d76-2f1c0c4b8a11"]}),
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, [&up["id"], &json!(id)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blend_and_describe_on_pictures_sent_inline() {
    let p = Proxy::start(0, "").await;
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/blend",
            &json!({"base64Array": [data_url(), data_url()], "dimensions": "SQUARE"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let blend = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(
        (blend["action"].as_str(), blend["status"].as_str()),
        (Some("BLEND"), Some("SUCCESS")),
        "{blend}"
    );
    assert!(blend["imageUrl"].is_string());

    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/describe",
            &json!({"base64": data_url()}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let describe = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(
        (describe["action"].as_str(), describe["status"].as_str()),
        (Some("DESCRIBE"), Some("SUCCESS")),
        "{describe}"
    );
    // Its prompt is the four prompts it found, numbered as Midjourney numbers them; it started.
    let prompt = describe["prompt"].as_str().unwrap();
    for n in [
        "1\u{fe0f}\u{20e3} ",
        "2\u{fe0f}\u{20e3} ",
        "3\u{fe0f}\u{20e3} ",
        "4\u{fe0f}\u{20e3} ",
    ] {
        assert!(prompt.contains(n), "{describe}");
    }
    assert!(!prompt.contains("describe "), "{describe}");
    assert_eq!(describe["promptEn"], describe["prompt"]);
    let start = describe["startTime"].as_i64().expect("a start time");
    assert!(
        describe["submitTime"].as_i64().unwrap() <= start,
        "{describe}"
    );
    assert!(
        start <= describe["finishTime"].as_i64().unwrap(),
        "{describe}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_proxy_codes_and_creates_nothing() {
    // Slow enough that a task is still running when an action is pressed on it.
    let p = Proxy::start(300, "").await;
    let submit = |path: &'static str, body: Value| {
        let p = &p;
        async move { p.post(&p.alice, path, &body).await }
    };
    let raw = client()
        .post(p.server.url("/mj/submit/imagine"))
        .header("mj-api-secret", &p.alice)
        .header("content-type", "application/json")
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let r: Value = raw.json().await.unwrap();
    assert_eq!(r["code"], 4, "{r}");
    for (path, body, status, code) in [
        ("/mj/submit/imagine", json!({}), 400, 4),
        ("/mj/submit/imagine", json!({"prompt": "   "}), 400, 4),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "botType": "DALLE"}),
            400,
            4,
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a forbidden fox"}),
            400,
            24,
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox --q 3"}),
            400,
            4,
        ),
        (
            "/mj/submit/imagine",
            json!({"prompt": "a fox", "notifyHook": "ftp://x"}),
            400,
            4,
        ),
        ("/mj/submit/action", json!({"taskId": "x"}), 400, 4),
        (
            "/mj/submit/action",
            json!({"customId": "MJ::JOB::upsample::1::x", "taskId": "nope"}),
            404,
            3,
        ),
        (
            "/mj/submit/blend",
            json!({"base64Array": [data_url()]}),
            400,
            4,
        ),
        (
            "/mj/submit/blend",
            json!({"base64Array": [data_url(), "%%%"]}),
            400,
            4,
        ),
        (
            "/mj/submit/blend",
            json!({"base64Array": [data_url(), data_url()], "dimensions": "ROUND"}),
            400,
            4,
        ),
        ("/mj/submit/describe", json!({}), 400, 4),
        (
            "/mj/submit/describe",
            json!({"base64": "bm90IGEgcGljdHVyZQ=="}),
            400,
            4,
        ),
    ] {
        let (s, r) = submit(path, body.clone()).await;
        assert_eq!(
            (s, &r["code"]),
            (status, &json!(code)),
            "{path} {body}: {r}"
        );
        assert!(
            r["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{r}"
        );
    }
    assert_eq!(
        p.generations(&p.alice).await,
        0,
        "bad input created something"
    );

    // An unknown task; an unknown customId; a button pressed before the task ended.
    let (status, r) = p
        .get(
            &p.alice,
            "/mj/task/0b7e1d0a-7f36-4c2e-9d76-2f1c0c4b8a11/fetch",
        )
        .await;
    assert_eq!((status, &r["code"]), (404, &json!(3)));
    let id = p.imagine(&p.alice, "a slow owl").await;
    let (status, r) = submit(
        "/mj/submit/action",
        json!({"customId": "MJ::JOB::upsample::1::x", "taskId": id}),
    )
    .await;
    assert_eq!((status, &r["code"]), (409, &json!(4)), "{r}");
    let task = p.ended(&p.alice, &id).await;
    for custom in [
        "MJ::BOOKMARK::x",
        "MJ::CustomZoom::x",
        "MJ::JOB::upsample::7::x",
    ] {
        let (status, r) = submit(
            "/mj/submit/action",
            json!({"customId": custom, "taskId": task["id"]}),
        )
        .await;
        assert_eq!((status, &r["code"]), (400, &json!(4)), "{custom}: {r}");
    }
    // An upscale's button pressed on a grid.
    let (status, r) = submit(
        "/mj/submit/action",
        json!({"customId": "MJ::JOB::pan_left::1::x::SOLO", "taskId": task["id"]}),
    )
    .await;
    assert_eq!((status, &r["code"]), (400, &json!(4)), "{r}");
    assert_eq!(p.generations(&p.alice).await, 1);
    // No key, a wrong key; a link forged or cut.
    let r = client()
        .post(p.server.url("/mj/submit/imagine"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, r) = p
        .post("atl_nope", "/mj/submit/imagine", &json!({"prompt": "x"}))
        .await;
    assert_eq!((status, &r["code"]), (401, &json!(4)));
    let url = task["imageUrl"].as_str().unwrap();
    // The signature's last character changed (to another one: it may have been a 0).
    let last = if url.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &url[..url.len() - 1]);
    assert_eq!(anonymous(&forged).await.0, 404);
    assert_eq!(anonymous(&p.server.url("/mj/image/nope")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_the_keys_own_and_cancel_ends_them() {
    // No workers: the task waits in the queue until it is canceled.
    let p = Proxy::start(0, "[server]\nworkers = 0\n").await;
    let id = p.imagine(&p.alice, "a patient heron").await;
    // Bob finds nothing of alice's: not her task, not a button on it, not a cancel.
    let (status, r) = p.get(&p.bob, &format!("/mj/task/{id}/fetch")).await;
    assert_eq!((status, &r["code"]), (404, &json!(3)));
    let (status, r) = p
        .post(&p.bob, &format!("/mj/task/{id}/cancel"), &json!({}))
        .await;
    assert_eq!((status, &r["code"]), (404, &json!(3)));
    let (status, list) = p
        .post(&p.bob, "/mj/task/list-by-condition", &json!({"ids": [id]}))
        .await;
    assert_eq!((status, list), (200, json!([])));
    // Alice cancels it.
    let (status, r) = p
        .post(&p.alice, &format!("/mj/task/{id}/cancel"), &json!({}))
        .await;
    assert_eq!((status, &r["code"]), (200, &json!(1)), "{r}");
    let task = p.ended(&p.alice, &id).await;
    assert_eq!(task["status"], "CANCEL", "{task}");
    assert!(task["failReason"].is_string());
    assert_eq!(task["buttons"], json!([]));
    let (status, r) = p
        .post(&p.alice, &format!("/mj/task/{id}/cancel"), &json!({}))
        .await;
    assert_eq!((status, &r["code"]), (409, &json!(4)), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notify_hook_receives_the_task_object() {
    let receiver = Receiver::start(&[]).await;
    let p = Proxy::start(0, "").await;
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/imagine",
            &json!({"prompt": "a lantern", "notifyHook": receiver.url(), "state": "mine"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let id = r["result"].as_str().unwrap().to_owned();
    p.ended(&p.alice, &id).await;
    // Deliveries follow the events; wait for the one that tells the end.
    let t = std::time::Instant::now();
    let last = loop {
        let got = receiver.got();
        if let Some(done) = got
            .iter()
            .map(crate::webhooks::Received::json)
            .find(|b| b["status"] == "SUCCESS")
        {
            break done;
        }
        assert!(
            t.elapsed() < Duration::from_mins(1),
            "no SUCCESS body: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["id"], id.as_str());
    assert_eq!(last["action"], "IMAGINE");
    assert_eq!(last["progress"], "100%");
    assert_eq!(
        last["state"], "mine",
        "the submit's state comes back in the hook's body"
    );
    assert_eq!(last["buttons"].as_array().unwrap().len(), 9);
    // Its picture opens without a key, like the fetched task's.
    let (status, bytes) = anonymous(last["imageUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(bytes.starts_with(b"\x89PNG"));
    // Every body is a task object of this task, signed like any webhook.
    for got in receiver.got() {
        let body = got.json();
        assert_eq!(body["id"], id.as_str(), "{body}");
        assert!(
            body["status"].is_string() && body["buttons"].is_array(),
            "{body}"
        );
        assert!(got.signature.starts_with("v1,"));
    }
}

/// `GET path` written by hand on a fresh connection with `head` as its request line and
/// headers (no `Host` unless `head` has one), the connection closed by the answer; the body.
async fn raw_get(p: &Proxy, head: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = p.server.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "{head}\r\nmj-api-secret: {}\r\nConnection: close\r\n\r\n",
        p.alice
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (status, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(status.contains(" 200 "), "{head}: {answer}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{head}: {e}: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_begin_with_the_servers_address_when_the_host_header_tells_none() {
    let p = Proxy::start(0, "").await;
    let id = p.imagine(&p.alice, "a quiet harbour").await;
    p.ended(&p.alice, &id).await;
    let fetch = format!("/mj/task/{id}/fetch");
    let base = format!("{}/mj/image/", p.server.base);
    for head in [
        format!("GET {fetch} HTTP/1.0"),
        format!("GET {fetch} HTTP/1.1\r\nHost: "),
        format!("GET {fetch} HTTP/1.1\r\nHost: me@evil.example"),
        format!("GET {fetch} HTTP/1.1\r\nHost: evil.example/x"),
    ] {
        let task = raw_get(&p, &head).await;
        let url = task["imageUrl"].as_str().unwrap_or_default();
        assert!(url.starts_with(&base), "{head:?}: {url}");
        assert_eq!(anonymous(url).await.0, 200, "{url}");
    }
    // A Host that is an authority is the client's own address, port and all.
    let task = raw_get(
        &p,
        &format!("GET {fetch} HTTP/1.1\r\nHost: photos.example:8443"),
    )
    .await;
    let url = task["imageUrl"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("http://photos.example:8443/mj/image/"),
        "{url}"
    );

    // With [server.mj_proxy] public_url, links begin with it whatever the request says.
    let p = Proxy::start(
        0,
        "[server.mj_proxy]\npublic_url = \"https://pics.example/base/\"\n",
    )
    .await;
    let id = p.imagine(&p.alice, "a quiet harbour").await;
    p.ended(&p.alice, &id).await;
    for head in [
        format!("GET /mj/task/{id}/fetch HTTP/1.0"),
        format!("GET /mj/task/{id}/fetch HTTP/1.1\r\nHost: "),
        format!("GET /mj/task/{id}/fetch HTTP/1.1\r\nHost: other.example"),
    ] {
        let task = raw_get(&p, &head).await;
        let url = task["imageUrl"].as_str().unwrap_or_default();
        assert!(
            url.starts_with("https://pics.example/base/mj/image/"),
            "{head:?}: {url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_submit_keeps_its_state_and_a_bad_one_creates_nothing() {
    let p = Proxy::start(0, "").await;
    // Bad states first, on every submit: refused as bad input, nothing created (not even the
    // pictures a blend or describe would have stored).
    for state in [json!("x".repeat(256)), json!("two\nlines")] {
        for (path, body) in [
            (
                "/mj/submit/imagine",
                json!({"prompt": "a fox", "state": state}),
            ),
            (
                "/mj/submit/blend",
                json!({"base64Array": [data_url(), data_url()], "state": state}),
            ),
            (
                "/mj/submit/describe",
                json!({"base64": data_url(), "state": state}),
            ),
        ] {
            let (status, r) = p.post(&p.alice, path, &body).await;
            assert_eq!((status, &r["code"]), (400, &json!(4)), "{path}: {r}");
            assert!(r["description"].as_str().unwrap().contains("state"), "{r}");
        }
    }
    assert_eq!(
        p.generations(&p.alice).await,
        0,
        "bad input created something"
    );

    let state = format!("order 42 / {}", "é".repeat(240));
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/imagine",
            &json!({"prompt": "a kept promise", "state": state}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let id = r["result"].as_str().unwrap().to_owned();
    let task = p.ended(&p.alice, &id).await;
    assert_eq!(task["state"], state.as_str(), "{task}");
    // The regular API shows it as the generation's client reference.
    let g: Value = client()
        .get(p.server.url(&format!("/v1/generations/{id}")))
        .bearer_auth(&p.alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(g["client_reference"], state.as_str(), "{g}");

    // An action carries its own state (none: null), never its parent's; a bad one is refused.
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/action",
            &json!({"customId": custom_id(&task, "U1"), "taskId": id, "state": "a\u{1}b"}),
        )
        .await;
    assert_eq!((status, &r["code"]), (400, &json!(4)), "{r}");
    assert_eq!(p.generations(&p.alice).await, 1);
    let (_, r) = p
        .post(
            &p.alice,
            "/mj/submit/action",
            &json!({"customId": custom_id(&task, "U1"), "taskId": id, "state": "upscale #1"}),
        )
        .await;
    let up = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(up["state"], "upscale #1", "{up}");
    let (_, r) = p
        .post(
            &p.alice,
            "/mj/submit/action",
            &json!({"customId": custom_id(&task, "U2"), "taskId": id}),
        )
        .await;
    let up = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(up["state"], Value::Null, "{up}");

    for (path, body) in [
        (
            "/mj/submit/blend",
            json!({"base64Array": [data_url(), data_url()], "state": "blend-1"}),
        ),
        (
            "/mj/submit/describe",
            json!({"base64": data_url(), "state": "describe-1"}),
        ),
    ] {
        let (status, r) = p.post(&p.alice, path, &body).await;
        assert_eq!(status, 200, "{r}");
        let task = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
        assert_eq!(task["state"], body["state"], "{path}: {task}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pictures_link_says_it_was_deleted() {
    let p = Proxy::start(0, "").await;
    let id = p.imagine(&p.alice, "a fleeting cloud").await;
    let task = p.ended(&p.alice, &id).await;
    let url = task["imageUrl"].as_str().unwrap().to_owned();
    assert_eq!(anonymous(&url).await.0, 200);
    // The task's grid, deleted through the regular API.
    let g: Value = client()
        .get(p.server.url(&format!("/v1/generations/{id}")))
        .bearer_auth(&p.alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grid = g["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "grid")
        .unwrap_or_else(|| panic!("no grid in {g}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client()
        .delete(p.server.url(&format!("/v1/images/{grid}")))
        .bearer_auth(&p.alice)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let (status, body) = anonymous(&url).await;
    assert_eq!(status, 404);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    let detail = problem["detail"].as_str().unwrap();
    for words in ["has been deleted", &grid, "fetch its task again"] {
        assert!(detail.contains(words), "{detail}");
    }
}
