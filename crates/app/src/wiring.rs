//! The composition root: turns a `Config` into a running `App` (providers, catalogue, store).

use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, JobSettings};
use crate::catalogue;
use crate::config::{Config, StorageBackend};
use crate::error::AppError;
use crate::migrate::{Destination, Migration, StorageDestination};
use crate::providers::sandbox::{Sandbox, Video};
use crate::providers::{Providers, Registered};
use crate::store::{Layout, Store, StoreError};

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
                upscale_mode: s.upscale_mode.into(),
                synthetic: true,
                accounts: None,
                queue_limit: None,
            },
        );
    }
    if s.video.enabled {
        providers.insert(
            "sandbox-video",
            Registered {
                provider: Arc::new(Video {
                    spec: s.video.spec(),
                    delay: Duration::from_millis(s.video.delay_ms),
                }),
                account: "local".into(),
                concurrency: s.concurrency,
                upscale_mode: s.upscale_mode.into(),
                synthetic: true,
                accounts: None,
                queue_limit: None,
            },
        );
    }
    if config.providers.midjourney.enabled {
        providers.insert(
            "midjourney",
            crate::providers::midjourney::registered(
                &config.providers.midjourney,
                config.limits.max_file_bytes(),
            ),
        );
    }
    if config.providers.openai.enabled {
        providers.insert(
            "openai",
            crate::providers::openai::registered(
                &config.providers.openai,
                config.limits.max_file_bytes(),
            ),
        );
    }
    if config.providers.replicate.enabled {
        for (name, registered) in crate::providers::replicate::registered(
            &config.providers.replicate,
            config.limits.max_file_bytes(),
        ) {
            providers.insert(&name, registered);
        }
    }
    if config.providers.comfyui.enabled {
        providers.insert(
            "comfyui",
            crate::providers::comfyui::registered(
                &config.providers.comfyui,
                config.limits.max_file_bytes(),
            )
            .map_err(AppError::Invalid)?,
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

/// The store `[storage]` names: a folder (today's default, under the data directory) or a
/// bucket. With `create`, a bucket is checked first (it answers, it exists, the keys are
/// accepted), so a command that would write fails before it writes anything.
pub async fn store(config: &Config, create: bool) -> Result<Store, AppError> {
    let layout = config.storage.layout;
    let base = config.storage.public_base_url.clone();
    let Some(target) = config
        .s3_target()
        .map_err(|e| AppError::Invalid(e.to_string()))?
    else {
        return Ok(
            Store::local(&config.storage_root(), &config.tmp_dir(), layout)?
                .with_public_base_url(base),
        );
    };
    let store = Store::s3(&target, layout)?.with_public_base_url(base);
    if create {
        store.check().await.map_err(|e| match e {
            // The service answered that the settings are wrong: the user's to fix.
            StoreError::Misconfigured { .. } => AppError::Invalid(e.to_string()),
            other => AppError::Store(other),
        })?;
    }
    Ok(store)
}

/// Opens everything. With `create` false, a missing catalogue is reported instead of created,
/// so read-only commands never write.
pub async fn open(
    config: &Config,
    providers: Providers,
    create: bool,
) -> Result<Arc<App>, AppError> {
    let jwt =
        crate::jwt::JwtVerifier::from_config(&config.server.jwt).map_err(AppError::Invalid)?;
    // A bucket is checked before anything is written; a folder is made where it always was,
    // after the data directory's checks (making it creates folders).
    let webhooks = config.webhooks.settings().map_err(AppError::Invalid)?;
    let bucket = match config.storage.backend {
        StorageBackend::S3 => Some(store(config, create).await?),
        StorageBackend::Folder => None,
    };
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
    let store = match bucket {
        Some(bucket) => bucket,
        None => store(config, create).await?,
    };
    for name in providers.names() {
        if let Some(pool) = providers.get(name).and_then(|r| r.accounts.clone()) {
            crate::app::spawn_account_recorder(db.catalogue.clone(), name.to_owned(), &pool);
        }
    }
    let j = &config.jobs;
    Ok(App::builder(db, store, providers)
        .jwt(jwt)
        .jobs(JobSettings {
            lease: Duration::from_secs_f64(j.lease_secs),
            max_attempts: j.max_attempts,
            max_takeovers: j.max_takeovers,
            retry_base: Duration::from_secs_f64(j.retry_base_secs),
            retry_max: Duration::from_secs_f64(j.retry_max_secs),
            poll: Duration::from_secs_f64(j.poll_secs),
            node: crate::jobs::node_id(config.node.id.as_deref()),
        })
        .png(config.pipeline.png_compression)
        .credits(config.credits.clone())
        .banned_words(config.limits.banned_words.clone())
        .limits(config.limits.pipeline())
        .webhooks(webhooks)
        .mj_links(crate::app::mj_links(&config.server.mj_proxy)?)
        .build())
}

/// Opens what `atelier migrate` reads and writes: this configuration's deployment as the
/// source (read-only when the catalogue moves), and the destination. Everything the user
/// named is checked first: a wrong destination is refused (`Invalid`, exit 2) before anything
/// is written anywhere.
pub async fn migration(
    config: &Config,
    to: &Destination,
    pause: Option<Duration>,
) -> Result<Migration, AppError> {
    let source_url = config.database_url();
    if let Some(url) = &to.database {
        check_database_destination(url, &source_url)?;
    }
    let target_root = match &to.storage {
        Some(StorageDestination::Folder(root)) => {
            check_folder_destination(root, &config.storage_root())?;
            Some(root.clone())
        }
        _ => None,
    };
    let bucket = match &to.storage {
        Some(StorageDestination::S3 {
            bucket,
            root,
            endpoint,
            region,
        }) => Some(bucket_destination(
            config,
            bucket,
            root,
            endpoint.as_deref(),
            region,
        )?),
        _ => None,
    };
    if let Some(base) = &to.public_base_url
        && !(base.starts_with("https://") || base.starts_with("http://"))
    {
        return Err(AppError::Invalid(format!(
            "--public-base-url must be an http(s) URL, not {base:?}"
        )));
    }
    if source_url.starts_with("sqlite:")
        && config.database_url.is_none()
        && !config.data_dir.join("atelier.db").exists()
    {
        return Err(AppError::NotFound(format!(
            "catalogue in {} (nothing to migrate)",
            config.data_dir.display()
        )));
    }
    let source = if to.database.is_some() {
        catalogue::open_read_only(&source_url).await?
    } else {
        // Only the storage moves: this catalogue stays, and its public URLs may change.
        catalogue::open(&source_url, false).await?
    };
    crate::migrate::check_source(&source)
        .await
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    let source_store = Store::read_only_folder(&config.storage_root())?;
    // The bucket answers, exists and takes the keys before anything is written anywhere.
    let bucket = match bucket {
        Some(store) => {
            store.check().await.map_err(|e| match e {
                StoreError::Misconfigured { .. } => AppError::Invalid(e.to_string()),
                other => AppError::Store(other),
            })?;
            Some(store.with_public_base_url(to.public_base_url.clone()))
        }
        None => None,
    };
    let target = match &to.database {
        Some(url) => Some(catalogue::open(url, true).await?),
        None => None,
    };
    let target_store = match (&target_root, bucket) {
        (Some(root), _) => {
            folder_destination(root)?.with_public_base_url(to.public_base_url.clone())
        }
        (None, Some(bucket)) => bucket,
        (None, None) => source_store.clone(),
    };
    Ok(Migration {
        source,
        source_store,
        target,
        target_store,
        new_storage: to.storage.is_some(),
        pause,
    })
}

/// A catalogue URL `atelier migrate` can copy into, and not the source itself. The URL may
/// hold a password: messages never repeat it.
fn check_database_destination(url: &str, source_url: &str) -> Result<(), AppError> {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    match scheme {
        "postgres" | "postgresql" => Ok(()),
        "sqlite" => {
            if crate::catalogue::in_memory(url) {
                return Err(AppError::Invalid(
                    "--to-database: an in-memory SQLite database would be lost at exit".into(),
                ));
            }
            let target = sqlite_path(url);
            if source_url.starts_with("sqlite:") && same_file(&target, &sqlite_path(source_url)) {
                return Err(AppError::Invalid(format!(
                    "--to-database names the source catalogue itself ({})",
                    target.display()
                )));
            }
            Ok(())
        }
        _ => Err(AppError::Invalid(format!(
            "--to-database must be a postgres:// or sqlite:// URL, not one of scheme {:?}",
            if scheme.is_empty() { "(none)" } else { scheme }
        ))),
    }
}

/// The file a `sqlite:` URL names (without its `?options`).
fn sqlite_path(url: &str) -> std::path::PathBuf {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    std::path::PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// Whether two paths name one file, the second of which may not exist yet.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::canonicalize(parent).map_or_else(
            |_| p.to_path_buf(),
            |d| d.join(p.file_name().unwrap_or_default()),
        )
    };
    resolve(a) == resolve(b)
}

/// A folder to copy blobs into: neither the source storage nor inside it, nor around it.
fn check_folder_destination(
    root: &std::path::Path,
    source_root: &std::path::Path,
) -> Result<(), AppError> {
    if root.as_os_str().is_empty() {
        return Err(AppError::Invalid("--to-storage names no folder".into()));
    }
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p).map_or_else(
            |_| p.to_path_buf(),
            |a| std::fs::canonicalize(&a).unwrap_or(a),
        )
    };
    let (to, from) = (absolute(root), absolute(source_root));
    if to.starts_with(&from) || from.starts_with(&to) {
        return Err(AppError::Invalid(format!(
            "--to-storage {} overlaps the source storage {}",
            to.display(),
            from.display()
        )));
    }
    if to.exists() && !to.is_dir() {
        return Err(AppError::Invalid(format!(
            "--to-storage {} is a file, not a folder",
            to.display()
        )));
    }
    Ok(())
}

/// The folder store at `root`, made if missing, its temporary files in a folder beside it.
/// The bucket `--to-storage s3://BUCKET/ROOT` names, with the keys from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`); AWS's endpoint for the region when none is
/// given. Sends nothing.
fn bucket_destination(
    config: &Config,
    bucket: &str,
    root: &str,
    endpoint: Option<&str>,
    region: &str,
) -> Result<Store, AppError> {
    let endpoint = endpoint.map_or_else(
        || format!("https://s3.{region}.amazonaws.com"),
        str::to_owned,
    );
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(AppError::Invalid(format!(
            "--endpoint must be an http(s) URL, not {endpoint:?}"
        )));
    }
    let key = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(crate::secret::Secret::new)
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "--to-storage s3://{bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({name} is not set)"
                ))
            })
    };
    let target = crate::store::S3Target {
        endpoint,
        bucket: bucket.to_owned(),
        region: region.to_owned(),
        root: root.to_owned(),
        access_key_id: key("AWS_ACCESS_KEY_ID")?,
        secret_access_key: key("AWS_SECRET_ACCESS_KEY")?,
        timeout: Duration::from_secs_f64(config.storage.timeout_secs),
    };
    Ok(Store::s3(&target, config.storage.layout)?)
}

fn folder_destination(root: &std::path::Path) -> Result<Store, AppError> {
    let name = root
        .file_name()
        .map_or_else(|| "storage".into(), |n| n.to_string_lossy().into_owned());
    let tmp = root
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(format!(".{name}.tmp"));
    for dir in [root, tmp.as_path()] {
        std::fs::create_dir_all(dir).map_err(|e| {
            AppError::Invalid(format!("cannot make the folder {}: {e}", dir.display()))
        })?;
    }
    Ok(Store::local(root, &tmp, Layout::default())?)
}
