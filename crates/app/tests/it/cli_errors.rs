//! The real binary on mistakes and refusals: usage errors as JSON, errors that name the
//! right thing (field, path, folder or file), storage that denies writes, tag limits, and
//! log lines without colour codes off a terminal.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{DataDir, bare_cmd};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout as one JSON document; panics with both streams when it is not.
fn json_of(args: &[&str], out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

#[test]
fn usage_errors_are_one_json_document_wherever_json_is_written() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let id = "0192f0c1-0000-7000-8000-000000000001";
    for (args, needle) in [
        (vec!["--json", "frobnicate"], "frobnicate"),
        (vec!["generate", "--json"], "required"),
        (vec!["generate", "fox", "--seed=-1", "--json"], "--seed"),
        (vec!["image", "list", "--json", "--limit", "-1"], "-1"),
        (vec!["image", "status", id, "bogus", "--json"], "bogus"),
        (vec!["image", "--json"], "subcommand"),
        (vec!["--json"], "subcommand"),
        (vec!["image", "tag", "--json", id], "required"),
    ] {
        let out = bare_cmd()
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let json = json_of(&args, &out);
        assert_eq!(json["error"]["code"], "invalid_input", "{args:?}: {json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{args:?}: {message:?}");
        assert!(
            !message.starts_with("error:") && !message.contains('\n'),
            "{args:?}: one line, the key says it is an error: {message:?}"
        );
        assert!(
            !stderr(&out).is_empty(),
            "{args:?}: stderr keeps clap's text"
        );
        assert!(!data.exists(), "{args:?} wrote the data directory");
    }
    // After `--`, "--json" is a value, not the option.
    let out = bare_cmd()
        .arg("--data-dir")
        .arg(&data)
        .args(["image", "tag", id, "--", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Help and version still print and succeed.
    for args in [
        vec!["--json", "--help"],
        vec!["generate", "--help", "--json"],
        vec!["--version", "--json"],
    ] {
        let out = bare_cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Usage") || text.starts_with("atelier "),
            "{args:?}: {text}"
        );
    }
}

/// Runs the binary refused before it writes anything: exit 2, `needle` on stderr and in the
/// `--json` error, no data directory made.
fn refused_with(env: &[(&str, &str)], args: &[&str], needle: &str) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    for json in [false, true] {
        let mut cmd = bare_cmd();
        cmd.envs(env.iter().copied()).arg("--data-dir").arg(&data);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        if json {
            let j = json_of(args, &out);
            assert!(
                j["error"]["message"].as_str().unwrap().contains(needle),
                "{j}"
            );
        } else {
            assert!(out.stdout.is_empty());
        }
        assert!(!data.exists(), "{args:?} wrote the data directory");
    }
}

#[test]
fn refusals_name_the_field_at_fault() {
    refused_with(
        &[],
        &["generate", "fox", "--subject", "Fox\u{7}King"],
        "the subject contains a control character (code 0x07)",
    );
    refused_with(
        &[],
        &["image", "import", "x.png", "--subject", "Fox\u{1b}"],
        "the subject contains a control character",
    );
}

#[test]
fn an_in_memory_catalogue_is_refused() {
    for url in ["sqlite::memory:", "sqlite://:memory:"] {
        refused_with(
            &[("DATABASE_URL", url)],
            &["generate", "fox", "--upscale", "none"],
            "in-memory database",
        );
    }
    refused_with(
        &[("ATELIER_DATABASE_URL", "sqlite::memory:")],
        &["image", "list"],
        "in-memory database",
    );
}

#[test]
fn a_file_where_a_folder_belongs_and_a_folder_where_a_file_belongs_are_named_so() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for args in [
        vec!["generate", "fox"],
        vec!["image", "list"],
        vec!["image", "show", "0192f0c1-0000-7000-8000-000000000001"],
    ] {
        let out = bare_cmd()
            .arg("--data-dir")
            .arg(&file)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let wanted = format!("{} is a file, not a folder", file.display());
        assert!(stderr(&out).contains(&wanted), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("File exists"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");

    let data = root.path().join("data");
    let out = bare_cmd()
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(root.path())
        .args(["generate", "fox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a folder, not a file"),
        "{}",
        stderr(&out)
    );
    assert!(!data.exists());
}

#[test]
fn tags_are_bounded_in_number_and_length() {
    let d = DataDir::new();
    let (_, g) = d.json(&["generate", "tag me", "--upscale", "none"]);
    let id = g["images"][0]["id"].as_str().unwrap().to_owned();
    let names: Vec<String> = (1..=33).map(|i| format!("t{i:02}")).collect();
    let with = |tags: &[String]| {
        let mut args = vec!["image", "tag", id.as_str()];
        args.extend(tags.iter().map(String::as_str));
        d.json(&args)
    };
    let (code, e) = with(&names);
    assert_eq!(code, 2, "33 tags at once: {e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32"),
        "{e}"
    );
    let (code, ok) = with(&names[..20]);
    assert_eq!(
        (code, ok["tags"].as_array().unwrap().len()),
        (0, 20),
        "{ok}"
    );
    let (code, ok) = with(&names[15..32]);
    assert_eq!(
        (code, ok["tags"].as_array().unwrap().len()),
        (0, 32),
        "tags already there do not count twice: {ok}"
    );
    let (code, e) = with(&names[32..]);
    assert_eq!(code, 2, "a 33rd tag: {e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32"),
        "{e}"
    );
    let (code, e) = with(&["x".repeat(65)]);
    assert_eq!(code, 2, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("1 to 64"));
    let (code, _) = with(&["bell\u{7}".to_owned()]);
    assert_eq!(code, 2);
    let (_, shown) = d.json(&["image", "show", &id]);
    assert_eq!(shown["tags"].as_array().unwrap().len(), 32, "{shown}");
}

/// Runs the binary in a new user namespace: the data directory stays owned by root outside
/// it, so inside even root is held to the folders' modes (no `CAP_DAC_OVERRIDE` over files
/// whose owner the namespace does not map). `setup` runs first, in a shell, in a mount
/// namespace too when given. A test that cannot make a namespace fails; it does not skip.
fn in_a_namespace(d: &DataDir, setup: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("unshare");
    for (key, _) in std::env::vars() {
        if key.starts_with("ATELIER_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    match setup {
        None => cmd.arg("--user"),
        Some(script) => cmd
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(format!("{script} && exec \"$@\""))
            .arg("sh"),
    };
    let out = cmd
        .arg(env!("CARGO_BIN_EXE_atelier"))
        .arg("--data-dir")
        .arg(d.path())
        .args(args)
        .output()
        .expect("util-linux `unshare` runs");
    let err = stderr(&out);
    assert!(
        !err.starts_with("unshare:") && !err.contains("mount:"),
        "this test needs user and mount namespaces (unshare --user): {err}"
    );
    out
}

fn generation_error(out: &Output, args: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(out));
    let g = json_of(args, out);
    assert_eq!(g["status"], "failed", "{g}");
    assert_eq!(g["error"]["code"], "internal", "{g}");
    g["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn storage_that_denies_writes_fails_the_job_at_once_naming_the_path() {
    // Retries must not hide the behaviour: with backoff this short, five tries would finish
    // quickly too, and the message would say "gave up after 5 attempts".
    let d = DataDir::new();
    let (code, first) = d.json(&["generate", "before", "--upscale", "none"]);
    assert_eq!(code, 0, "{first}");
    let images = d.images();
    let args = ["--json", "generate", "denied", "--upscale", "none"];

    set_mode(&images, 0o555);
    let out = in_a_namespace(&d, None, &args);
    set_mode(&images, 0o755);
    let message = generation_error(&out, &args);
    assert!(
        message.contains(&images.display().to_string()) && message.contains("Permission denied"),
        "names the path: {message}"
    );
    assert!(!message.contains("gave up"), "not retried: {message}");

    let root = images.display().to_string();
    let setup = format!("mount --bind '{root}' '{root}' && mount -o remount,bind,ro '{root}'");
    let out = in_a_namespace(&d, Some(&setup), &args);
    let message = generation_error(&out, &args);
    assert!(
        message.contains(&root) && message.contains("Read-only file system"),
        "names the path: {message}"
    );
    assert!(!message.contains("gave up"), "not retried: {message}");

    // Writable again, the next generation succeeds.
    let (code, g) = d.json(&["generate", "after", "--upscale", "none"]);
    assert_eq!(code, 0, "{g}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `command` (a shell line) on a pseudo-terminal (util-linux `script`); returns what it
/// showed.
fn on_a_terminal(d: &DataDir, command: &str) -> String {
    let log = d.path().join("terminal.log");
    let status = Command::new("script")
        .args(["-qec", command])
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("util-linux `script` runs the binary on a pseudo-terminal");
    assert!(status.success());
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn log_lines_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    // A generation logs at debug level (its job claimed, the catalogue's statements).
    let d = DataDir::new();
    let out = d
        .cmd()
        .args(["--json", "generate", "logs", "--upscale", "none"])
        .env("ATELIER_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = stderr(&out);
    assert!(logs.contains("DEBUG"), "the command logs something: {logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes off a terminal: {logs:?}"
    );

    let bin = env!("CARGO_BIN_EXE_atelier");
    let dir = d.path().display();
    let line = |no_color: &str| {
        format!(
            "env -u NO_COLOR {no_color} ATELIER_LOG=debug {bin} --data-dir {dir} --json \
             generate logs --upscale none"
        )
    };
    let coloured = on_a_terminal(&d, &line(""));
    assert!(
        coloured.contains("DEBUG") && coloured.contains('\u{1b}'),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = on_a_terminal(&d, &line("NO_COLOR=1"));
    assert!(plain.contains("DEBUG"), "{plain:?}");
    assert!(
        !plain.contains('\u{1b}'),
        "NO_COLOR is respected: {plain:?}"
    );
}
