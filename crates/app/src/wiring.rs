//! The composition root: turns a `Config` into a running `App` (providers, catalogue, store).

use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, JobSettings};
use crate::catalogue;
use crate::config::Config;
use crate::error::AppError;
use crate::jobs::Bus;
use crate::providers::sandbox::Sandbox;
use crate::providers::{Providers, Registered, UpscaleMode};
use crate::store::{Layout, Store};

/// The providers the configuration enables. Writes nothing.
pub fn providers(config: &Config) -> Result<Providers, AppError> {
    let mut providers = Providers::default();
    let s = &config.providers.sandbox;
    if s.enabled {
        providers.insert(
            "sandbox",
            Registered {
                provider: Arc::new(Sandbox {
                    size: s.size,
                    delay: Duration::from_millis(s.delay_ms),
                }),
                account: "local".into(),
                concurrency: s.concurrency,
                upscale_mode: if s.upscale_mode == "local_split" {
                    UpscaleMode::LocalSplit
                } else {
                    UpscaleMode::Provider
                },
                synthetic: true,
                accounts: None,
                queue_limit: None,
            },
        );
    }
    if config.providers.midjourney.enabled {
        providers.insert(
            "midjourney",
            crate::midjourney::registered(
                &config.providers.midjourney,
                config.limits.max_file_bytes(),
            ),
        );
    }
    if providers.get(&config.default_provider).is_none() {
        return Err(AppError::Invalid(format!(
            "the default provider {:?} is not configured",
            config.default_provider
        )));
    }
    providers.set_default(&config.default_provider);
    Ok(providers)
}

/// Makes sure the data directory exists and can be written, with a clear error if not.
fn writable_dir(dir: &std::path::Path) -> Result<(), AppError> {
    let fail = |e: std::io::Error| {
        AppError::Invalid(format!(
            "the data directory {} is not writable: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".atelier-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Says so when the data directory, or the nearest of its parents that exists, is a file:
/// the system's own words for that ("File exists", "Not a directory") do not tell what to fix.
fn file_in_the_way(dir: &std::path::Path) -> Result<(), AppError> {
    for at in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(at) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) if at == dir => {
                return Err(AppError::Invalid(format!(
                    "the data directory {} is a file, not a folder",
                    dir.display()
                )));
            }
            Ok(_) => {
                return Err(AppError::Invalid(format!(
                    "the data directory {} is not writable: {} is a file, not a folder",
                    dir.display(),
                    at.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Anything else is reported by whatever touches the directory next.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Opens everything. With `create` false, a missing catalogue is reported instead of created,
/// so read-only commands never write.
pub async fn open(
    config: &Config,
    providers: Providers,
    create: bool,
) -> Result<Arc<App>, AppError> {
    let url = config.database_url();
    file_in_the_way(&config.data_dir)?;
    if url.starts_with("sqlite:") {
        if create {
            writable_dir(&config.data_dir)?;
        } else if !config.data_dir.join("atelier.db").exists() && config.database_url.is_none() {
            return Err(AppError::NotFound(format!(
                "catalogue in {} (nothing has been generated there yet)",
                config.data_dir.display()
            )));
        }
    }
    let db = catalogue::open(&url, create).await?;
    let layout = Layout::parse(&config.storage.layout).unwrap_or_default();
    let store = Store::local(&config.storage_root(), &config.tmp_dir(), layout)?
        .with_public_base_url(config.storage.public_base_url.clone());
    let png = crate::pipeline::PngCompression::parse(&config.pipeline.png_compression)
        .unwrap_or_default();
    for name in providers.names() {
        if let Some(pool) = providers.get(name).and_then(|r| r.accounts.clone()) {
            crate::app::spawn_account_recorder(db.catalogue.clone(), name.to_owned(), &pool);
        }
    }
    let j = &config.jobs;
    Ok(Arc::new(App {
        catalogue: db.catalogue,
        queue: db.queue,
        store,
        providers,
        bus: Bus::default(),
        jobs: JobSettings {
            lease: Duration::from_secs_f64(j.lease_secs),
            max_attempts: j.max_attempts,
            max_takeovers: j.max_takeovers,
            retry_base: Duration::from_secs_f64(j.retry_base_secs),
            retry_max: Duration::from_secs_f64(j.retry_max_secs),
            poll: Duration::from_secs_f64(j.poll_secs),
            node: crate::jobs::node_id(config.node.id.as_deref()),
        },
        png,
        limits: config.limits.pipeline(),
    }))
}
