//! `atelier simulate comfyui`: runs the ComfyUI simulator until interrupted, and optionally
//! writes a configuration (and the workflow files it names) whose provider points at it.

use std::fmt::Write as _;
use std::time::Duration;

use super::args::SimulateComfyuiArgs;
use super::output::Out;
use super::simulate::check_config_file;
use crate::error::AppError;

pub async fn run(args: &SimulateComfyuiArgs, out: &Out) -> Result<u8, AppError> {
    use crate::simulators::comfyui;
    let faults = comfyui::parse_faults(&args.faults).map_err(AppError::Invalid)?;
    check_config_file(args.write_config.as_deref())?;
    if let Some(token) = &args.token
        && (token.trim().is_empty() || token.contains(char::is_whitespace))
    {
        return Err(AppError::Invalid(
            "--token must be a word without spaces".into(),
        ));
    }
    let config = comfyui::Config {
        bind: args.bind,
        faults: faults.clone(),
        step: Duration::from_millis(args.step_ms),
        slow: Duration::from_millis(args.slow_ms),
        vanish_after: Duration::ZERO,
        downtime: Duration::from_millis(args.downtime_ms),
        max_side: (args.max_side > 0).then_some(args.max_side),
        token: args.token.clone(),
    };
    let running = comfyui::start(config).await.map_err(AppError::Invalid)?;
    if let Some(file) = &args.write_config {
        running.write_config(file).map_err(AppError::Invalid)?;
        if args.token.is_some() {
            // The written file names the token through a variable, never the token itself.
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            text = text.replace(
                "account = \"simulator\"\n",
                "account = \"simulator\"\ntoken = \"env:COMFYUI_TOKEN\"\n",
            );
            std::fs::write(file, text)
                .map_err(|e| AppError::Invalid(format!("cannot write {}: {e}", file.display())))?;
        }
    }
    let summary = serde_json::json!({
        "addr": running.addr().to_string(),
        "api_base": running.api_base(),
        "websocket": format!("ws://{}/ws", running.addr()),
        "control": format!("http://{}/_sim/stats", running.addr()),
        "config_file": args.write_config.as_ref().map(|f| f.display().to_string()),
        "faults": faults.iter().map(|f| f.fault.name()).collect::<Vec<_>>(),
    });
    out.result(&summary, || {
        let mut text = format!(
            "ComfyUI simulator on {}\n  API      {}\n  control  http://{}/_sim/stats\n",
            running.addr(),
            running.api_base(),
            running.addr()
        );
        if let Some(file) = &args.write_config {
            let _ = writeln!(
                text,
                "wrote {}: try `atelier --config {} generate --provider comfyui \"a lighthouse at dusk\"` \
                 (or --param workflow=clip for an animated WebP)",
                file.display(),
                file.display()
            );
            if args.token.is_some() {
                text.push_str("  the configuration reads the token from COMFYUI_TOKEN\n");
            }
        }
        text.push_str("press Ctrl-C to stop");
        text
    });
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(0)
}
