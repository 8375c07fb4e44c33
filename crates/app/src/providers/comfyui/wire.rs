//! ComfyUI's JSON, both sides: `POST /prompt`'s request and answers (accepted with its
//! `prompt_id`, or refused with `error` and `node_errors`), the WebSocket's messages
//! (`{"type": …, "data": …}`, and binary preview frames), `/history`'s entries with their
//! outputs and status, `/queue`'s running and pending lists, and a saved file's reference.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /prompt`'s body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PromptRequest {
    pub prompt: Map<String, Value>,
    pub client_id: String,
    /// Newer servers take the id from the client, so a client that saved it first can ask
    /// for it after any crash; older ones draw their own and answer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<Value>,
}

/// `POST /prompt`'s answer when the graph is queued.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PromptAccepted {
    pub prompt_id: String,
    pub number: f64,
    #[serde(default)]
    pub node_errors: Value,
}

/// `POST /prompt`'s answer when the graph is refused (400).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PromptRefused {
    /// An object (`type`, `message`, `details`, `extra_info`) in current servers, a string in
    /// old ones.
    #[serde(default)]
    pub error: Value,
    /// By node id: `errors` (each `type`, `message`, `details`), `dependent_outputs`,
    /// `class_type`.
    #[serde(default)]
    pub node_errors: Value,
}

impl PromptRefused {
    /// The refusal in one line: the error's message and details, then each node's errors.
    pub fn summary(&self) -> String {
        let mut out = match &self.error {
            Value::String(s) => s.clone(),
            Value::Object(e) => {
                let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
                let details = e.get("details").and_then(Value::as_str).unwrap_or_default();
                if details.is_empty() || self.node_errors.as_object().is_some_and(|n| !n.is_empty())
                {
                    message.to_owned()
                } else {
                    format!("{message}: {details}")
                }
            }
            _ => "the prompt was refused".to_owned(),
        };
        if let Some(nodes) = self.node_errors.as_object() {
            for (id, node) in nodes {
                let class = node["class_type"].as_str().unwrap_or("?");
                for e in node["errors"].as_array().into_iter().flatten() {
                    let message = e["message"].as_str().unwrap_or_default();
                    let details = e["details"].as_str().unwrap_or_default();
                    let _ = write!(out, "; node {id} ({class}): {message}: {details}");
                }
            }
        }
        out.chars().take(2000).collect()
    }
}

/// A file a node saved: what `/view` is asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    /// `output` for saved files, `temp` for previews.
    #[serde(default = "output", rename = "type")]
    pub kind: String,
}

fn output() -> String {
    "output".into()
}

impl FileRef {
    /// One name for the file, as the job's references keep it.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.kind, self.subfolder, self.filename)
    }

    /// Whether it is a clip: an MP4, or an animated WebP. (Other containers are delivered as
    /// files the pipeline refuses, naming what it found.)
    pub fn is_clip(&self, animated: bool) -> Option<crate::providers::VideoFormat> {
        match extension(&self.filename).as_str() {
            "mp4" | "m4v" => Some(crate::providers::VideoFormat::Mp4),
            "webp" if animated => Some(crate::providers::VideoFormat::WebP),
            _ => None,
        }
    }
}

/// A file name's extension, in lower case (empty without one).
pub fn extension(name: &str) -> String {
    std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The saved files of one node's output (`executed`'s `output`, a history entry's
/// `outputs[node]`): `images` (pictures, or animated ones with `animated: [true]`), and the
/// `gifs` and `videos` of common video nodes. Previews (`temp`) are left out.
pub fn saved_files(output: &Value) -> Vec<(FileRef, bool)> {
    let animated = output["animated"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v.as_bool() == Some(true)));
    let mut files = Vec::new();
    for (key, is_animated) in [("images", animated), ("gifs", true), ("videos", true)] {
        for item in output[key].as_array().into_iter().flatten() {
            if let Ok(file) = serde_json::from_value::<FileRef>(item.clone())
                && file.kind == "output"
                && !file.filename.is_empty()
            {
                files.push((file, is_animated));
            }
        }
    }
    files
}

/// A history entry (`GET /history/{id}` answers `{id: entry}`, or `{}`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(default)]
    pub prompt: Value,
    /// By node id.
    #[serde(default)]
    pub outputs: Map<String, Value>,
    #[serde(default)]
    pub status: Option<HistoryStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryStatus {
    /// `success` or `error`.
    pub status_str: String,
    pub completed: bool,
    /// The execution's messages, each `[type, data]`.
    #[serde(default)]
    pub messages: Vec<(String, Value)>,
}

impl HistoryEntry {
    /// The saved files, node by node in id order, as a history lists them.
    pub fn files(&self) -> Vec<(FileRef, bool)> {
        let mut nodes: Vec<(&String, &Value)> = self.outputs.iter().collect();
        nodes.sort_by(|a, b| node_order(a.0, b.0));
        nodes
            .into_iter()
            .flat_map(|(_, o)| saved_files(o))
            .collect()
    }

    /// The message that ended a failed execution (`execution_error` or
    /// `execution_interrupted`), if it failed.
    pub fn failure(&self) -> Option<(String, Value)> {
        let status = self.status.as_ref()?;
        if status.status_str != "error" {
            return None;
        }
        Some(
            status
                .messages
                .iter()
                .rev()
                .find(|(kind, _)| kind == "execution_error" || kind == "execution_interrupted")
                .cloned()
                .unwrap_or_else(|| ("execution_error".into(), Value::Null)),
        )
    }
}

/// Node ids compared as numbers where they are (`9` before `10`).
pub fn node_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// `GET /queue`: items `[number, prompt_id, prompt, extra_data, outputs]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueState {
    #[serde(default)]
    pub queue_running: Vec<Vec<Value>>,
    #[serde(default)]
    pub queue_pending: Vec<Vec<Value>>,
}

/// Where a prompt is in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Running,
    Pending,
    Absent,
}

impl QueueState {
    pub fn place(&self, prompt_id: &str) -> Place {
        let has = |list: &[Vec<Value>]| {
            list.iter()
                .any(|item| item.get(1).and_then(Value::as_str) == Some(prompt_id))
        };
        if has(&self.queue_running) {
            Place::Running
        } else if has(&self.queue_pending) {
            Place::Pending
        } else {
            Place::Absent
        }
    }
}

/// A text message of the WebSocket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
}

impl Message {
    pub fn new(kind: &str, data: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            data,
        }
    }

    /// The prompt it is about, when it says.
    pub fn prompt_id(&self) -> Option<&str> {
        self.data.get("prompt_id").and_then(Value::as_str)
    }
}

/// Binary frames start with a big-endian event type; 1 is a preview image (then a 4-byte
/// format, 1 JPEG or 2 PNG, then the picture).
pub const PREVIEW_IMAGE: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_read_in_one_line() {
        let r: PromptRefused = serde_json::from_value(json!({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
            "node_errors": {"5": {"errors": [{"type": "value_smaller_than_min", "message": "Value 4 smaller than min of 16", "details": "width", "extra_info": {}}], "dependent_outputs": ["9"], "class_type": "EmptyLatentImage"}}
        })).unwrap();
        assert_eq!(
            r.summary(),
            "Prompt outputs failed validation; node 5 (EmptyLatentImage): Value 4 smaller than min of 16: width"
        );
        let old: PromptRefused =
            serde_json::from_value(json!({"error": "no prompt", "node_errors": []})).unwrap();
        assert_eq!(old.summary(), "no prompt");
    }

    #[test]
    fn saved_files_leave_previews_out_and_know_clips() {
        let out = json!({"images": [{"filename": "a_00001_.webp", "subfolder": "", "type": "output"},
                                    {"filename": "p.png", "subfolder": "", "type": "temp"}],
                         "animated": [true]});
        let files = saved_files(&out);
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].0.is_clip(files[0].1),
            Some(crate::providers::VideoFormat::WebP)
        );
        let still = FileRef {
            filename: "b.webp".into(),
            subfolder: String::new(),
            kind: "output".into(),
        };
        assert_eq!(still.is_clip(false), None);
        let entry: HistoryEntry = serde_json::from_value(json!({
            "outputs": {"10": {"images": [{"filename": "y.png", "subfolder": "", "type": "output"}]},
                        "9": {"videos": [{"filename": "x.mp4", "subfolder": "video", "type": "output"}]}},
            "status": {"status_str": "error", "completed": false,
                       "messages": [["execution_start", {}], ["execution_interrupted", {"node_id": "3"}]]}
        })).unwrap();
        let names: Vec<String> = entry.files().iter().map(|f| f.0.key()).collect();
        assert_eq!(names, ["output/video/x.mp4", "output//y.png"]);
        assert_eq!(entry.failure().unwrap().0, "execution_interrupted");
        let q: QueueState = serde_json::from_value(json!({"queue_running": [[0, "a", {}, {}, []]], "queue_pending": [[1, "b", {}, {}, []]]})).unwrap();
        assert_eq!(
            (q.place("a"), q.place("b"), q.place("c")),
            (Place::Running, Place::Pending, Place::Absent)
        );
    }
}
