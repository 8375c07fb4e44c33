//! Tests of configuration loading: layers, defaults and the errors a mistake gets.

use super::*;

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
