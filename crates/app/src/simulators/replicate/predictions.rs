//! The simulator's predictions: each one's life told by the time since it was created
//! (`starting` for the first fifth of the latency, then `processing` with a tqdm step counter
//! in its logs, then ended), faults applied, outputs drawn by the sandbox when it ends and
//! hosted behind URLs that expire.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Sim;
use super::faults::Fault;
use crate::providers::VideoFormat;
use crate::providers::replicate::params::Kind;
use crate::providers::replicate::wire::{Prediction, Status, Urls};
use crate::providers::sandbox::{ClipSpec, draw_clip};
use crate::simulators::openai::picture;

/// What the NSFW fault fails a prediction with, as the models' safety checkers word it.
pub const NSFW: &str = "NSFW content detected. Try running it again, or try a different prompt.";

/// One drawn output: its bytes, its file name and its content type.
pub type Drawn = (Vec<u8>, String, &'static str);

/// One prediction as the simulator keeps it.
pub struct Job {
    pub id: String,
    pub model: String,
    pub version: String,
    pub kind: Kind,
    pub input: Map<String, Value>,
    pub fault: Option<Fault>,
    created: Instant,
    created_at: OffsetDateTime,
    canceled: Option<OffsetDateTime>,
    /// Output URLs and when the prediction ended, once drawn.
    ended: Option<(Vec<String>, OffsetDateTime)>,
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A prediction id as Replicate writes them: 26 lowercase letters and digits.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..26)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// FNV-1a of `text`: the same prompt draws the same pictures.
fn hash(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl Job {
    pub fn new(
        model: &str,
        version: &str,
        kind: Kind,
        input: Map<String, Value>,
        fault: Option<Fault>,
    ) -> Self {
        Self {
            id: new_id(),
            model: model.to_owned(),
            version: version.to_owned(),
            kind,
            input,
            fault,
            created: Instant::now(),
            created_at: OffsetDateTime::now_utc(),
            canceled: None,
            ended: None,
        }
    }

    fn steps(&self) -> u32 {
        self.input
            .get("num_inference_steps")
            .and_then(Value::as_u64)
            .map_or(28, |s| s as u32)
    }

    /// Where it stands now, by the time since it was created.
    pub fn status(&self, latency: Duration) -> Status {
        if self.canceled.is_some() {
            return Status::Canceled;
        }
        if self.ended.is_some() {
            return if self.fault == Some(Fault::Nsfw) {
                Status::Failed
            } else {
                Status::Succeeded
            };
        }
        let age = self.created.elapsed();
        if age < latency / 5 {
            Status::Starting
        } else if age < latency || self.fault == Some(Fault::Stuck) {
            Status::Processing
        } else if self.fault == Some(Fault::Nsfw) {
            Status::Failed
        } else {
            Status::Succeeded
        }
    }

    /// Whether it has ended but its outputs are not drawn yet.
    pub fn needs_drawing(&self, latency: Duration) -> bool {
        self.ended.is_none() && self.canceled.is_none() && self.status(latency).is_terminal()
    }

    pub fn cancel(&mut self, latency: Duration) -> bool {
        if self.status(latency).is_terminal() {
            return false;
        }
        self.canceled = Some(OffsetDateTime::now_utc());
        true
    }

    /// The logs so far: the seed, then one progress bar line per step done.
    fn logs(&self, latency: Duration, status: Status) -> String {
        let mut logs = String::new();
        if status == Status::Starting {
            return logs;
        }
        let _ = writeln!(logs, "Using seed: {}", self.seed());
        let steps = self.steps();
        let done = match status {
            Status::Succeeded | Status::Failed => steps,
            _ => {
                let running = latency.mul_f64(0.8).as_secs_f64().max(1e-3);
                let age = self
                    .created
                    .elapsed()
                    .saturating_sub(latency / 5)
                    .as_secs_f64();
                let done = ((age / running) * f64::from(steps)) as u32;
                if self.fault == Some(Fault::Stuck) {
                    done.min(steps / 2)
                } else {
                    done.min(steps)
                }
            }
        };
        for step in 0..=done {
            let percent = step * 100 / steps.max(1);
            let filled = (percent / 10) as usize;
            let _ = writeln!(
                logs,
                "{percent:>3}%|{}{}| {step}/{steps} [00:00<00:00, 4.20it/s]",
                "█".repeat(filled),
                " ".repeat(10 - filled)
            );
        }
        logs
    }

    /// The seed it draws with: the one given, else one from the prompt; `LoRA` weights change it.
    fn seed(&self) -> u32 {
        let given = self
            .input
            .get("seed")
            .and_then(Value::as_u64)
            .map(|s| s as u32);
        let prompt = self
            .input
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut seed = given.unwrap_or_else(|| hash(prompt));
        for key in ["lora_weights", "extra_lora"] {
            if let Some(lora) = self.input.get(key).and_then(Value::as_str) {
                seed = seed.wrapping_add(hash(lora));
            }
        }
        seed
    }

    /// Draws its outputs (on a blocking thread's behalf): pictures, or one clip; the files
    /// with their names and content types.
    pub fn draw(&self, max_side: Option<u32>) -> Result<Vec<Drawn>, String> {
        let prompt = self
            .input
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.kind == Kind::Video {
            let side = max_side.unwrap_or(256).clamp(16, 1024) & !1;
            let spec = ClipSpec {
                format: VideoFormat::Mp4,
                side,
                frames: self
                    .input
                    .get("num_frames")
                    .and_then(Value::as_u64)
                    .map_or(16, |f| f as u32),
                fps: self
                    .input
                    .get("frames_per_second")
                    .and_then(Value::as_u64)
                    .map_or(8, |f| f as u32),
            };
            let clip = draw_clip(prompt, self.seed(), &spec).map_err(|e| e.to_string())?;
            return Ok(vec![(clip, "output.mp4".into(), "video/mp4")]);
        }
        let n = self
            .input
            .get("num_outputs")
            .and_then(Value::as_u64)
            .unwrap_or(1) as u32;
        let ratio = self
            .input
            .get("aspect_ratio")
            .and_then(Value::as_str)
            .unwrap_or("1:1");
        let (w, h) = ratio
            .split_once(':')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .unwrap_or((1, 1));
        let long = 1024;
        let size = if w >= h {
            format!("{long}x{}", (long * h / w).max(1))
        } else {
            format!("{}x{long}", (long * w / h).max(1))
        };
        let format = self
            .input
            .get("output_format")
            .and_then(Value::as_str)
            .unwrap_or("webp");
        let (encoder, ext, content_type) = match format {
            "png" => ("png", "png", "image/png"),
            "jpg" => ("jpeg", "jpg", "image/jpeg"),
            _ => ("webp", "webp", "image/webp"),
        };
        let quality = self
            .input
            .get("output_quality")
            .and_then(Value::as_u64)
            .map_or(80, |q| q as u8);
        (0..n)
            .map(|i| {
                picture::picture(prompt, self.seed(), i, &size, encoder, quality, max_side)
                    .map(|bytes| (bytes, format!("out-{i}.{ext}"), content_type))
            })
            .collect()
    }

    pub fn end_with(&mut self, urls: Vec<String>) {
        self.ended = Some((urls, OffsetDateTime::now_utc()));
    }

    /// The prediction as the API shows it.
    pub fn view(&self, sim: &Sim) -> Prediction {
        let latency = sim.config.latency;
        let status = self.status(latency);
        let base = &sim.base;
        let ended_at = self.canceled.or(self.ended.as_ref().map(|(_, t)| *t));
        let output = match (&self.ended, status) {
            (Some((urls, _)), Status::Succeeded) => match self.kind {
                Kind::Video => urls.first().map_or(Value::Null, |u| json!(u)),
                Kind::Image => json!(urls),
            },
            _ => Value::Null,
        };
        let started = (status != Status::Starting).then(|| stamp(self.created_at + latency / 5));
        Prediction {
            id: self.id.clone(),
            model: self.model.clone(),
            version: self.version.clone(),
            input: self.input.clone(),
            logs: Some(self.logs(latency, status)),
            output,
            data_removed: false,
            error: (status == Status::Failed).then(|| NSFW.to_owned()),
            status,
            source: Some("api".into()),
            created_at: Some(stamp(self.created_at)),
            started_at: started,
            completed_at: ended_at.filter(|_| status.is_terminal()).map(stamp),
            urls: Urls {
                get: format!("{base}/v1/predictions/{}", self.id),
                cancel: format!("{base}/v1/predictions/{}/cancel", self.id),
                stream: None,
                web: Some(format!("{base}/p/{}", self.id)),
            },
            metrics: (status == Status::Succeeded).then(|| {
                let mut m = Map::new();
                m.insert(
                    "predict_time".into(),
                    json!(latency.mul_f64(0.8).as_secs_f64()),
                );
                m.insert("total_time".into(), json!(latency.as_secs_f64()));
                if self.kind == Kind::Image {
                    m.insert(
                        "image_count".into(),
                        json!(self.ended.as_ref().map_or(0, |(u, _)| u.len())),
                    );
                }
                m
            }),
        }
    }
}
