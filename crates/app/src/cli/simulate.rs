//! `atelier simulate discord|openai|replicate`: runs a simulator until interrupted, drawing
//! its "renders" with the sandbox's scenes, and optionally writes a configuration whose
//! provider points at it: the Discord + Midjourney one (`crates/simulator`), the OpenAI Images
//! API (`simulators::openai`) or Replicate's predictions API (`simulators::replicate`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use atelier_simulator::{ClipKind, Config, Fault, Faults, Painter, Timing};

use super::args::{SimulateDiscordArgs, SimulateOpenaiArgs, SimulateReplicateArgs};
use super::output::Out;
use crate::error::AppError;
use crate::providers::VideoFormat;
use crate::providers::sandbox::clip::{ClipSpec, draw_clip};
use crate::providers::sandbox::draw;

/// The sandbox's drawing, as the simulator's painter.
pub struct SandboxPainter;

impl Painter for SandboxPainter {
    fn grid(&self, prompt: &str, seed: u32, side: u32) -> Vec<u8> {
        draw::grid(prompt, seed, side)
            .encode_png()
            .unwrap_or_default()
    }

    /// Real clips, kept small so the simulator's video jobs stay fast: a video grid as an
    /// animated WebP of five one-second frames (Midjourney's are about 5 s), a clip as a
    /// 32-pixel H.264 MP4 of five frames.
    fn clip(&self, prompt: &str, seed: u32, kind: ClipKind) -> Vec<u8> {
        let spec = match kind {
            ClipKind::Grid => ClipSpec {
                format: VideoFormat::WebP,
                side: 64,
                frames: 5,
                fps: 1,
            },
            ClipKind::Clip => ClipSpec {
                format: VideoFormat::Mp4,
                side: 32,
                frames: 5,
                fps: 1,
            },
        };
        draw_clip(prompt, seed, &spec).unwrap_or_default()
    }
}

pub async fn discord(args: &SimulateDiscordArgs, out: &Out) -> Result<u8, AppError> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(AppError::Invalid(format!(
            "--fault-rate must be between 0 and 1, not {}",
            args.fault_rate
        )));
    }
    let faults = Fault::parse_list(&args.faults).map_err(|e| AppError::Invalid(e.to_string()))?;
    if let Some(file) = &args.write_config
        && let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(AppError::Invalid(format!(
            "cannot write {}: {} is not a directory",
            file.display(),
            parent.display()
        )));
    }
    let mut config = Config::new(Arc::new(SandboxPainter));
    config.bind = args.bind;
    config.accounts = usize::from(args.accounts);
    config.image_side = args.side;
    config.mj_concurrency = usize::from(args.mj_concurrency);
    config.faults = Faults {
        seed: args.seed,
        ..Faults::with(&faults, args.fault_rate)
    };
    config.timing = if args.step_ms == 0 {
        Timing::instant()
    } else {
        Timing::quick(Duration::from_millis(args.step_ms))
    };
    let running = atelier_simulator::start(config)
        .await
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    if let Some(file) = &args.write_config {
        let text = client_config(&running);
        std::fs::write(file, text)
            .map_err(|e| AppError::Invalid(format!("cannot write {}: {e}", file.display())))?;
    }
    let accounts = running.accounts();
    let summary = serde_json::json!({
        "addr": running.addr().to_string(),
        "api_base": running.api_base(),
        "gateway_url": running.gateway_url(),
        "cdn_base": running.cdn_base(),
        "control": format!("{}/_sim/stats", running.cdn_base()),
        "accounts": accounts,
        "config_file": args.write_config.as_ref().map(|f| f.display().to_string()),
        "faults": faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
    });
    out.result(&summary, || {
        let mut text = format!(
            "Discord + Midjourney simulator on {}\n  REST     {}\n  gateway  {}\n  CDN      {}\n  control  {}/_sim/stats\n",
            running.addr(),
            running.api_base(),
            running.gateway_url(),
            running.cdn_base(),
            running.cdn_base()
        );
        for a in &accounts {
            let _ = writeln!(
                text,
                "  account  token {}  guild {}  channel {}",
                a.token, a.guild_id, a.channel_id
            );
        }
        if let Some(file) = &args.write_config {
            let _ = writeln!(
                text,
                "wrote {}: try `atelier --config {} generate --provider midjourney \"a lighthouse at dusk\"`",
                file.display(),
                file.display()
            );
        }
        text.push_str("press Ctrl-C to stop");
        text
    });
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(0)
}

/// Refuses a configuration file in a folder that does not exist, before anything starts.
pub(super) fn check_config_file(file: Option<&std::path::Path>) -> Result<(), AppError> {
    if let Some(file) = file
        && let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(AppError::Invalid(format!(
            "cannot write {}: {} is not a directory",
            file.display(),
            parent.display()
        )));
    }
    Ok(())
}

pub async fn openai(args: &SimulateOpenaiArgs, out: &Out) -> Result<u8, AppError> {
    use crate::simulators::openai;
    let faults = openai::parse_faults(&args.faults).map_err(AppError::Invalid)?;
    check_config_file(args.write_config.as_deref())?;
    if args.key.trim().is_empty() || args.key.contains(char::is_whitespace) {
        return Err(AppError::Invalid(
            "--key must be a word without spaces".into(),
        ));
    }
    let config = openai::Config {
        bind: args.bind,
        key: args.key.clone(),
        faults: faults.clone(),
        latency: Duration::from_millis(args.latency_ms),
        slow: Duration::from_millis(args.slow_ms),
        max_side: (args.max_side > 0).then_some(args.max_side),
        url_ttl: Duration::from_secs(args.url_ttl_secs),
    };
    let running = openai::start(config).await.map_err(AppError::Invalid)?;
    if let Some(file) = &args.write_config {
        std::fs::write(file, running.client_config(&args.model, args.stream))
            .map_err(|e| AppError::Invalid(format!("cannot write {}: {e}", file.display())))?;
    }
    let summary = serde_json::json!({
        "addr": running.addr().to_string(),
        "api_base": running.api_base(),
        "key": running.key(),
        "control": format!("http://{}/_sim/stats", running.addr()),
        "config_file": args.write_config.as_ref().map(|f| f.display().to_string()),
        "faults": faults.iter().map(|f| f.fault.name()).collect::<Vec<_>>(),
    });
    out.result(&summary, || {
        let mut text = format!(
            "OpenAI Images API simulator on {}\n  API      {}\n  key      {}\n  control  http://{}/_sim/stats\n",
            running.addr(),
            running.api_base(),
            running.key(),
            running.addr()
        );
        if let Some(file) = &args.write_config {
            let _ = writeln!(
                text,
                "wrote {}: try `atelier --config {} generate --provider openai \"a lighthouse at dusk\"`",
                file.display(),
                file.display()
            );
        }
        text.push_str("press Ctrl-C to stop");
        text
    });
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(0)
}

pub async fn replicate(args: &SimulateReplicateArgs, out: &Out) -> Result<u8, AppError> {
    use crate::simulators::replicate;
    let faults = replicate::parse_faults(&args.faults).map_err(AppError::Invalid)?;
    check_config_file(args.write_config.as_deref())?;
    if args.token.trim().is_empty() || args.token.contains(char::is_whitespace) {
        return Err(AppError::Invalid(
            "--token must be a word without spaces".into(),
        ));
    }
    for model in [&args.model, &args.video_model] {
        replicate::check_model(model).map_err(|e| AppError::Invalid(format!("--model: {e}")))?;
    }
    if !args.video_model.contains("video") {
        return Err(AppError::Invalid(format!(
            "--video-model {:?}: the simulator draws clips for models whose name says video",
            args.video_model
        )));
    }
    let config = replicate::Config {
        bind: args.bind,
        token: args.token.clone(),
        faults: faults.clone(),
        latency: Duration::from_millis(args.latency_ms),
        slow: Duration::from_millis(args.slow_ms),
        max_side: (args.max_side > 0).then_some(args.max_side),
        url_ttl: Duration::from_secs(args.url_ttl_secs),
    };
    let running = replicate::start(config).await.map_err(AppError::Invalid)?;
    if let Some(file) = &args.write_config {
        std::fs::write(file, running.client_config(&args.model, &args.video_model))
            .map_err(|e| AppError::Invalid(format!("cannot write {}: {e}", file.display())))?;
    }
    let summary = serde_json::json!({
        "addr": running.addr().to_string(),
        "api_base": running.api_base(),
        "token": running.token(),
        "control": format!("http://{}/_sim/stats", running.addr()),
        "config_file": args.write_config.as_ref().map(|f| f.display().to_string()),
        "faults": faults.iter().map(|f| f.fault.name()).collect::<Vec<_>>(),
    });
    out.result(&summary, || {
        let mut text = format!(
            "Replicate predictions API simulator on {}\n  API      {}\n  token    {}\n  control  http://{}/_sim/stats\n",
            running.addr(),
            running.api_base(),
            running.token(),
            running.addr()
        );
        if let Some(file) = &args.write_config {
            let _ = writeln!(
                text,
                "wrote {}: try `atelier --config {} generate --provider replicate:image \"a lighthouse at dusk\"`",
                file.display(),
                file.display()
            );
        }
        text.push_str("press Ctrl-C to stop");
        text
    });
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(0)
}

/// An `atelier.toml` whose Midjourney accounts are the simulator's.
pub fn client_config(running: &atelier_simulator::Running) -> String {
    let mut text = format!(
        "# Written by `atelier simulate discord`: the Midjourney provider talks to the simulator\n\
         # on {addr}. Start the simulator again with the same --bind to reuse this file.\n\
         default_provider = \"midjourney\"\n\n\
         [providers.midjourney]\n\
         enabled = true\n\
         api_base = \"{api}\"\n\
         gateway_url = \"{gateway}\"\n\
         cdn_base = \"{cdn}\"\n\
         interaction_gap_ms = 50\n\
         interaction_jitter_ms = 50\n\
         history_poll_secs = 5.0\n\
         download_backoff_ms = 200\n",
        addr = running.addr(),
        api = running.api_base(),
        gateway = running.gateway_url(),
        cdn = running.cdn_base(),
    );
    for (i, a) in running.accounts().iter().enumerate() {
        let _ = write!(
            text,
            "\n[[providers.midjourney.accounts]]\nname = \"sim-{}\"\ntoken = \"{}\"\nguild_id = \"{}\"\nchannel_id = \"{}\"\nconcurrency = 1\n",
            i + 1,
            a.token,
            a.guild_id,
            a.channel_id
        );
    }
    text
}
