//! `/mj/submit/shorten`, and Custom Zoom's form: the button answered with code 21 and a task
//! waiting (`MODAL`), fetched and listed as such, then `/mj/submit/modal` with the new prompt
//! running the zoom as a new task; the refusals, each with the proxy's code, its status, and
//! nothing created.

use serde_json::json;

use super::{Proxy, custom_id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shorten_gives_its_prompts_in_the_task() {
    let p = Proxy::start(0, "").await;
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/shorten",
            &json!({"prompt": "a very detailed portrait of the old fisherman with a red hat --ar 2:3", "botType": "MID_JOURNEY", "state": "order 7"}),
        )
        .await;
    assert_eq!((status, &r["code"]), (200, &json!(1)), "{r}");
    let task = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(
        (task["action"].as_str(), task["status"].as_str()),
        (Some("SHORTEN"), Some("SUCCESS")),
        "{task}"
    );
    assert_eq!(task["buttons"], json!([]));
    assert_eq!(task["state"], "order 7");
    assert!(task["imageUrl"].is_null());
    // Its prompt holds the prompts the provider proposes, numbered as Midjourney numbers them.
    let prompt = task["prompt"].as_str().unwrap();
    assert!(prompt.starts_with("1\u{fe0f}\u{20e3} "), "{prompt}");
    assert!(prompt.contains("fisherman"), "{prompt}");
    assert_eq!(
        task["description"],
        "/shorten a very detailed portrait of the old fisherman with a red hat --ar 2:3"
    );

    // Refused with nothing created: no prompt, a banned word, a bad bot type, not JSON.
    let before = p.generations(&p.alice).await;
    for (body, status, code) in [
        (json!({}), 400, 4),
        (json!({"prompt": "  "}), 400, 4),
        (json!({"prompt": "a forbidden thing"}), 400, 24),
        (json!({"prompt": "a fox", "botType": "DALL_E"}), 400, 4),
        (json!({"prompt": "a fox", "state": "x".repeat(256)}), 400, 4),
        (json!({"prompt": 7}), 400, 4),
    ] {
        let (s, r) = p.post(&p.alice, "/mj/submit/shorten", &body).await;
        assert_eq!((s, &r["code"]), (status, &json!(code)), "{body}: {r}");
    }
    assert_eq!(p.generations(&p.alice).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_zoom_waits_for_its_form_then_runs_with_the_new_prompt() {
    let p = Proxy::start(0, "").await;
    let id = p.imagine(&p.alice, "a quiet harbour").await;
    let grid = p.ended(&p.alice, &id).await;
    let (_, r) = p
        .post(
            &p.alice,
            "/mj/submit/action",
            &json!({"customId": custom_id(&grid, "U3"), "taskId": id}),
        )
        .await;
    let up = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    let zoom = custom_id(&up, "Custom Zoom");
    let before = p.generations(&p.alice).await;

    // The button: code 21 and a task waiting for its form; nothing runs yet.
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/action",
            &json!({"customId": zoom, "taskId": up["id"]}),
        )
        .await;
    assert_eq!((status, &r["code"]), (200, &json!(21)), "{r}");
    assert_eq!(r["properties"]["finalPrompt"], "a quiet harbour --zoom 2");
    let waiting = r["result"].as_str().unwrap().to_owned();
    assert_eq!(p.generations(&p.alice).await, before);
    let (status, task) = p.get(&p.alice, &format!("/mj/task/{waiting}/fetch")).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(
        (task["status"].as_str(), task["action"].as_str()),
        (Some("MODAL"), Some("ZOOM")),
        "{task}"
    );
    let (_, listed) = p
        .post(
            &p.alice,
            "/mj/task/list-by-condition",
            &json!({"ids": [waiting]}),
        )
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // Another user sees no such task, and cannot submit its form.
    let (status, r) = p.get(&p.bob, &format!("/mj/task/{waiting}/fetch")).await;
    assert_eq!((status, &r["code"]), (404, &json!(3)), "{r}");
    let (status, r) = p
        .post(
            &p.bob,
            "/mj/submit/modal",
            &json!({"taskId": waiting, "prompt": "a harbour --zoom 1.5"}),
        )
        .await;
    assert_eq!((status, &r["code"]), (404, &json!(3)), "{r}");

    // Refused, nothing created: no task id, a mask, a task that waits for nothing, a prompt
    // without --zoom or past 2, a made-up id.
    let made_up = waiting.replacen("modal-", "modal-0", 1);
    for (body, status, code) in [
        (json!({"prompt": "x --zoom 1.5"}), 400, 4),
        (
            json!({"taskId": waiting, "prompt": "x --zoom 1.5", "maskBase64": "data:image/png;base64,AAAA"}),
            400,
            4,
        ),
        (json!({"taskId": id, "prompt": "x --zoom 1.5"}), 400, 4),
        (
            json!({"taskId": waiting, "prompt": "a harbour at dusk"}),
            400,
            4,
        ),
        (
            json!({"taskId": waiting, "prompt": "a harbour --zoom 2.5"}),
            400,
            4,
        ),
        (json!({"taskId": made_up, "prompt": "x --zoom 1.5"}), 404, 3),
        (
            json!({"taskId": waiting, "prompt": "x --zoom 1.5", "state": "two\nlines"}),
            400,
            4,
        ),
    ] {
        let (s, r) = p.post(&p.alice, "/mj/submit/modal", &body).await;
        assert_eq!((s, &r["code"]), (status, &json!(code)), "{body}: {r}");
    }
    assert_eq!(p.generations(&p.alice).await, before);

    // The form submitted: the zoom runs as a new task on the new prompt.
    let (status, r) = p
        .post(
            &p.alice,
            "/mj/submit/modal",
            &json!({"taskId": waiting, "prompt": "a quiet harbour at dusk --zoom 1.5", "state": "zoom 1"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert!(r["code"] == 1 || r["code"] == 22, "{r}");
    let zoomed = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(
        (zoomed["action"].as_str(), zoomed["status"].as_str()),
        (Some("ZOOM"), Some("SUCCESS")),
        "{zoomed}"
    );
    assert_eq!(zoomed["prompt"], "a quiet harbour at dusk --zoom 1.5");
    assert_eq!(zoomed["state"], "zoom 1");
    assert!(zoomed["imageUrl"].is_string());
    // An empty prompt takes the form's value as it opened.
    let (_, r) = p
        .post(&p.alice, "/mj/submit/modal", &json!({"taskId": waiting}))
        .await;
    let again = p.ended(&p.alice, r["result"].as_str().unwrap()).await;
    assert_eq!(again["prompt"], "a quiet harbour --zoom 2", "{again}");
}
