//! The CLI as a client (`--server URL` / `ATELIER_SERVER`, `ATELIER_API_KEY`): each command
//! run against a real `atelier serve` prints what the same command prints on the data's
//! machine and exits with the same code; keys scope what it sees; a server that goes away
//! mid-generation is waited for; commands that need the data's machine refuse the flag.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{Server, key_for};
use crate::support::{DataDir, bare_cmd};

/// The CLI pointed at `server`, signed with `key`.
fn remote(server: &str, key: Option<&str>) -> Command {
    let mut cmd = bare_cmd();
    cmd.env("ATELIER_SERVER", server);
    if let Some(key) = key {
        cmd.env("ATELIER_API_KEY", key);
    }
    cmd
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("the CLI runs")
}

/// Exit code and the one JSON document on stdout.
fn json(cmd: Command, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(cmd, &all);
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// A view without what only a local run shows (the folder store's paths).
fn without_paths(mut v: Value) -> Value {
    if let Some(images) = v.get_mut("images").and_then(Value::as_array_mut) {
        for i in images {
            strip(i);
        }
    }
    strip(&mut v);
    v
}

fn strip(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("path");
        o.remove("thumbnail_path");
        o.remove("queue");
    }
}

#[test]
fn each_command_prints_and_exits_as_it_does_on_the_data_machine() {
    let data = DataDir::new();
    let alice = key_for(&data, "alice@example.com", false);
    let bob = key_for(&data, "bob@example.com", false);
    let root = key_for(&data, "root@example.com", true);
    let s = Server::on(data);
    let local = || s.data.cmd();
    let as_alice = || remote(&s.base, Some(&alice));

    // generate: the whole generation, as `generation show` has it.
    let (code, made) = json(
        as_alice(),
        &["generate", "a lighthouse", "--upscale", "1,2"],
    );
    assert_eq!(code, 0, "{made}");
    assert_eq!(made["status"], "succeeded");
    assert_eq!(made["images"].as_array().map(Vec::len), Some(3), "{made}");
    let id = made["id"].as_str().expect("an id").to_owned();
    let (code, shown) = json(local(), &["generation", "show", &id]);
    assert_eq!(code, 0);
    assert_eq!(without_paths(shown.clone()), without_paths(made.clone()));
    // The human form is the local one, line for line (paths aside: the server shows keys).
    let (code, out, _) = text(&run(as_alice(), &["generation", "show", &id]));
    assert_eq!(code, 0);
    let (_, local_out, _) = text(&run(local(), &["generation", "show", &id]));
    assert_eq!(out.lines().next(), local_out.lines().next());
    assert_eq!(out.lines().count(), local_out.lines().count());

    // generation show --events: the same events in the same order.
    let (_, remote_events) = json(as_alice(), &["generation", "show", &id, "--events"]);
    let (_, local_events) = json(local(), &["generation", "show", &id, "--events"]);
    assert_eq!(remote_events["events"], local_events["events"]);
    assert!(
        remote_events["events"]
            .as_array()
            .is_some_and(|e| e.len() >= 4)
    );

    // images: list, show, status, tag.
    let grid = made["images"][0]["id"].as_str().expect("grid").to_owned();
    let (code, listed) = json(as_alice(), &["image", "list", "--limit", "2"]);
    assert_eq!(code, 0);
    let (_, local_listed) = json(local(), &["image", "list", "--limit", "2"]);
    let ids = |v: &Value| -> Vec<Value> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(ids(&listed), ids(&local_listed));
    assert_eq!(ids(&listed).len(), 2);
    let (code, all) = json(as_alice(), &["image", "list", "--generation", &id]);
    assert_eq!((code, ids(&all).len()), (0, 3));
    let (code, status) = json(as_alice(), &["image", "status", &grid, "final"]);
    assert_eq!((code, status["status"].as_str()), (0, Some("final")));
    let (code, out, _) = text(&run(as_alice(), &["image", "tag", &grid, "Red", "blue"]));
    assert_eq!(
        (code, out.as_str()),
        (0, format!("image {grid} tags: blue, red").as_str())
    );
    let (_, local_image) = json(local(), &["image", "show", &grid]);
    assert_eq!(local_image["status"], "final");
    let (_, remote_image) = json(as_alice(), &["image", "show", &grid]);
    assert_eq!(without_paths(remote_image), without_paths(local_image));

    // events (the feed, not followed): the same lines as a local run (one user's work only).
    let (code, feed, _) = text(&run(as_alice(), &["events", "--json", "--generation", &id]));
    let (_, local_feed, _) = text(&run(local(), &["events", "--json", "--generation", &id]));
    assert_eq!(code, 0);
    assert_eq!(feed, local_feed);

    // A new version through the server.
    let (code, version) = json(as_alice(), &["image", "version", &grid]);
    assert_eq!(
        (code, version["status"].as_str()),
        (0, Some("succeeded")),
        "{version}"
    );
    assert_eq!(version["version"], 2);

    // The same errors and exit codes.
    let missing = "0193a7a0-0000-7000-8000-000000000000";
    for args in [
        vec!["image", "show", missing],
        vec!["image", "show", "not-an-id"],
        vec!["jobs", "cancel", &id],
        vec!["image", "status", &grid, "finished"],
        vec!["generate", "x", "--upscale", "7"],
    ] {
        let (rc, _, rerr) = text(&run(as_alice(), &args));
        let (lc, _, lerr) = text(&run(local(), &args));
        assert_eq!(rc, lc, "{args:?}: {rerr} / {lerr}");
        assert_eq!(rc, 2, "{args:?}: {rerr}");
        if args[1] != "status" {
            assert_eq!(rerr, lerr, "{args:?}");
        }
    }
    let (code, err) = json(as_alice(), &["image", "show", missing]);
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (2, Some("not_found"))
    );

    // Keys scope what is seen: bob's view of alice's image is that it does not exist.
    let (code, _, err) = text(&run(remote(&s.base, Some(&bob)), &["image", "show", &grid]));
    assert_eq!(code, 2);
    assert!(err.contains("not found"), "{err}");
    let (code, bobs) = json(remote(&s.base, Some(&bob)), &["image", "list"]);
    assert_eq!((code, bobs.as_array().map(Vec::len)), (0, Some(0)));

    // Without a key, or with a wrong one: refused, with where the key is read from.
    for key in [None, Some("ak_wrong")] {
        let (code, err) = json(remote(&s.base, key), &["image", "list"]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(err["error"]["code"], "unauthorized");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("ATELIER_API_KEY")),
            "{err}"
        );
    }

    // A user is not an administrator there either.
    let (code, err) = json(as_alice(), &["user", "list"]);
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (1, Some("forbidden")),
        "{err}"
    );

    // Administration through the server.
    let as_root = || remote(&s.base, Some(&root));
    let (code, carol) = json(as_root(), &["user", "add", "Carol@Example.com"]);
    assert_eq!(
        (code, carol["email"].as_str()),
        (0, Some("carol@example.com")),
        "{carol}"
    );
    let out = run(
        as_root(),
        &[
            "key",
            "create",
            "--user",
            "carol@example.com",
            "--name",
            "ci",
        ],
    );
    let (code, carol_key, note) = text(&out);
    assert_eq!(code, 0, "{note}");
    assert!(carol_key.starts_with("atl_"), "{carol_key}");
    assert!(note.contains("shown this once"), "{note}");
    // A URL that is not the API's (a wrong prefix): said so, not "not found".
    let (code, err) = json(
        remote(&format!("{}/prefix", s.base), Some(&alice)),
        &["image", "list"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--server")),
        "{err}"
    );
    let (code, listed) = json(remote(&s.base, Some(&carol_key)), &["image", "list"]);
    assert_eq!((code, listed.as_array().map(Vec::len)), (0, Some(0)));
    let (code, keys) = json(as_root(), &["key", "list", "--user", "carol@example.com"]);
    assert_eq!(
        (code, keys.as_array().map(Vec::len)),
        (0, Some(1)),
        "{keys}"
    );
    assert!(
        keys[0].get("key").is_none(),
        "a listed key never shows its secret"
    );
    let (code, credits) = json(
        as_root(),
        &[
            "credits",
            "grant",
            "--user",
            "carol@example.com",
            "7",
            "--note",
            "welcome",
        ],
    );
    assert_eq!(code, 0, "{credits}");
    let (_, local_credits) = json(
        local(),
        &[
            "credits",
            "show",
            "--user",
            "carol@example.com",
            "--limit",
            "1",
        ],
    );
    assert_eq!(credits, local_credits);
    let (code, out, _) = text(&run(
        as_root(),
        &["credits", "show", "--user", "carol@example.com"],
    ));
    let (_, local_out, _) = text(&run(
        local(),
        &["credits", "show", "--user", "carol@example.com"],
    ));
    assert_eq!((code, out), (0, local_out));
    let key_id = keys[0]["id"].as_str().expect("key id").to_owned();
    let (code, revoked) = json(as_root(), &["key", "revoke", &key_id]);
    assert_eq!(code, 0);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (code, _) = json(remote(&s.base, Some(&carol_key)), &["image", "list"]);
    assert_eq!(code, 1, "a revoked key signs no one in");
    let (code, audit) = json(as_root(), &["audit", "--limit", "5"]);
    assert_eq!(code, 0);
    let (_, local_audit) = json(local(), &["audit", "--limit", "5"]);
    assert_eq!(audit, local_audit);
    let (code, accounts) = json(as_root(), &["accounts"]);
    assert_eq!((code, accounts.is_array()), (0, true), "{accounts}");
    let (code, _, err) = text(&run(as_root(), &["accounts", "--check"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn commands_of_the_data_machine_and_bad_servers_are_refused_clearly() {
    let started = Instant::now();
    for args in [
        vec!["serve"],
        vec!["worker"],
        vec!["jobs", "run", "--until-idle"],
        vec!["migrate", "--to-database", "sqlite://x.db"],
        vec!["config", "show"],
        vec!["image", "import", "a.png"],
        vec!["describe", "a.png"],
    ] {
        let out = run(remote("http://127.0.0.1:9", Some("ak_x")), &args);
        let (code, stdout, err) = text(&out);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(stdout.is_empty());
        assert!(
            err.contains("--server") || err.contains("HTTP API"),
            "{args:?}: {err}"
        );
    }
    // A shell that sets the variables for a remote server still runs local commands.
    let data = DataDir::new();
    let out = data
        .cmd()
        .env("ATELIER_SERVER", "")
        .env("ATELIER_API_KEY", "atl_x")
        .args(["image", "list"])
        .output()
        .expect("the CLI runs");
    assert_eq!(text(&out).0, 0, "{}", text(&out).2);
    // A key with a line break is refused before anything is sent.
    let (code, _, err) = text(&run(
        remote("http://127.0.0.1:9", Some("atl_x\nInjected: 1")),
        &["image", "list"],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ATELIER_API_KEY"), "{err}");
    // --data-dir with --server: which data would it be?
    let (code, _, err) = text(&run(
        remote("http://127.0.0.1:9", None),
        &["--data-dir", "/tmp", "image", "list"],
    ));
    assert_eq!(code, 2, "{err}");
    for bad in [
        "127.0.0.1:8080",
        "ftp://127.0.0.1/",
        "http://127.0.0.1:8080/?x=1",
    ] {
        let (code, err) = json(remote(bad, None), &["image", "list"]);
        assert_eq!(
            (code, err["error"]["code"].as_str()),
            (2, Some("invalid_input")),
            "{bad}"
        );
    }
    // Nobody listens: a clear error, exit 1, at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let (code, err) = json(
        remote(&format!("http://127.0.0.1:{port}"), None),
        &["image", "list"],
    );
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (1, Some("unreachable")),
        "{err}"
    );
    // A create is tried again, then given up, as clearly.
    let (code, err) = json(
        remote(&format!("http://127.0.0.1:{port}"), None),
        &["generate", "x"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(started.elapsed() < Duration::from_mins(1));
}

#[test]
fn a_server_that_answers_something_else_is_an_error_not_a_crash() {
    // A plain HTTP server that answers every request with an HTML page.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(8) {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let body = "<html>not atelier</html>";
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let server = format!("http://{addr}");
    let (code, err) = json(remote(&server, Some("ak_x")), &["image", "list"]);
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (1, Some("internal")),
        "{err}"
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Atelier server")),
        "{err}"
    );
}

/// `atelier serve` on `bind`, its address once it listens.
fn serve_on(data: &DataDir, bind: &str) -> (Child, String) {
    let mut child = data
        .cmd()
        .args(["serve", "--bind", bind, "--grace", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a first line");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, addr)
}

#[test]
fn a_generation_followed_through_a_server_restart_ends_as_on_the_server() {
    // Slow enough that the server stops mid-generation.
    let data = DataDir::raw(
        "[providers.sandbox]\nsize = 128\ndelay_ms = 400\n\
         [jobs]\nretry_base_secs = 0.05\npoll_secs = 0.05\n\
         [server]\nauth = \"none\"\n",
    );
    let (mut first, addr) = serve_on(&data, "127.0.0.1:0");
    let server = format!("http://{addr}");
    let mut cli = remote(&server, None)
        .args([
            "--json",
            "generate",
            "a ship in a storm",
            "--upscale",
            "none",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    // Wait until the generation runs, then stop the server (its job goes back to the queue).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(remote(&server, None), &["events", "--json"]);
        if String::from_utf8_lossy(&out.stdout).contains("generation.progress") {
            break;
        }
        assert!(Instant::now() < deadline, "the generation never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    let _ = first.wait();
    std::thread::sleep(Duration::from_millis(1500));
    // Same address again: the follower reconnects, and the generation ends.
    let (mut second, again) = serve_on(&data, &addr);
    assert_eq!(again, addr);
    let t = Instant::now();
    let status = loop {
        if let Some(status) = cli.try_wait().expect("wait") {
            break status;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "the CLI never ended");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = cli.wait_with_output().expect("output");
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(g["status"], "succeeded", "{g}");
    let _ = second.kill();
    let _ = second.wait();
}
