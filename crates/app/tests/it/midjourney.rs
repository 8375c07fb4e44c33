//! The Midjourney provider end to end against the in-process Discord + Midjourney simulator:
//! the original flow in both upscale modes, every action, typed errors, the account pool, and
//! recovery after `kill -9`; the fault options in `midjourney/faults.rs`, video in
//! `midjourney/video.rs`, /shorten and Custom Zoom's form in `midjourney/forms.rs`.

use std::sync::Arc;
use std::time::Duration;

use atelier::app::App;
use atelier::cli::simulate::{SandboxPainter, client_config};
use atelier::config::{AccountConfig, Config, MidjourneyUpscaleMode};
use atelier::domain::{
    ErrorCode, EventKind, GenerationId, GenerationRequest, GenerationStatus, Role, UpscaleSelection,
};
use atelier::jobs::{Stop, run_workers};
use atelier::pipeline;
use atelier::wiring;
use atelier_simulator::{Running, Timing};

mod failover;
mod faults;
mod forms;
mod image_prompts;
mod limits;
mod params;
mod reported;
mod unreachable;
mod versions;
mod video;

/// A simulator with small images and short delays.
async fn simulator(tune: impl FnOnce(&mut atelier_simulator::Config)) -> Running {
    crate::support::logs();
    let mut config = atelier_simulator::Config::new(Arc::new(SandboxPainter));
    config.image_side = 128;
    config.timing = Timing::quick(Duration::from_millis(15));
    config.heartbeat_interval = Duration::from_millis(500);
    config.faults.every = Duration::from_millis(300);
    tune(&mut config);
    atelier_simulator::start(config)
        .await
        .expect("simulator starts")
}

/// An app whose Midjourney accounts are the simulator's first `accounts`.
async fn app_for(
    sim: &Running,
    dir: &std::path::Path,
    accounts: usize,
    tune: impl FnOnce(&mut Config),
) -> Arc<App> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        default_provider: "midjourney".into(),
        ..Config::default()
    };
    let m = &mut config.providers.midjourney;
    m.enabled = true;
    m.api_base = sim.api_base();
    m.gateway_url = sim.gateway_url();
    m.cdn_base = sim.cdn_base();
    m.interaction_gap_ms = 0;
    m.interaction_jitter_ms = 0;
    m.history_poll_secs = 0.5;
    m.timeout_secs = 5.0;
    m.download_backoff_ms = 10;
    m.accounts = sim
        .accounts()
        .iter()
        .take(accounts)
        .enumerate()
        .map(|(i, a)| AccountConfig {
            name: format!("sim-{}", i + 1),
            token: a.token.as_str().into(),
            guild_id: Some(a.guild_id.clone()),
            channel_id: a.channel_id.clone(),
            concurrency: 1,
            queue_size: 10,
            enabled: true,
        })
        .collect();
    config.jobs.retry_base_secs = 0.05;
    config.jobs.retry_max_secs = 0.2;
    config.jobs.poll_secs = 0.05;
    tune(&mut config);
    if config.database_url.is_none()
        && crate::support::Backend::from_env() == crate::support::Backend::Postgres
    {
        config.database_url = Some(atelier::secret::DatabaseUrl::new(
            crate::postgres::fresh_url().await,
        ));
    }
    let providers = wiring::providers(&config).expect("providers");
    wiring::open(&config, providers, true)
        .await
        .expect("app opens")
}

async fn run_all(app: &Arc<App>) {
    run_all_within(app, Duration::from_mins(2)).await;
}

async fn run_all_within(app: &Arc<App>, limit: Duration) {
    let workers = app.providers().total_concurrency();
    tokio::time::timeout(limit, run_workers(app.clone(), workers, Stop::UntilIdle))
        .await
        .expect("jobs finish in time")
        .expect("the catalogue took every write");
}

async fn generate(app: &Arc<App>, prompt: &str) -> GenerationId {
    let g = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new(prompt),
        )
        .await
        .expect("submitted");
    run_all(app).await;
    g.id
}

/// Submits `count` generations, prompted `"{prompt} {i}"`, without running them.
async fn submit_numbered(app: &App, prompt: &str, count: usize) -> Vec<GenerationId> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let request = GenerationRequest::new(format!("{prompt} {i}"));
        ids.push(
            app.submit(atelier::domain::Actor::Operator, request)
                .await
                .expect("submitted")
                .id,
        );
    }
    ids
}

/// Decoded as RGB, whatever channels the encoder kept.
fn pixels(bytes: &[u8]) -> pipeline::Pixels {
    let p = pipeline::decode(bytes).expect("decodes");
    if p.channels == 3 {
        return p;
    }
    let data = p
        .data
        .chunks_exact(usize::from(p.channels))
        .flat_map(|px| [px[0], px[1], px[2]])
        .collect();
    pipeline::Pixels::rgb(p.width, p.height, data)
}

/// Checks the generation succeeded with a grid and four upscales that are its quadrants.
async fn assert_complete(app: &App, id: GenerationId) {
    let g = app.catalogue().generation(id).await.expect("generation");
    assert_eq!(
        g.status,
        GenerationStatus::Succeeded,
        "error: {:?}",
        g.error
    );
    let images = app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .map(|g| g.images)
        .expect("images");
    let roles: Vec<Role> = images.iter().map(|i| i.role).collect();
    assert_eq!(roles.len(), 5, "{roles:?}");
    let grid = images.iter().find(|i| i.role == Role::Grid).expect("grid");
    let grid = pixels(
        &app.store()
            .get(&grid.storage_key, &grid.sha256)
            .await
            .expect("grid read"),
    );
    let half = grid.width / 2;
    for i in 1..=4u8 {
        let up = images
            .iter()
            .find(|x| x.role == Role::Upscale(i))
            .expect("upscale");
        let bytes = app
            .store()
            .get(&up.storage_key, &up.sha256)
            .await
            .expect("read");
        let x = u32::from((i - 1) % 2) * half;
        let y = u32::from((i - 1) / 2) * half;
        assert_eq!(
            pixels(&bytes).data,
            grid.crop(x, y, half, half).data,
            "upscale {i} is quadrant {i}"
        );
    }
}

#[tokio::test]
async fn imagine_stores_the_grid_then_four_upscales_in_both_modes() {
    for mode in [
        MidjourneyUpscaleMode::Discord,
        MidjourneyUpscaleMode::LocalSplit,
    ] {
        let sim = simulator(|_| {}).await;
        let dir = tempfile::tempdir().unwrap();
        let app = app_for(&sim, dir.path(), 1, |c| {
            c.providers.midjourney.upscale_mode = mode;
        })
        .await;
        let id = generate(&app, "a lighthouse at dusk --ar 1:1 --stylize 250").await;
        assert_complete(&app, id).await;
        let g = app.catalogue().generation(id).await.unwrap();
        assert_eq!(g.account.as_deref(), Some("sim-1"));
        assert_eq!(g.parameters.extra["stylize"], 250);
        assert!(
            g.provider_refs["grid"]["job_hash"].is_string(),
            "{}",
            g.provider_refs
        );
        let events = app
            .events(atelier::domain::Actor::Operator, id, 0)
            .await
            .unwrap();
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.first(), Some(&EventKind::Created));
        assert_eq!(kinds.last(), Some(&EventKind::Completed));
        let upscales = kinds
            .iter()
            .filter(|k| **k == EventKind::UpscaleCompleted)
            .count();
        assert_eq!(upscales, 4, "{mode:?}");
        // Midjourney's own percentages moved the bar between 25 and 50.
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::Progress && e.progress > 25.0 && e.progress < 50.0),
            "{mode:?}: no rendering progress in {kinds:?}"
        );
        let milestones: Vec<f64> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::GridCompleted | EventKind::UpscaleCompleted
                )
            })
            .map(|e| e.progress)
            .collect();
        assert_eq!(milestones, [50.0, 62.5, 75.0, 87.5, 100.0]);
        let stats = sim.control().stats();
        let presses = if mode == MidjourneyUpscaleMode::Discord {
            4
        } else {
            0
        };
        assert_eq!(stats.jobs_started, 1 + presses, "{mode:?}: {stats:?}");
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn every_action_makes_its_own_generation() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    // V7, whose upscales offer every action (V8.1's have no re-upscales: `versions`).
    let id = generate(&app, "a red fox in snow --v 7").await;
    let images = app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .map(|g| g.images)
        .unwrap();
    let grid = images.iter().find(|i| i.role == Role::Grid).unwrap().id;
    let up2 = images
        .iter()
        .find(|i| i.role == Role::Upscale(2))
        .unwrap()
        .id;
    let none = UpscaleSelection::none();
    let cases = [
        (grid, "u3", "upscale", Role::Variant(1)),
        (grid, "v2", "variation", Role::Grid),
        (grid, "reroll", "reroll", Role::Grid),
        (up2, "vary-strong", "variation", Role::Grid),
        (up2, "vary-subtle", "variation", Role::Grid),
        (up2, "upscale-subtle", "upscale", Role::Variant(1)),
        (up2, "upscale-creative", "upscale", Role::Variant(1)),
        (up2, "zoom-out-2x", "zoom", Role::Grid),
        (up2, "zoom-out-1.5x", "zoom", Role::Grid),
        (up2, "pan-left", "pan", Role::Grid),
        (up2, "pan-right", "pan", Role::Grid),
        (up2, "pan-up", "pan", Role::Grid),
        (up2, "pan-down", "pan", Role::Grid),
    ];
    for (image, action, kind, role) in cases {
        let g = app
            .act(atelier::domain::Actor::Operator, image, action, &none)
            .await
            .expect(action);
        run_all(&app).await;
        let g = app.catalogue().generation(g.id).await.unwrap();
        assert_eq!(
            g.status,
            GenerationStatus::Succeeded,
            "{action}: {:?}",
            g.error
        );
        assert_eq!(g.kind.as_str(), kind, "{action}");
        assert_eq!(g.parent_id, Some(id));
        let roles: Vec<Role> = app
            .generation(atelier::domain::Actor::Operator, g.id)
            .await
            .map(|g| g.images)
            .unwrap()
            .iter()
            .map(|i| i.role)
            .collect();
        assert_eq!(roles, [role], "{action}");
    }
    // An upscale of an upscale result: 2x the quadrant.
    let u3 = app
        .act(atelier::domain::Actor::Operator, grid, "u1", &none)
        .await
        .unwrap();
    run_all(&app).await;
    let single = app
        .generation(atelier::domain::Actor::Operator, u3.id)
        .await
        .map(|g| g.images)
        .unwrap()[0]
        .clone();
    assert_eq!(single.width, 64);
    let creative = app
        .act(
            atelier::domain::Actor::Operator,
            single.id,
            "upscale-creative",
            &none,
        )
        .await
        .unwrap();
    run_all(&app).await;
    let out = app
        .generation(atelier::domain::Actor::Operator, creative.id)
        .await
        .map(|g| g.images)
        .unwrap();
    assert_eq!(out[0].width, 128);
    // Actions on the wrong kind of image are refused before anything is queued.
    assert!(
        app.act(atelier::domain::Actor::Operator, grid, "pan-left", &none)
            .await
            .is_err()
    );
    assert!(
        app.act(atelier::domain::Actor::Operator, up2, "v1", &none)
            .await
            .is_err()
    );
    assert!(
        app.act(atelier::domain::Actor::Operator, grid, "spin", &none)
            .await
            .is_err()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn midjourney_errors_fail_the_job_with_their_type_and_are_not_retried() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    // A parameter the bot would refuse is refused before it is sent (the reader's reading of
    // the bot's "Invalid parameter" embed is tested on its recorded fixture).
    let before = sim.control().stats().interactions;
    assert!(
        app.submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new("a fox --frobnicate 3")
        )
        .await
        .is_err()
    );
    assert_eq!(sim.control().stats().interactions, before, "sent");
    for (prompt, code) in [("a banned scene", ErrorCode::BannedPrompt)] {
        let before = sim.control().stats().interactions;
        let id = generate(&app, prompt).await;
        let g = app.catalogue().generation(id).await.unwrap();
        assert_eq!(g.status, GenerationStatus::Failed, "{prompt}");
        assert_eq!(g.error_code(), Some(code), "{prompt}");
        let message = &g.error.as_ref().unwrap().message;
        assert!(!message.contains('\n'), "one line: {message:?}");
        assert_eq!(
            sim.control().stats().interactions,
            before + 1,
            "{prompt}: retried"
        );
    }
    sim.shutdown().await;
}

/// A nonce is saved before its interaction is sent, or the interaction is not sent: when the
/// A trigger that makes the catalogue refuse to save provider references, on either database.
enum Refusal {
    Sqlite(tokio::sync::Mutex<sqlx::SqliteConnection>),
    Postgres(tokio::sync::Mutex<sqlx::PgConnection>),
}

impl Refusal {
    async fn new(url: &str) -> Self {
        use sqlx::Connection as _;
        if url.starts_with("postgres") {
            Self::Postgres(sqlx::PgConnection::connect(url).await.unwrap().into())
        } else {
            Self::Sqlite(sqlx::SqliteConnection::connect(url).await.unwrap().into())
        }
    }

    async fn start(&self) {
        match self {
            Self::Sqlite(db) => {
                sqlx::raw_sql(
                    "CREATE TRIGGER refuse_refs BEFORE UPDATE OF provider_refs ON generations
                     BEGIN SELECT RAISE(ABORT, 'disk full'); END",
                )
                .execute(&mut *db.lock().await)
                .await
                .unwrap();
            }
            Self::Postgres(db) => {
                sqlx::raw_sql(
                    "CREATE FUNCTION refuse_refs() RETURNS trigger LANGUAGE plpgsql
                        AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
                     CREATE TRIGGER refuse_refs BEFORE UPDATE OF provider_refs ON generations
                        FOR EACH ROW EXECUTE FUNCTION refuse_refs()",
                )
                .execute(&mut *db.lock().await)
                .await
                .unwrap();
            }
        }
    }

    async fn stop(&self) {
        match self {
            Self::Sqlite(db) => {
                sqlx::raw_sql("DROP TRIGGER refuse_refs")
                    .execute(&mut *db.lock().await)
                    .await
                    .unwrap();
            }
            Self::Postgres(db) => {
                sqlx::raw_sql("DROP TRIGGER refuse_refs ON generations")
                    .execute(&mut *db.lock().await)
                    .await
                    .unwrap();
            }
        }
    }
}

/// catalogue refuses the job's references, Midjourney never hears of the job (a resumed job
/// could not find its render, and would pay for it twice), and the job fails after its
/// attempts with the reason.
#[tokio::test]
async fn nothing_is_sent_while_its_nonce_cannot_be_saved() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = crate::support::Backend::from_env().url(dir.path()).await;
    let app = app_for(&sim, dir.path(), 1, |c| {
        c.jobs.max_attempts = 3;
        c.database_url = Some(atelier::secret::DatabaseUrl::new(url.clone()));
    })
    .await;
    let refuse = Refusal::new(&url).await;
    refuse.start().await;

    let id = generate(&app, "a fox in the snow").await;
    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::Internal));
    let message = &g.error.as_ref().unwrap().message;
    assert!(
        message.contains("references could not be saved"),
        "{message}"
    );
    assert_eq!(app.queue().job_of(id).await.unwrap().attempts, 3);
    assert_eq!(sim.control().stats().interactions, 0, "sent unsaved");

    // Once the catalogue takes them again, the same path runs through.
    refuse.stop().await;
    let id = generate(&app, "a fox in the snow").await;
    assert_complete(&app, id).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn two_accounts_share_the_work_within_their_limits() {
    // Midjourney lets each account run one job; more are answered "Job queued".
    let sim = simulator(|c| {
        c.mj_concurrency = 1;
        c.timing = Timing::quick(Duration::from_millis(10));
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 2, |c| {
        c.providers.midjourney.upscale_mode = MidjourneyUpscaleMode::LocalSplit;
    })
    .await;
    let ids = submit_numbered(&app, "a kite, number", 6).await;
    let control = sim.control();
    let watch = tokio::spawn(async move {
        let mut most = 0;
        for _ in 0..2000 {
            most = most.max(control.stats().jobs_running);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        most
    });
    run_all(&app).await;
    let mut used = std::collections::BTreeSet::new();
    for id in &ids {
        let g = app.catalogue().generation(*id).await.unwrap();
        assert_eq!(g.status, GenerationStatus::Succeeded, "{:?}", g.error);
        used.insert(g.account.unwrap());
    }
    assert_eq!(used.len(), 2, "both accounts took jobs: {used:?}");
    let most = watch.await.unwrap();
    assert!(
        most <= 2,
        "{most} Midjourney jobs ran at once with two accounts of one"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_revoked_account_is_disabled_and_the_other_takes_the_jobs() {
    // The simulator names its tokens `simulated-token-N`.
    let sim = simulator(|c| {
        c.timing = Timing::instant();
        c.revoked_tokens = vec!["simulated-token-1".into()];
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 2, |c| c.jobs.max_attempts = 4).await;
    let ids = submit_numbered(&app, "a mill, view", 3).await;
    run_all(&app).await;
    for id in ids {
        let g = app.catalogue().generation(id).await.unwrap();
        assert_eq!(g.status, GenerationStatus::Succeeded, "{:?}", g.error);
        assert_eq!(g.account.as_deref(), Some("sim-2"));
    }
    let accounts = app.accounts(None).await.unwrap();
    let first = &accounts[0];
    assert_eq!(first.status.health, "disabled");
    assert!(
        first
            .status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("4004")),
        "{:?}",
        first.status.reason
    );
    sim.shutdown().await;
}

// The simulator serves from this runtime while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_configuration_runs_the_real_binary_offline() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    std::fs::write(&file, client_config(&sim)).unwrap();
    let out = crate::support::bare_cmd()
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--json",
            "generate",
            "--provider",
            "midjourney",
            "a quiet pond",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["status"], "succeeded");
    assert_eq!(g["images"].as_array().map(Vec::len), Some(5));
    assert_eq!(g["account"], "sim-1");

    // `accounts --check` connects both, lists them with what it recorded, and no token.
    let out = crate::support::bare_cmd()
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--json", "accounts", "--check", "--wait", "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains("simulated-token"),
        "a token was printed: {text}"
    );
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sim-1", "sim-2"]);
    for account in list.as_array().unwrap() {
        assert_eq!(account["health"], "ready", "{list}");
        assert_eq!(account["last_known"]["health"], "ready", "{list}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn describe_and_blend_upload_their_images() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |_| {}).await;
    let id = generate(&app, "two boats").await;
    let images = app
        .generation(atelier::domain::Actor::Operator, id)
        .await
        .map(|g| g.images)
        .unwrap();
    let (a, b) = (images[1].id, images[2].id);

    let d = app
        .describe(atelier::domain::Actor::Operator, a, None)
        .await
        .unwrap();
    run_all(&app).await;
    let g = app.catalogue().generation(d.id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Succeeded, "{:?}", g.error);
    let prompts = g.provider_refs["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 4, "{prompts:?}");
    // It ran: it has a start, before its end.
    let started = g.started_at.expect("a describe that ran has started");
    assert!(started <= g.completed_at.unwrap());
    assert!(
        app.generation(atelier::domain::Actor::Operator, d.id)
            .await
            .map(|g| g.images)
            .unwrap()
            .is_empty()
    );

    let blend = app
        .blend(
            atelier::domain::Actor::Operator,
            &[a, b],
            Some("landscape"),
            &UpscaleSelection::all(),
            None,
        )
        .await
        .unwrap();
    run_all(&app).await;
    assert_complete(&app, blend.id).await;
    assert!(sim.control().stats().uploads >= 3);

    // Refused before anything is queued.
    assert!(
        app.blend(
            atelier::domain::Actor::Operator,
            &[a],
            None,
            &UpscaleSelection::all(),
            None
        )
        .await
        .is_err()
    );
    assert!(
        app.blend(
            atelier::domain::Actor::Operator,
            &[a, b],
            Some("round"),
            &UpscaleSelection::all(),
            None
        )
        .await
        .is_err()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_queue_is_bounded_and_niji_jobs_go_to_the_niji_bot() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |c| {
        c.providers.midjourney.accounts[0].queue_size = 2;
    })
    .await;
    // One account: one running and two waiting at the most.
    for i in 0..3 {
        app.submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new(format!("a tower, {i}")),
        )
        .await
        .unwrap();
    }
    let refused = app
        .submit(
            atelier::domain::Actor::Operator,
            GenerationRequest::new("one too many"),
        )
        .await;
    assert!(
        matches!(&refused, Err(atelier::error::AppError::QueueFull(m)) if m.contains("queue full")),
        "{refused:?}"
    );
    run_all(&app).await;

    let mut niji = GenerationRequest::new("a fox spirit, anime style");
    niji.extra.insert("bot".into(), serde_json::json!("niji"));
    let g = app
        .submit(atelier::domain::Actor::Operator, niji)
        .await
        .unwrap();
    run_all(&app).await;
    assert_complete(&app, g.id).await;
    let account = &sim.accounts()[0];
    let by_niji = sim
        .control()
        .messages(&account.channel_id)
        .iter()
        .any(|m| m["author"]["id"] == atelier_simulator::NIJI_BOT_ID);
    assert!(by_niji, "the niji bot answered");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_account_level_error_takes_the_account_out_and_says_so_in_the_events() {
    let sim = simulator(|c| c.timing = Timing::instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 2, |c| c.jobs.max_attempts = 3).await;
    // The simulator answers "Pending mod message" to prompts with this word, on every
    // account: the first account is disabled, the job moves to the second, which is disabled
    // too, and the job ends with the accounts' reasons.
    let id = generate(&app, "a moderated harbour").await;
    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::ProviderUnavailable));
    let events = app
        .events(atelier::domain::Actor::Operator, id, 0)
        .await
        .unwrap();
    let notices: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Progress && e.error.is_some())
        .collect();
    assert!(!notices.is_empty(), "no notice in {events:?}");
    assert!(
        notices[0]
            .error
            .as_ref()
            .is_some_and(|f| f.message.contains("taken out of the pool")),
        "{:?}",
        notices[0].error
    );
    let accounts = app.accounts(None).await.unwrap();
    for a in &accounts {
        assert_eq!(a.status.health, "disabled", "{a:?}");
        assert!(
            a.status
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("Moderation")),
            "{:?}",
            a.status.reason
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn the_u_presses_of_a_generation_run_at_once_and_are_stored_as_they_arrive() {
    // Each U press takes 150 ms in the simulator: pressed one after another they could never
    // overlap; with `upscales_at_once = 1` they do not.
    for (at_once, overlap) in [(4, true), (1, false)] {
        let sim = simulator(|c| c.timing = Timing::quick(Duration::from_millis(150))).await;
        let dir = tempfile::tempdir().unwrap();
        let app = app_for(&sim, dir.path(), 1, |c| {
            c.providers.midjourney.upscales_at_once = at_once;
        })
        .await;
        let id = generate(&app, "four lanterns on a bridge").await;
        assert_complete(&app, id).await;
        let stats = sim.control().stats();
        assert_eq!(stats.interactions, 5, "{at_once}: {stats:?}");
        if overlap {
            assert!(
                stats.jobs_running_peak >= 2,
                "the U presses did not overlap: {stats:?}"
            );
        } else {
            assert_eq!(stats.jobs_running_peak, 1, "{stats:?}");
        }
        let events = app
            .events(atelier::domain::Actor::Operator, id, 0)
            .await
            .unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        assert!(events.windows(2).all(|w| w[0].progress <= w[1].progress));
        let upscales: Vec<(u8, f64)> = events
            .iter()
            .filter(|e| e.kind == EventKind::UpscaleCompleted)
            .map(|e| (e.index.unwrap(), e.progress))
            .collect();
        let progress: Vec<f64> = upscales.iter().map(|u| u.1).collect();
        assert_eq!(progress, [62.5, 75.0, 87.5, 100.0]);
        let mut indices: Vec<u8> = upscales.iter().map(|u| u.0).collect();
        indices.sort_unstable();
        assert_eq!(indices, [1, 2, 3, 4]);
        // Every press ended: nothing is left pending, and each result message is saved.
        let refs = app.catalogue().generation(id).await.unwrap().provider_refs;
        assert!(refs.get("pending").is_none(), "{refs}");
        assert_eq!(
            refs["upscales"].as_object().map(serde_json::Map::len),
            Some(4)
        );
        sim.shutdown().await;
    }
}
