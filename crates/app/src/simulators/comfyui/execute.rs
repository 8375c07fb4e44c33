//! The ComfyUI simulator's executor: one prompt at a time, lowest number first, its nodes run
//! in dependency order with ComfyUI's messages to the prompt's client, the sampler's steps as
//! `progress` (and one binary preview), save nodes drawing with the sandbox (pictures, an
//! animated WebP, an MP4), then the history entry. Prompt faults strike here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::faults::Fault;
use super::templates::picture;
use super::{File, Item, Sim};
use crate::providers::VideoFormat;
use crate::providers::comfyui::wire::node_order;
use crate::providers::sandbox::{ClipSpec, draw, draw_clip};

/// What a node made.
#[derive(Clone, Debug)]
enum Val {
    Model,
    Clip,
    Vae,
    Cond(String),
    /// A latent, or the pictures decoded from it.
    Pictures {
        w: u32,
        h: u32,
        batch: u32,
        seed: u32,
        text: String,
    },
    Video {
        w: u32,
        h: u32,
        frames: u32,
        seed: u32,
        text: String,
        fps: f64,
    },
}

/// How an execution ended.
enum End {
    Error(Value),
    Interrupted,
    /// The server restarted (or stopped) under it.
    Lost,
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Runs prompts until the simulator stops.
pub(super) async fn run(sim: Arc<Sim>) {
    loop {
        let notified = sim.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if *sim.stop.borrow() {
            return;
        }
        let next = sim.with(|s| {
            if s.running.is_some() || s.pending.is_empty() {
                return None;
            }
            let first = (0..s.pending.len())
                .min_by(|a, b| s.pending[*a].number.total_cmp(&s.pending[*b].number))?;
            let item = s.pending.remove(first);
            s.running = Some(item.clone());
            s.interrupt = false;
            Some((item, s.epoch))
        });
        let Some((item, epoch)) = next.flatten() else {
            tokio::select! {
                () = &mut notified => {}
                () = sim.stopped() => return,
            }
            continue;
        };
        sim.broadcast_status();
        let fault = sim.fault(false);
        let mut exec = Exec {
            sim: &sim,
            item: &item,
            epoch,
            client: item.client(),
            messages: Vec::new(),
            outputs: Map::new(),
            executed: Vec::new(),
            fault,
        };
        let ended = exec.go().await;
        exec.finish(ended);
    }
}

struct Exec<'a> {
    sim: &'a Sim,
    item: &'a Item,
    epoch: u64,
    client: Option<String>,
    messages: Vec<(String, Value)>,
    outputs: Map<String, Value>,
    executed: Vec<String>,
    fault: Option<Fault>,
}

impl Exec<'_> {
    fn id(&self) -> &str {
        &self.item.prompt_id
    }

    fn send(&self, kind: &str, data: &Value) {
        self.sim.send_json(self.client.as_deref(), kind, data);
    }

    /// A message ComfyUI also keeps in the history's status.
    fn record(&mut self, kind: &str, mut data: Value) {
        data["timestamp"] = json!(now_ms());
        self.send(kind, &data);
        self.messages.push((kind.to_owned(), data));
    }

    /// Whether it may go on: not restarted, stopped or interrupted.
    fn alive(&self) -> Result<(), End> {
        if *self.sim.stop.borrow() {
            return Err(End::Lost);
        }
        match self.sim.with(|s| (s.epoch, s.interrupt)) {
            Some((epoch, _)) if epoch != self.epoch => Err(End::Lost),
            Some((_, true)) => Err(End::Interrupted),
            _ => Ok(()),
        }
    }

    async fn go(&mut self) -> Result<(), (End, String)> {
        self.record("execution_start", json!({"prompt_id": self.id()}));
        self.record(
            "execution_cached",
            json!({"nodes": [], "prompt_id": self.id()}),
        );
        let prompt = &self.item.prompt;
        let mut order = Vec::new();
        let mut outputs = self.item.outputs.clone();
        outputs.sort_by(|a, b| node_order(a, b));
        for output in &outputs {
            visit(prompt, output, &mut order, 0);
        }
        let mut values: HashMap<String, Vec<Val>> = HashMap::new();
        for id in order {
            self.alive().map_err(|e| (e, id.clone()))?;
            self.sim.with(|s| s.last_node = Some(id.clone()));
            self.send(
                "executing",
                &json!({"node": id, "display_node": id, "prompt_id": self.id()}),
            );
            let made = self.node(&id, &values).await.map_err(|e| (e, id.clone()))?;
            self.executed.push(id.clone());
            values.insert(id, made);
        }
        Ok(())
    }

    /// Runs one node.
    async fn node(
        &mut self,
        id: &str,
        values: &HashMap<String, Vec<Val>>,
    ) -> Result<Vec<Val>, End> {
        let item = self.item;
        let node = &item.prompt[id];
        let inputs = node["inputs"].as_object().cloned().unwrap_or_default();
        let linked = |name: &str| -> Option<Val> {
            let link = inputs.get(name)?.as_array()?;
            let from = link.first()?.as_str()?;
            let slot = usize::try_from(link.get(1)?.as_u64()?).ok()?;
            values.get(from)?.get(slot).cloned()
        };
        let int = |name: &str, default: u64| {
            inputs
                .get(name)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(default)
        };
        let float =
            |name: &str, default: f64| inputs.get(name).and_then(Value::as_f64).unwrap_or(default);
        let text = |name: &str| {
            inputs
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let class = node["class_type"].as_str().unwrap_or_default();
        Ok(match class {
            "CheckpointLoaderSimple" => vec![Val::Model, Val::Clip, Val::Vae],
            "CLIPTextEncode" => vec![Val::Cond(text("text"))],
            "EmptyLatentImage" => vec![Val::Pictures {
                w: u32::try_from(int("width", 512)).unwrap_or(512),
                h: u32::try_from(int("height", 512)).unwrap_or(512),
                batch: u32::try_from(int("batch_size", 1)).unwrap_or(1),
                seed: 0,
                text: String::new(),
            }],
            "KSampler" => {
                let Some(Val::Pictures { w, h, batch, .. }) = linked("latent_image") else {
                    return Err(missing("latent_image"));
                };
                let Some(Val::Cond(positive)) = linked("positive") else {
                    return Err(missing("positive"));
                };
                let seed = int("seed", 0);
                self.sample(id, int("steps", 20).clamp(1, 10_000)).await?;
                vec![Val::Pictures {
                    w,
                    h,
                    batch,
                    seed: (seed ^ (seed >> 32)) as u32,
                    text: positive,
                }]
            }
            "VAEDecode" => {
                if self.fault == Some(Fault::Refusal) {
                    return Err(End::Error(json!({
                        "exception_message": "The safety checker flagged the image as NSFW content.",
                        "exception_type": "RuntimeError",
                    })));
                }
                vec![linked("samples").ok_or_else(|| missing("samples"))?]
            }
            "CreateVideo" => {
                let Some(Val::Pictures {
                    w,
                    h,
                    batch,
                    seed,
                    text,
                }) = linked("images")
                else {
                    return Err(missing("images"));
                };
                vec![Val::Video {
                    w,
                    h,
                    frames: batch,
                    seed,
                    text,
                    fps: float("fps", 30.0),
                }]
            }
            "SaveImage" | "PreviewImage" => {
                let Some(Val::Pictures {
                    w,
                    h,
                    batch,
                    seed,
                    text: prompt,
                }) = linked("images")
                else {
                    return Err(missing("images"));
                };
                let (kind, prefix) = if class == "SaveImage" {
                    ("output", text("filename_prefix"))
                } else {
                    ("temp", "ComfyUI_temp".to_owned())
                };
                let mut saved = Vec::new();
                for i in 0..batch.max(1) {
                    let (pw, ph) = self.fit(w, h);
                    let (p, s) = (prompt.clone(), seed);
                    let bytes = tokio::task::spawn_blocking(move || picture(&p, s, i, pw, ph))
                        .await
                        .map_err(|e| End::Error(json!({"exception_message": e.to_string(), "exception_type": "RuntimeError"})))?;
                    saved.push(self.save(&prefix, "png", kind, bytes));
                }
                self.executed(id, json!({"images": saved}));
                Vec::new()
            }
            "SaveAnimatedWEBP" | "SaveVideo" => {
                let (w, h, frames, seed, prompt, fps) = match linked(if class == "SaveVideo" {
                    "video"
                } else {
                    "images"
                }) {
                    Some(Val::Pictures {
                        w,
                        h,
                        batch,
                        seed,
                        text,
                    }) => (w, h, batch, seed, text, float("fps", 6.0)),
                    Some(Val::Video {
                        w,
                        h,
                        frames,
                        seed,
                        text,
                        fps,
                    }) => (w, h, frames, seed, text, fps),
                    _ => return Err(missing("images")),
                };
                let (format, ext) = if class == "SaveVideo" {
                    (VideoFormat::Mp4, "mp4")
                } else {
                    (VideoFormat::WebP, "webp")
                };
                let (cw, ch) = self.fit(w, h);
                let side = (cw.min(ch).min(1024) / 2 * 2).max(16);
                let spec = ClipSpec {
                    format,
                    side,
                    frames: frames.clamp(1, 240),
                    fps: (fps.round() as u32).clamp(1, 60),
                };
                let bytes = tokio::task::spawn_blocking(move || draw_clip(&prompt, seed, &spec))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|e| {
                        End::Error(
                            json!({"exception_message": e, "exception_type": "RuntimeError"}),
                        )
                    })?;
                let prefix = if class == "SaveVideo" && inputs.get("filename_prefix").is_none() {
                    "video/ComfyUI".to_owned()
                } else {
                    text("filename_prefix")
                };
                let saved = self.save(&prefix, ext, "output", bytes);
                self.executed(id, json!({"images": [saved], "animated": [true]}));
                Vec::new()
            }
            other => {
                return Err(End::Error(
                    json!({"exception_message": format!("{other} cannot run here"), "exception_type": "RuntimeError"}),
                ));
            }
        })
    }

    /// The sampler's steps, each a `progress` message, with a preview halfway; where the
    /// `restart` and `stuck` faults strike.
    async fn sample(&mut self, id: &str, steps: u64) -> Result<(), End> {
        for step in 1..=steps {
            if self.sim.config.step.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(self.sim.config.step).await;
            }
            self.alive()?;
            self.send(
                "progress",
                &json!({"value": step, "max": steps, "prompt_id": self.id(), "node": id}),
            );
            if step == steps.div_ceil(2) {
                self.preview();
                match self.fault {
                    Some(Fault::Restart) => {
                        self.sim.restart();
                        return Err(End::Lost);
                    }
                    Some(Fault::Stuck) => loop {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        self.alive()?;
                    },
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A binary preview frame: event 1, format 1 (JPEG), a small picture.
    fn preview(&self) {
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 1];
        let small = draw::quadrant(self.id(), 1, 16, 1);
        let mut jpeg = Vec::new();
        if image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 60)
            .encode(
                &small.data,
                small.width,
                small.height,
                image::ExtendedColorType::Rgb8,
            )
            .is_ok()
        {
            frame.extend_from_slice(&jpeg);
            self.sim.send(self.client.as_deref(), Frame::binary(frame));
            self.sim.count(|s| s.previews += 1);
        }
    }

    /// The size drawn: the graph's, its long edge at most the configured one.
    fn fit(&self, w: u32, h: u32) -> (u32, u32) {
        match self.sim.config.max_side {
            Some(max) if w.max(h) > max => {
                let scale = f64::from(max) / f64::from(w.max(h));
                (
                    ((f64::from(w) * scale).round() as u32).max(1),
                    ((f64::from(h) * scale).round() as u32).max(1),
                )
            }
            _ => (w.max(1), h.max(1)),
        }
    }

    /// Keeps a written file under the next free name of its prefix; its reference.
    fn save(&self, prefix: &str, ext: &str, kind: &str, bytes: Vec<u8>) -> Value {
        let (subfolder, name) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let name = if name.is_empty() { "ComfyUI" } else { name };
        let gone_at = (self.fault == Some(Fault::Vanish))
            .then(|| Instant::now() + self.sim.config.vanish_after);
        let filename = self
            .sim
            .with(|s| {
                let counter = s
                    .counters
                    .entry(format!("{kind}/{subfolder}/{name}"))
                    .or_insert(0);
                *counter += 1;
                let filename = format!("{name}_{:05}_.{ext}", *counter);
                s.files.insert(
                    format!("{kind}/{subfolder}/{filename}"),
                    File { bytes, gone_at },
                );
                filename
            })
            .unwrap_or_default();
        if kind == "output" {
            self.sim.count(|s| s.files += 1);
        }
        json!({"filename": filename, "subfolder": subfolder, "type": kind})
    }

    fn executed(&mut self, id: &str, output: Value) {
        self.send(
            "executed",
            &json!({"node": id, "display_node": id, "output": output, "prompt_id": self.id()}),
        );
        self.outputs.insert(id.to_owned(), output);
    }

    /// Ends the execution: the closing messages, the history entry, the next prompt's turn.
    fn finish(&mut self, ended: Result<(), (End, String)>) {
        let class = |id: &str| self.item.prompt[id]["class_type"].clone();
        let (status, completed) = match ended {
            Ok(()) => {
                self.record("execution_success", json!({"prompt_id": self.id()}));
                self.sim.count(|s| s.executed += 1);
                ("success", true)
            }
            Err((End::Lost, _)) => return self.close(),
            Err((End::Interrupted, node)) => {
                let data = json!({"prompt_id": self.id(), "node_id": node, "node_type": class(&node), "executed": self.executed});
                self.record("execution_interrupted", data);
                self.sim.count(|s| s.interrupted += 1);
                ("error", false)
            }
            Err((End::Error(detail), node)) => {
                let mut data = json!({"prompt_id": self.id(), "node_id": node, "node_type": class(&node), "executed": self.executed,
                    "traceback": ["  File \"execution.py\", line 1, in execute\n"], "current_inputs": {}, "current_outputs": self.executed});
                data["exception_message"] = detail["exception_message"].clone();
                data["exception_type"] = detail["exception_type"].clone();
                self.record("execution_error", data);
                self.sim.count(|s| s.failed += 1);
                ("error", false)
            }
        };
        let meta: Map<String, Value> = self
            .outputs
            .keys()
            .map(|id| (id.clone(), json!({"node_id": id, "display_node": id, "parent_node": null, "real_node_id": id})))
            .collect();
        let entry = json!({
            "prompt": self.item.wire(),
            "outputs": self.outputs,
            "status": {"status_str": status, "completed": completed, "messages": self.messages},
            "meta": meta,
        });
        let epoch = self.epoch;
        let id = self.item.prompt_id.clone();
        let current = self.sim.with(|s| {
            if s.epoch != epoch {
                return false;
            }
            s.history.retain(|(k, _)| *k != id);
            s.history.push((id.clone(), entry));
            if s.history.len() > 10_000 {
                s.history.remove(0);
            }
            true
        });
        if current == Some(true) {
            self.send("executing", &json!({"node": null, "prompt_id": self.id()}));
        }
        self.close();
    }

    fn close(&self) {
        let epoch = self.epoch;
        self.sim.with(|s| {
            if s.epoch == epoch {
                s.running = None;
                s.interrupt = false;
                s.last_node = None;
            }
        });
        self.sim.broadcast_status();
    }
}

fn missing(input: &str) -> End {
    End::Error(
        json!({"exception_message": format!("the input {input} has nothing linked"), "exception_type": "RuntimeError"}),
    )
}

/// The nodes `id` needs, then `id`, each once.
fn visit(prompt: &Map<String, Value>, id: &str, order: &mut Vec<String>, depth: usize) {
    if order.iter().any(|o| o == id) || depth > 256 {
        return;
    }
    if let Some(inputs) = prompt.get(id).and_then(|n| n["inputs"].as_object()) {
        let mut links: Vec<&str> = inputs
            .values()
            .filter_map(|v| v.as_array()?.first()?.as_str())
            .collect();
        links.sort_by(|a, b| node_order(a, b));
        for from in links {
            visit(prompt, from, order, depth + 1);
        }
    }
    if !order.iter().any(|o| o == id) {
        order.push(id.to_owned());
    }
}
