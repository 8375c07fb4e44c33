//! House rules checked by a test: every Rust file says what it is for in a `//!` line.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "target" || n == "fixtures")
            {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(
        files.len() > 40,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:#?}"
    );
}

/// The front-ends' directories: they reach the engine through `App` alone.
const FRONT_ENDS: [&str; 3] = ["cli", "http", "mcp"];

/// Modules below `App` that no front-end may name.
const ENGINE: [&str; 6] = [
    "crate::catalogue",
    "crate::jobs",
    "crate::store",
    "crate::pipeline",
    "crate::providers",
    "crate::midjourney",
];

/// What a front-end file may name below `App` anyway, and why: none of it is the engine.
const ALLOWED: [(&str, &str); 5] = [
    // The simulator's painter: the pictures and clips the fake Midjourney draws, not a
    // provider call.
    ("cli/simulate.rs", "crate::providers::sandbox::draw"),
    ("cli/simulate.rs", "crate::providers::sandbox::clip::"),
    ("cli/simulate.rs", "crate::providers::VideoFormat"),
    // `atelier midjourney parse`: the pure reader of one bot message, no engine behind it.
    ("cli/mod.rs", "crate::providers::midjourney::reading"),
    ("cli/mod.rs", "crate::midjourney::reading"),
];

/// `App`'s parts, which front-ends must not touch (written `app.<part>` in any spacing).
const PARTS: [&str; 9] = [
    "catalogue",
    "queue",
    "store",
    "bus",
    "providers",
    "jobs",
    "png",
    "limits",
    "hub",
];

#[test]
fn front_ends_reach_the_engine_through_app_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for dir in FRONT_ENDS {
        rust_files(&src.join(dir), &mut files);
    }
    assert!(
        files.len() > 5,
        "found only {} front-end files",
        files.len()
    );
    let mut broken = Vec::new();
    for f in &files {
        let name = f
            .strip_prefix(&src)
            .unwrap_or(f)
            .display()
            .to_string()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // Spacing and line breaks do not hide a path or a field.
        let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if flat.contains("usecrate::{") {
            broken.push(format!(
                "{name}: grouped `use crate::{{…}}` (name each module)"
            ));
        }
        for module in ENGINE {
            let mut rest = flat.as_str();
            while let Some(at) = rest.find(module) {
                let here = &rest[at..];
                let allowed = ALLOWED
                    .iter()
                    .any(|(file, path)| name == *file && here.starts_with(path));
                if !allowed {
                    let end = here.find([';', ',', '(', '}']).unwrap_or(here.len());
                    broken.push(format!("{name}: names {}", &here[..end]));
                }
                rest = &rest[at + module.len()..];
            }
        }
        for part in PARTS {
            for receiver in ["app.", "self.app.", "(app)."] {
                let needle = format!("{receiver}{part}");
                let mut rest = flat.as_str();
                while let Some(at) = rest.find(&needle) {
                    let after = rest[at + needle.len()..].chars().next();
                    // `app.store_image`, `app.jobs_run` would be other names.
                    if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        broken.push(format!("{name}: touches App's {part}"));
                    }
                    rest = &rest[at + needle.len()..];
                }
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "front-ends must go through App's use cases (ARCHITECTURE.md, invariants): {broken:#?}"
    );
}

/// Routes served over HTTP but added with axum's own `.route` (or its `routing` helpers)
/// would be missing from `/openapi.json`: `http/` registers every route through utoipa-axum's
/// `.routes(routes!(handler))`, which documents it in the same step.
#[test]
fn every_http_route_is_registered_with_its_documentation() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("http"), &mut files);
    assert!(files.len() > 5, "found only {} http files", files.len());
    let mut broken = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        // A service mounted whole (`nest_service`, such as MCP) is not an OpenAPI operation.
        for undocumented in [".route(", "axum::routing", "routing::{"] {
            if flat.contains(undocumented) {
                broken.push(format!("{}: {undocumented}", f.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "routes added without their OpenAPI documentation (use .routes(routes!(handler)) \
         and #[utoipa::path]; see ARCHITECTURE.md): {broken:#?}"
    );
}
