//! Tests of configuration loading: layers, defaults and the errors a mistake gets.

use super::*;
use crate::catalogue::in_memory;

fn env_none() -> Env {
    Env::prefixed("ATELIER_TEST_NOTHING_").split("__")
}

#[test]
fn defaults_are_the_embedded_setup() {
    let dir = tempfile::tempdir().unwrap();
    let c = load_from(None, Some(dir.path()), env_none()).unwrap();
    assert_eq!(c.data_dir, dir.path());
    assert_eq!(c.default_provider, "sandbox");
    assert!(c.database_url().starts_with("sqlite://"));
    assert_eq!(c.storage_root(), dir.path().join("images"));
}

#[test]
fn the_example_file_is_the_defaults() {
    let parsed: Config = Figment::from(Toml::string(EXAMPLE)).extract().unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn file_then_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "[jobs]\nmax_attempts = 9\nlease_secs = 3\n[providers.sandbox]\nsize = 256\n",
    )
    .unwrap();
    // Environment layering is covered end to end in tests/it/cli.rs (a child process).
    let c = load_from(Some(&file), Some(dir.path()), env_none()).unwrap();
    assert_eq!(c.jobs.max_attempts, 9);
    assert!((c.jobs.lease_secs - 3.0).abs() < f64::EPSILON);
    assert_eq!(c.providers.sandbox.size, 256);
    assert_eq!(c.data_dir, dir.path());
}

#[test]
fn mistakes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    for (text, needle) in [
        ("[jobs]\nlease_sec = 3\n", "lease_sec"),
        ("[storage]\nlayout = \"flat\"\n", "storage.layout"),
        ("[providers.sandbox]\nsize = 7\n", "providers.sandbox.size"),
        ("[jobs]\nmax_attempts = 0\n", "max_attempts"),
        ("[limits]\nmax_file_mib = 0\n", "limits.max_file_mib"),
        (
            "[pipeline]\npng_compression = \"best\"\n",
            "pipeline.png_compression",
        ),
        (
            "[providers.sandbox]\nupscale_mode = \"discord\"\n",
            "providers.sandbox.upscale_mode",
        ),
        (
            "[providers.midjourney]\nupscale_mode = \"provider\"\n",
            "providers.midjourney.upscale_mode",
        ),
        ("[storage]\nbackend = \"gcs\"\n", "storage.backend"),
        ("not toml at all [", "invalid configuration"),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = load_from(Some(&file), None, env_none())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{text:?} gave {e}");
    }
    let missing = dir.path().join("none.toml");
    assert!(matches!(
        load_from(Some(&missing), None, env_none()),
        Err(ConfigError::Missing(_))
    ));
}

#[test]
fn a_folder_given_as_the_configuration_file_is_named_so() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_from(Some(dir.path()), None, env_none()).unwrap_err();
    assert!(matches!(e, ConfigError::Folder(_)), "{e}");
    assert!(e.to_string().contains("is a folder, not a file"), "{e}");
}

#[test]
fn in_memory_catalogues_are_recognised() {
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite:",
        "sqlite://?mode=memory",
        "sqlite://x.db?cache=shared&mode=memory",
        "sqlite:file::memory:",
        "sqlite:file::memory:?cache=shared",
        "sqlite://file:",
    ] {
        assert!(in_memory(url), "{url}");
    }
    for url in [
        "sqlite://atelier-data/atelier.db",
        "sqlite:///tmp/memory.db",
        "sqlite://x.db?mode=rwc",
        "postgres://localhost/atelier",
    ] {
        assert!(!in_memory(url), "{url}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(&file, "database_url = \"sqlite::memory:\"\n").unwrap();
    let e = load_from(Some(&file), None, env_none()).unwrap_err();
    assert!(e.to_string().contains("in-memory"), "{e}");
}

#[test]
fn choices_are_parsed_once_and_a_bad_one_names_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "[storage]\nlayout = \"library\"\n[pipeline]\npng_compression = \"small\"\n\
         [providers.sandbox]\nupscale_mode = \"local_split\"\n\
         [providers.midjourney]\nupscale_mode = \"local_split\"\n",
    )
    .unwrap();
    let c = load_from(Some(&file), None, env_none()).unwrap();
    assert_eq!(c.storage.layout, Layout::Library);
    assert_eq!(c.pipeline.png_compression, PngCompression::Small);
    assert_eq!(
        c.providers.sandbox.upscale_mode,
        SandboxUpscaleMode::LocalSplit
    );
    assert_eq!(
        UpscaleMode::from(c.providers.midjourney.upscale_mode),
        UpscaleMode::LocalSplit
    );
    for (text, allowed) in [
        (
            "[storage]\nlayout = \"flat\"\n",
            ["default", "library"].as_slice(),
        ),
        (
            "[pipeline]\npng_compression = \"best\"\n",
            &["fast", "balanced", "small"],
        ),
        (
            "[providers.sandbox]\nupscale_mode = \"x\"\n",
            &["provider", "local_split"],
        ),
        (
            "[providers.midjourney]\nupscale_mode = \"x\"\n",
            &["discord", "local_split"],
        ),
        ("[storage]\nbackend = \"x\"\n", &["folder", "s3"]),
    ] {
        std::fs::write(&file, text).unwrap();
        let e = load_from(Some(&file), None, env_none())
            .unwrap_err()
            .to_string();
        for a in allowed {
            assert!(e.contains(&format!("`{a}`")), "{text:?} gave {e}");
        }
    }
}

#[test]
fn s3_settings_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "[storage]\nbackend = \"s3\"\nendpoint = \"https://p.supabase.co/storage/v1/s3\"\n\
         bucket = \"images\"\nroot = \"atelier\"\naccess_key_id = \"AKIA-ID-7\"\n\
         secret_access_key = \"sk-very-secret-7\"\n\
         public_base_url = \"https://p.supabase.co/storage/v1/object/public/images\"\n",
    )
    .unwrap();
    let c = load_from(Some(&file), None, env_none()).unwrap();
    let t = c.s3_target().unwrap().unwrap();
    assert_eq!(t.bucket, "images");
    assert_eq!(t.region, "us-east-1");
    assert_eq!(t.root, "atelier");
    assert_eq!(t.secret_access_key.expose(), "sk-very-secret-7");
    // No secret in any printed form of the configuration or the target.
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{t:?}"),
        serde_json::to_string(&c).unwrap(),
    ] {
        assert!(!shown.contains("sk-very-secret-7"), "{shown}");
        assert!(!shown.contains("AKIA-ID-7"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
    let folder = load_from(None, Some(dir.path()), env_none()).unwrap();
    assert!(folder.s3_target().unwrap().is_none());
}

#[test]
fn tokens_and_database_passwords_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.toml");
    std::fs::write(
        &file,
        "database_url = \"postgres://app:pg-pass-9@127.0.0.1/atelier\"\n\
         [[providers.midjourney.accounts]]\nname = \"a\"\ntoken = \"mj-token-9\"\n\
         channel_id = \"1\"\n",
    )
    .unwrap();
    let c = load_from(Some(&file), None, env_none()).unwrap();
    assert_eq!(
        c.database_url(),
        "postgres://app:pg-pass-9@127.0.0.1/atelier"
    );
    assert_eq!(
        c.database_url_redacted(),
        "postgres://app:[redacted]@127.0.0.1/atelier"
    );
    assert_eq!(
        c.providers.midjourney.accounts[0].token.expose(),
        "mj-token-9"
    );
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        serde_json::to_string(&c).unwrap(),
    ] {
        assert!(
            !shown.contains("pg-pass-9") && !shown.contains("mj-token-9"),
            "{shown}"
        );
    }
}
