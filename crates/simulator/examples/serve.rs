//! Starts a simulator with a small built-in painter and prints its addresses and accounts as
//! one JSON line on stdout, then serves until interrupted (Ctrl-C or SIGTERM).
//!
//! `cargo run -p atelier-simulator --example serve -- [--port N] [--faults a,b] [--rate R]
//! [--instant]`; used by `compat/erictik/run.sh`.

use std::io::Cursor;
use std::sync::Arc;

use atelier_simulator::{Config, Fault, Faults, Painter, Timing};
use image::{ImageFormat, Rgba, RgbaImage};

/// Diagonal colour bands that depend on the prompt and the seed.
struct Bands;

impl Painter for Bands {
    fn grid(&self, prompt: &str, seed: u32, side: u32) -> Vec<u8> {
        let salt = prompt
            .bytes()
            .fold(seed, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let image = RgbaImage::from_fn(side, side, |x, y| {
            let band = ((x + y) * 8 / side.max(1)) ^ salt;
            Rgba([
                band.wrapping_mul(53) as u8,
                band.wrapping_mul(97) as u8,
                band.wrapping_mul(29).wrapping_add(x) as u8,
                255,
            ])
        });
        let mut out = Cursor::new(Vec::new());
        let _ = image.write_to(&mut out, ImageFormat::Png);
        out.into_inner()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::new(Arc::new(Bands));
    config.image_side = 256;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let port: u16 = args.next().ok_or("--port needs a value")?.parse()?;
                config.bind.set_port(port);
            }
            "--faults" => {
                let list = args.next().ok_or("--faults needs a list")?;
                config.faults.set = Fault::parse_list(&list)?;
            }
            "--rate" => config.faults.rate = args.next().ok_or("--rate needs a value")?.parse()?,
            "--instant" => config.timing = Timing::instant(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let faults: Faults = config.faults.clone();
    let sim = atelier_simulator::start(config).await?;
    let info = serde_json::json!({
        "api_base": sim.api_base(),
        "gateway_url": sim.gateway_url(),
        "cdn_base": sim.cdn_base(),
        "faults": faults.set.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "accounts": sim.accounts(),
    });
    println!("{info}");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
