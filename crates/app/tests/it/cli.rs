//! The real binary in a temporary data directory: results, JSON contracts, exit codes and
//! bad input (which must change nothing).

use std::path::Path;

use atelier::pipeline::decode;
use atelier::providers::sandbox::draw;
use atelier::store::sha256_hex;

use crate::support::{DataDir, bare_cmd};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_png(path: &Path, side: u32) -> Vec<u8> {
    let bytes = draw::grid("an imported grid", 5, side)
        .encode_png()
        .unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn generate_stores_verified_images_and_prints_them() {
    let d = DataDir::new();
    let (code, g) = d.json(&[
        "generate",
        "a red fox in the snow",
        "--seed",
        "42",
        "--category",
        "character",
        "--subject",
        "Fox",
    ]);
    assert_eq!(code, 0, "{g}");
    assert_eq!(g["status"], "succeeded");
    assert_eq!(g["progress"], 100.0);
    assert_eq!(g["parameters"]["seed"], 42);
    let images = g["images"].as_array().unwrap();
    let roles: Vec<&str> = images.iter().map(|i| i["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["grid", "upscale_1", "upscale_2", "upscale_3", "upscale_4"]
    );
    for i in images {
        let path = Path::new(i["path"].as_str().unwrap());
        assert!(path.is_absolute(), "{path:?}");
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(i["sha256"], sha256_hex(&bytes));
        assert_eq!(i["size_bytes"], bytes.len());
        let pixels = decode(&bytes).unwrap();
        assert_eq!(
            (i["width"].as_u64().unwrap(), i["height"].as_u64().unwrap()),
            (u64::from(pixels.width), u64::from(pixels.height))
        );
        assert_eq!(i["format"], "png");
        assert_eq!(i["palette"].as_array().unwrap().len(), 5);
        assert_eq!(i["synthetic"], true);
        assert!(Path::new(i["thumbnail_path"].as_str().unwrap()).is_file());
        assert!(i["id"].is_string() && i["generation_id"] == g["id"]);
    }
    assert_eq!(images[0]["width"], 128);
    assert_eq!(images[1]["width"], 64);
    let id = g["id"].as_str().unwrap();
    let mut expected: Vec<String> = ["grid", "upscale_1", "upscale_2", "upscale_3", "upscale_4"]
        .iter()
        .flat_map(|r| [format!("{id}/{r}.png"), format!("{id}/thumb_{r}.webp")])
        .collect();
    expected.sort();
    assert_eq!(
        d.stored_files(),
        expected,
        "exactly the images and thumbnails, nothing half-written"
    );

    // Same prompt and seed, same pictures.
    let (_, again) = d.json(&[
        "generate",
        "a red fox in the snow",
        "--seed",
        "42",
        "--upscale",
        "none",
    ]);
    assert_eq!(again["images"][0]["sha256"], images[0]["sha256"]);
}

#[test]
fn generate_takes_image_prompts_as_files_or_image_ids() {
    let d = DataDir::new();
    let files = tempfile::tempdir().unwrap();
    let a = files.path().join("a.png");
    write_png(&a, 40);
    let (_, first) = d.json(&["generate", "keep me", "--upscale", "1"]);
    let upscale = first["images"][1]["id"].as_str().unwrap().to_owned();
    let (code, g) = d.json(&[
        "generate",
        "a fox in these colours",
        "--seed",
        "9",
        "--upscale",
        "none",
        "--image",
        a.to_str().unwrap(),
        "--image",
        &upscale,
    ]);
    assert_eq!(code, 0, "{g}");
    assert_eq!(g["status"], "succeeded");
    let inputs = g["parameters"]["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 2, "{g}");
    assert_eq!(inputs[1], upscale.as_str());
    // The file was imported: its image is the first input.
    let (_, imported) = d.json(&["image", "show", inputs[0].as_str().unwrap()]);
    assert_eq!(imported["width"], 40, "{imported}");
    // The pictures steer the sandbox's drawing: the same seed without them draws another grid.
    let (_, plain) = d.json(&[
        "generate",
        "a fox in these colours",
        "--seed",
        "9",
        "--upscale",
        "none",
    ]);
    assert_ne!(plain["images"][0]["sha256"], g["images"][0]["sha256"]);
    // Six are refused before anything is read or written.
    let before = d.stored_files();
    let six: Vec<&str> = std::iter::repeat_n(upscale.as_str(), 6).collect();
    let mut args = vec!["generate", "too many"];
    for id in &six {
        args.extend(["--image", id]);
    }
    let out = d.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("6 image prompts: the limit is 5"));
    assert_eq!(d.stored_files(), before);
}

#[test]
fn without_json_the_result_is_plain_lines_and_stderr_stays_quiet_off_a_terminal() {
    let d = DataDir::new();
    let out = d.run(&["generate", "a quiet harbour", "--upscale", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(text.starts_with("generation "), "{text}");
    assert!(text.contains("succeeded") && text.contains("grid") && text.contains("upscale_1"));
    assert!(
        out.stderr.is_empty(),
        "no progress bar or notice off a terminal: {}",
        stderr(&out)
    );
}

#[test]
fn images_are_listed_shown_tagged_finalised_and_versioned() {
    let d = DataDir::new();
    let (_, g) = d.json(&[
        "generate",
        "castle",
        "--upscale",
        "2",
        "--category",
        "scene",
        "--subject",
        "Castle",
    ]);
    let grid = g["images"][0]["id"].as_str().unwrap().to_owned();
    let up = g["images"][1]["id"].as_str().unwrap().to_owned();

    let (code, list) = d.json(&["image", "list"]);
    assert_eq!(code, 0);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for i in list {
        for key in [
            "id",
            "generation_id",
            "role",
            "path",
            "width",
            "height",
            "sha256",
        ] {
            assert!(!i[key].is_null(), "{key} missing in {i}");
        }
    }
    let (_, shown) = d.json(&["image", "show", &up]);
    assert_eq!(
        (shown["role"].as_str(), shown["status"].as_str()),
        (Some("upscale_2"), Some("draft"))
    );

    let (code, fin) = d.json(&["image", "status", &up, "final"]);
    assert_eq!((code, fin["status"].as_str()), (0, Some("final")));
    let (_, finals) = d.json(&["image", "list", "--status", "final"]);
    assert_eq!(finals.as_array().unwrap().len(), 1);
    let (_, tagged) = d.json(&["image", "tag", &grid, "Cover", "keep"]);
    assert_eq!(tagged["tags"], serde_json::json!(["cover", "keep"]));
    let (_, by_tag) = d.json(&["image", "list", "--tag", "cover"]);
    assert_eq!(by_tag[0]["id"].as_str(), Some(grid.as_str()));
    let (_, scenes) = d.json(&["image", "list", "--category", "character"]);
    assert!(scenes.as_array().unwrap().is_empty());

    let (code, v2) = d.json(&["image", "version", &grid]);
    assert_eq!(code, 0, "{v2}");
    assert_eq!(
        (v2["version"].as_u64(), v2["status"].as_str()),
        (Some(2), Some("succeeded"))
    );
    assert_eq!(v2["parent_id"], g["id"]);
    assert_eq!(v2["prompt"], "castle");
    assert_eq!(v2["images"].as_array().unwrap().len(), 2);
}

#[test]
fn queued_generations_run_later_and_keep_their_events() {
    let d = DataDir::new();
    let (code, g) = d.json(&["generate", "later", "--no-wait"]);
    assert_eq!((code, g["status"].as_str()), (0, Some("queued")));
    let id = g["id"].as_str().unwrap();
    let (code, run) = d.json(&["jobs", "run", "--until-idle"]);
    assert_eq!((code, run["completed"].as_u64()), (0, Some(1)));
    let (_, shown) = d.json(&["generation", "show", id, "--events"]);
    assert_eq!(shown["status"], "succeeded");
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.first().unwrap()["type"], "generation.created");
    assert_eq!(events.last().unwrap()["type"], "generation.completed");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "generation.upscale_completed" && e["index"] == 4)
    );

    // Cancel a queued one.
    let (_, q) = d.json(&["generate", "never mind", "--no-wait"]);
    let (code, c) = d.json(&["jobs", "cancel", q["id"].as_str().unwrap()]);
    assert_eq!((code, c["status"].as_str()), (0, Some("canceled")));
    let (_, run) = d.json(&["jobs", "run", "--until-idle"]);
    assert_eq!(run["completed"], 0);
}

#[test]
fn imports_verify_split_and_catalogue_existing_files() {
    let d = DataDir::new();
    let grid = d.path().join("mj_grid.png");
    let bytes = write_png(&grid, 128);
    let (code, out) = d.json(&[
        "image",
        "import",
        grid.to_str().unwrap(),
        "--grid",
        "--category",
        "element",
        "--subject",
        "Shell",
    ]);
    assert_eq!(code, 0, "{out}");
    let g = &out[0];
    assert_eq!(
        (
            g["kind"].as_str(),
            g["status"].as_str(),
            g["prompt"].as_str()
        ),
        (Some("import"), Some("succeeded"), Some("mj_grid"))
    );
    let images = g["images"].as_array().unwrap();
    assert_eq!(images.len(), 5);
    assert_eq!(images[0]["sha256"], sha256_hex(&bytes));
    assert!(
        images
            .iter()
            .all(|i| i["synthetic"] == false && i["category"] == "element")
    );
    assert_eq!(images[1]["width"], 64);

    let single = d.path().join("photo.png");
    write_png(&single, 32);
    let (_, out) = d.json(&[
        "image",
        "import",
        single.to_str().unwrap(),
        "--prompt",
        "a shell on sand",
    ]);
    let images = out[0]["images"].as_array().unwrap();
    assert_eq!(
        (images.len(), images[0]["role"].as_str()),
        (1, Some("variant_1"))
    );
    assert_eq!(out[0]["prompt"], "a shell on sand");
}

#[test]
fn the_library_layout_names_files_by_category_subject_and_version() {
    let d = DataDir::with_config("[storage]\nlayout = \"library\"\n");
    let (code, g) = d.json(&[
        "generate",
        "a wise owl",
        "--category",
        "character",
        "--subject",
        "Owl Sage",
        "--upscale",
        "1",
    ]);
    assert_eq!(code, 0, "{g}");
    let path = g["images"][0]["path"].as_str().unwrap();
    assert!(
        path.contains("/raw/character/character_owl-sage_v1_"),
        "{path}"
    );
    assert!(path.ends_with("_grid.png"));
    assert!(
        g["images"][0]["thumbnail_path"]
            .as_str()
            .unwrap()
            .contains("/processed/character/")
    );
}

#[test]
fn configuration_layers_reach_the_binary() {
    let d = DataDir::new();
    let out = d
        .cmd()
        .args(["--json", "generate", "env", "--upscale", "none"])
        .env("ATELIER_PROVIDERS__SANDBOX__SIZE", "64")
        .output()
        .unwrap();
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["images"][0]["width"], 64, "env overrides the file");
    let out = d
        .cmd()
        .args(["image", "list"])
        .env("ATELIER_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ATELIER_LOG is not a configuration key: {}",
        stderr(&out)
    );
    let out = d
        .cmd()
        .args(["image", "list"])
        .env("ATELIER_JOBS__LEASE_SEC", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a misspelt key is reported");
    assert!(stderr(&out).contains("lease_sec"));

    // ATELIER_DATA_DIR alone chooses the data directory; DATABASE_URL the catalogue.
    let other = tempfile::tempdir().unwrap();
    let db = other.path().join("elsewhere.db");
    let out = bare_cmd()
        .args(["--json", "generate", "env", "--upscale", "none"])
        .env("ATELIER_DATA_DIR", other.path())
        .env("ATELIER_PROVIDERS__SANDBOX__SIZE", "32")
        .env("ATELIER_PROVIDERS__SANDBOX__DELAY_MS", "0")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(db.is_file());
    assert!(other.path().join("images").is_dir());

    let out = bare_cmd().args(["config", "default"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[providers.sandbox]") && text.contains("lease_secs"));
    let out = bare_cmd()
        .args(["--json", "config", "default"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["default_provider"], "sandbox");
}

/// Runs a command that must be refused: exit 2, one clear line, nothing written.
fn refused(args: &[&str], needle: &str) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let out = bare_cmd()
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: {err:?} lacks {needle:?}"
    );
    assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
    assert!(!data.exists(), "{args:?} wrote the data directory");

    // With --json, the same refusal is one JSON document on stdout, whatever refused it.
    let out = bare_cmd()
        .arg("--json")
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--json {args:?}: {}",
        stderr(&out)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json {args:?}: stdout is not one JSON document ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        json["error"]["code"].is_string()
            && message.to_lowercase().contains(&needle.to_lowercase()),
        "--json {args:?}: {json} lacks {needle:?}"
    );
    assert!(!data.exists(), "--json {args:?} wrote the data directory");
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let long = "x".repeat(6001);
    refused(&["generate", ""], "prompt is empty");
    refused(&["generate", "   \t "], "prompt is empty");
    refused(&["generate", &long], "6001 characters");
    refused(
        &["generate", "fox", "--provider", "dall-e-9"],
        "unknown provider",
    );
    refused(&["generate", "fox", "--seed", "-1"], "--seed");
    refused(&["generate", "fox", "--seed", "4294967296"], "--seed");
    refused(&["generate", "fox", "--seed", "abc"], "--seed");
    refused(&["generate", "fox", "--upscale", "5"], "--upscale");
    refused(&["generate", "fox", "--category", "villain"], "villain");
    refused(&["generate", "fox", "--subject", "  "], "subject is empty");
    refused(&["image", "show", "not-an-id"], "not a valid image id");
    refused(
        &["image", "show", "0192f0c1-0000-7000-8000-000000000001"],
        "not found",
    );
    refused(
        &[
            "image",
            "status",
            "0192f0c1-0000-7000-8000-000000000001",
            "published",
        ],
        "published",
    );
    refused(&["frobnicate"], "unrecognized subcommand");
    refused(&["generate", "fox --ar 16"], "--ar");
    refused(&["generate", "fox --chaos 500"], "--chaos");
    refused(&["generate", "fox --seed 3", "--seed", "4"], "contradicts");
    refused(&["generate", "--", "--ar 1:1"], "prompt is empty");
    refused(&["generate", "fox", "--bot", "dalle"], "--bot");
    refused(
        &["describe", "no-such-file.png"],
        "neither an image id nor a file",
    );
    refused(&["blend", "a.png"], "2 values required");
    refused(
        &["generate", "fox", "--image", "no-such-file.png"],
        "neither an image id nor a file",
    );
    refused(
        &["generate", "fox", "--param", "inputs=x"],
        "set by the server",
    );
    refused(
        &["simulate", "discord", "--faults", "earthquake"],
        "earthquake",
    );
    refused(&["simulate", "discord", "--fault-rate", "2"], "fault-rate");
    refused(&["accounts", "--wait", "0"], "--wait");

    let files = tempfile::tempdir().unwrap();
    let text = files.path().join("notes.png");
    std::fs::write(&text, "just some words").unwrap();
    refused(
        &["image", "import", text.to_str().unwrap()],
        "not a png, jpeg or webp",
    );
    let good = files.path().join("good.png");
    let bytes = write_png(&good, 64);
    let cut = files.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    refused(
        &[
            "image",
            "import",
            good.to_str().unwrap(),
            cut.to_str().unwrap(),
        ],
        "truncated or corrupt",
    );
    refused(
        &[
            "image",
            "import",
            files.path().join("missing.png").to_str().unwrap(),
        ],
        "cannot read",
    );
    let odd = files.path().join("odd.png");
    std::fs::write(
        &odd,
        draw::grid("x", 1, 64)
            .crop(0, 0, 63, 64)
            .encode_png()
            .unwrap(),
    )
    .unwrap();
    refused(
        &["image", "import", "--grid", odd.to_str().unwrap()],
        "even sides",
    );
}

#[test]
fn an_unusable_data_directory_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = bare_cmd()
        .arg("--data-dir")
        .arg(file.join("data"))
        .args(["generate", "fox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not writable"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn bad_input_on_an_existing_catalogue_changes_nothing() {
    let d = DataDir::new();
    let (_, g) = d.json(&["generate", "keep me", "--upscale", "1"]);
    let id = g["images"][0]["id"].as_str().unwrap();
    let (_, before) = d.json(&["image", "list"]);
    let files = d.stored_files();
    for args in [
        vec!["image", "tag", id, "no spaces allowed"],
        vec![
            "image",
            "status",
            "0192f0c1-0000-7000-8000-000000000001",
            "final",
        ],
        vec!["image", "version", "0192f0c1-0000-7000-8000-000000000001"],
        vec!["jobs", "cancel", g["id"].as_str().unwrap()],
        vec!["generate", ""],
        vec!["image", "action", id, "pan-left"],
        vec!["image", "action", id, "u9"],
        vec!["image", "action", "nope"],
        vec!["blend", id, "0192f0c1-0000-7000-8000-000000000001"],
    ] {
        let out = d.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let (_, after) = d.json(&["image", "list"]);
    assert_eq!(before, after);
    assert_eq!(files, d.stored_files());
}

#[test]
fn runtime_failures_exit_with_1_and_json_errors_are_json() {
    let d = DataDir::new();
    std::fs::write(d.path().join("atelier.db"), vec![0x42; 8192]).unwrap();
    let out = d.run(&["generate", "fox"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: "));
    let (code, json) = d.json(&["image", "show", "nope"]);
    assert_eq!(
        (code, json["error"]["code"].as_str()),
        (2, Some("invalid_input"))
    );
}

#[test]
fn midjourney_messages_are_read_from_stdin() {
    use std::io::Write;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/providers/midjourney/fixtures/progress_31.json"
    );
    let read = |input: &[u8]| {
        let mut child = bare_cmd()
            .args(["midjourney", "parse"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = read(&std::fs::read(fixture).unwrap());
    assert!(out.status.success());
    let reading: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (reading["kind"].as_str(), reading["progress"].as_u64()),
        (Some("progress"), Some(31))
    );
    for bad in [&b"{\"id\": "[..], b"[1, 2]", b"", b"\xff\xfe"] {
        let out = read(bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// Runs the binary on a pseudo-terminal (util-linux `script`) and returns what it showed.
fn on_a_terminal(d: &DataDir, args: &str) -> String {
    let log = d.path().join("terminal.log");
    let command = format!(
        "{} --data-dir {} {args}",
        env!("CARGO_BIN_EXE_atelier"),
        d.path().display()
    );
    let status = std::process::Command::new("script")
        .args(["-qec", &command])
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("util-linux `script` runs the binary on a pseudo-terminal");
    assert!(status.success());
    std::fs::read_to_string(&log).unwrap().replace('\r', "\n")
}

#[test]
fn on_a_terminal_progress_shows_and_the_sandbox_notice_is_said_once() {
    let d = DataDir::raw("[providers.sandbox]\nsize = 64\ndelay_ms = 700\n");
    let first = on_a_terminal(&d, "generate 'a terminal test' --upscale 1");
    assert!(
        first.contains("synthetic") && first.contains("configure a"),
        "{first}"
    );
    assert!(
        first.contains("grid_rendering") && first.contains('%'),
        "no progress bar: {first}"
    );
    assert!(first.contains("succeeded"));
    let second = on_a_terminal(&d, "generate 'again' --upscale none");
    assert!(
        !second.contains("configure a"),
        "the notice is said once: {second}"
    );
    let json = on_a_terminal(&d, "--json generate 'quiet' --upscale none");
    assert!(
        !json.contains("grid_rendering"),
        "no progress bar with --json: {json}"
    );
}

#[test]
fn parameters_no_midjourney_model_accepts_are_refused_for_every_provider() {
    refused(
        &["generate", "x --ar 99999:1"],
        "--ar 99999:1: expected W:H in whole numbers",
    );
    refused(&["generate", "x --ar 3:0"], "--ar 3:0");
    refused(&["generate", "x --ar 1.5:1"], "--ar 1.5:1");
    refused(&["generate", "x --v 99"], "--v 99: expected 1, 2");
    refused(&["generate", "x --q 3"], "--q 3: expected 1, 2 or 4");
    refused(
        &["generate", "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}"],
        "prompt is empty",
    );
    refused(&["generate", "\u{200B} --ar 1:1"], "prompt is empty");

    // On an existing catalogue, nothing changes either.
    let d = DataDir::new();
    let (_, g) = d.json(&["generate", "keep me", "--upscale", "none"]);
    assert_eq!(g["status"], "succeeded", "{g}");
    let (_, before) = d.json(&["image", "list"]);
    let files = d.stored_files();
    for prompt in ["x --ar 99999:1", "x --v 99", "x --q 3", "\u{FEFF}\u{200B}"] {
        let out = d.run(&["generate", prompt]);
        assert_eq!(out.status.code(), Some(2), "{prompt:?}: {}", stderr(&out));
    }
    let (_, after) = d.json(&["image", "list"]);
    assert_eq!(before, after);
    assert_eq!(files, d.stored_files());

    // Which model takes which parameter is Midjourney's rule: the sandbox draws these as before.
    let (code, g) = d.json(&[
        "generate",
        "x --stop 50 --v 7 --oref https://example.com/o.png",
        "--upscale",
        "none",
    ]);
    assert_eq!(code, 0, "{g}");
    assert_eq!(g["parameters"]["stop"], 50);
    assert_eq!(g["parameters"]["version"], "7");
}

#[test]
fn banned_words_are_refused_before_anything_is_written() {
    let d = DataDir::with_config("[limits]\nbanned_words = [\"gore\", \"red wedding\"]\n");
    for prompt in ["a castle, GORE everywhere", "the Red Wedding at dawn"] {
        let out = d.run(&["generate", prompt]);
        assert_eq!(out.status.code(), Some(2), "{prompt}");
        assert!(stderr(&out).contains("refuses"), "{}", stderr(&out));
    }
    assert!(!d.path().join("atelier.db").exists(), "nothing was written");
    let (code, _) = d.json(&["generate", "a gorgeous red dress at a wedding"]);
    assert_eq!(code, 0);
}

#[test]
fn image_action_without_an_action_lists_what_the_image_offers() {
    let d = DataDir::new();
    let (_, g) = d.json(&["generate", "a harbour", "--upscale", "2"]);
    let id_of = |role: &str| {
        g["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["role"] == role)
            .unwrap_or_else(|| panic!("no {role} in {g}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (code, grid) = d.json(&["image", "action", &id_of("grid")]);
    assert_eq!(code, 0);
    assert_eq!(
        grid["actions"],
        serde_json::json!(["u1", "u2", "u3", "u4", "v1", "v2", "v3", "v4", "reroll"])
    );
    let out = d.run(&["image", "action", &id_of("upscale_2")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "vary-strong vary-subtle upscale-subtle upscale-creative zoom-out-2x zoom-out-1.5x zoom-custom pan-left pan-right pan-up pan-down"
    );
}

#[test]
fn shorten_prints_its_prompts_and_custom_zoom_takes_a_prompt() {
    let d = DataDir::new();
    let out = d.run(&[
        "shorten",
        "a very detailed portrait of the old fisherman --ar 2:3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\n1. detailed portrait old fisherman --ar 2:3\n"),
        "{text}"
    );
    let (code, g) = d.json(&["shorten", "a red fox in the snow"]);
    assert_eq!(code, 0);
    assert_eq!(g["kind"], "shorten", "{g}");
    assert!(
        g["prompts"].as_array().is_some_and(|p| !p.is_empty()),
        "{g}"
    );
    assert_eq!(g["images"], serde_json::json!([]));

    let (_, g) = d.json(&["generate", "a harbour", "--upscale", "1"]);
    let up = g["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "upscale_1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, zoomed) = d.json(&[
        "image",
        "action",
        &up,
        "zoom-custom",
        "--prompt",
        "a harbour at dusk --zoom 1.5",
        "--upscale",
        "none",
    ]);
    assert_eq!(code, 0, "{zoomed}");
    assert_eq!(zoomed["status"], "succeeded", "{zoomed}");
    assert_eq!(zoomed["prompt"], "a harbour at dusk --zoom 1.5");

    // Refused with exit 2 and nothing written.
    let (_, before) = d.json(&["image", "list"]);
    for (args, words) in [
        (vec!["shorten", " "], "prompt"),
        (
            vec!["image", "action", &up, "zoom-custom"],
            "needs a prompt",
        ),
        (
            vec![
                "image",
                "action",
                &up,
                "zoom-custom",
                "--prompt",
                "a harbour",
            ],
            "needs --zoom",
        ),
        (
            vec!["image", "action", &up, "pan-left", "--prompt", "a harbour"],
            "takes no prompt",
        ),
        (
            vec!["image", "action", &up, "--prompt", "x --zoom 2"],
            "--prompt",
        ),
    ] {
        let out = d.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
    }
    let (_, after) = d.json(&["image", "list"]);
    assert_eq!(before, after);
}

#[test]
fn generate_keeps_a_reference_of_the_callers_and_refuses_a_bad_one() {
    let d = DataDir::new();
    for bad in ["x".repeat(256), "two\nlines".to_owned()] {
        let out = d.run(&["generate", "a fox", "--reference", &bad]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("client reference"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!d.path().join("atelier.db").exists(), "nothing was written");
    let (code, g) = d.json(&[
        "generate",
        "a fox",
        "--upscale",
        "none",
        "--reference",
        "order 1042",
    ]);
    assert_eq!(code, 0, "{g}");
    assert_eq!(g["client_reference"], "order 1042");
    let id = g["id"].as_str().unwrap();
    let (_, shown) = d.json(&["generation", "show", id]);
    assert_eq!(shown["client_reference"], "order 1042", "{shown}");
}
