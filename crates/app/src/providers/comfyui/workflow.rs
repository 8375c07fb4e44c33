//! A workflow template: the API-format graph a user exported from ComfyUI ("Export (API)":
//! an object of nodes by id, each with its `class_type` and `inputs`), and the inputs Atelier
//! fills in, each named `NODE.INPUT` by the node's id or by its title (`_meta.title`).
//!
//! Everything is checked when the configuration loads: the file is API format (not the UI's
//! `nodes`/`links` format), every named node exists once, every named input exists, holds a
//! value rather than a link to another node, and holds the kind of value it will be given.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::config::WorkflowConfig;

/// The largest workflow file read.
const MAX_FILE: u64 = 16 << 20;

/// One input of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub node: String,
    pub input: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.input)
    }
}

/// The kind of value an input holds in the template, which a request's value must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Number,
    Text,
    Bool,
}

impl Kind {
    fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Self::Integer),
            Value::Number(_) => Some(Self::Number),
            Value::String(_) => Some(Self::Text),
            Value::Bool(_) => Some(Self::Bool),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Integer => "an integer",
            Self::Number => "a number",
            Self::Text => "text",
            Self::Bool => "true or false",
        }
    }

    /// `value` as this kind (a number given as text is accepted), or why not.
    pub fn accept(self, value: &Value) -> Result<Value, String> {
        let text = value.as_str().map(str::trim);
        let fits = match self {
            Self::Integer => value
                .as_i64()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .map(Value::from),
            Self::Number => value
                .as_f64()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .filter(|f: &f64| f.is_finite())
                .map(Value::from),
            Self::Text => match value {
                Value::String(s) => Some(Value::String(s.clone())),
                Value::Number(n) => Some(Value::String(n.to_string())),
                _ => None,
            },
            Self::Bool => value
                .as_bool()
                .or_else(|| text.and_then(|t| t.parse().ok()))
                .map(Value::Bool),
        };
        fits.ok_or_else(|| format!("must be {}, not {value}", self.name()))
    }
}

/// A loaded, checked workflow.
#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    graph: Map<String, Value>,
    pub prompt: Target,
    pub negative_prompt: Option<Target>,
    pub seed: Option<Target>,
    pub width: Option<Target>,
    pub height: Option<Target>,
    pub batch_size: Option<Target>,
    /// Outputs one run saves per batch item.
    pub outputs: u8,
    /// The other inputs a request may set, by parameter name.
    pub params: BTreeMap<String, (Target, Kind)>,
}

impl Workflow {
    /// Reads and checks the workflow `name` as configured.
    pub fn load(name: &str, config: &WorkflowConfig) -> Result<Self, String> {
        let path = &config.file;
        if path.as_os_str().is_empty() {
            return Err("file is missing: name the workflow's API-format JSON".into());
        }
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{shown} is not a file"));
        }
        if meta.len() > MAX_FILE {
            return Err(format!(
                "{shown} is larger than the {MAX_FILE} bytes a workflow may be"
            ));
        }
        let text = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        Self::parse(name, &text, config).map_err(|e| format!("{shown}: {e}"))
    }

    /// Checks a workflow's JSON against its configuration.
    pub fn parse(name: &str, json: &[u8], config: &WorkflowConfig) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(json).map_err(|e| format!("is not JSON: {e}"))?;
        let Value::Object(graph) = value else {
            return Err("is not a workflow: an object of nodes by id was expected".into());
        };
        if graph.contains_key("nodes") && graph.contains_key("links") {
            return Err(
                "is a workflow in ComfyUI's UI format; export it with \"Export (API)\" (enable \
                 the dev mode options in older versions) and name that file"
                    .into(),
            );
        }
        if graph.is_empty() {
            return Err("has no nodes".into());
        }
        for (id, node) in &graph {
            let ok = node.get("class_type").is_some_and(Value::is_string)
                && node.get("inputs").is_some_and(Value::is_object);
            if !ok {
                return Err(format!(
                    "node {id:?} has no class_type and inputs: this is not an API-format workflow"
                ));
            }
        }
        if !(1..=16).contains(&config.outputs) {
            return Err(format!(
                "outputs must be from 1 to 16, not {}",
                config.outputs
            ));
        }
        let mut workflow = Self {
            name: name.to_owned(),
            graph,
            prompt: Target {
                node: String::new(),
                input: String::new(),
            },
            negative_prompt: None,
            seed: None,
            width: None,
            height: None,
            batch_size: None,
            outputs: config.outputs,
            params: BTreeMap::new(),
        };
        if config.prompt.trim().is_empty() {
            return Err(
                "prompt is missing: name the text input the prompt goes in, e.g. \
                        prompt = \"6.text\""
                    .into(),
            );
        }
        let mut used: Vec<(String, Target)> = Vec::new();
        let mut named = |key: &str, spec: &str, kind: Option<Kind>| -> Result<Target, String> {
            let (target, found) = workflow.find(spec).map_err(|e| format!("{key}: {e}"))?;
            if let Some(kind) = kind
                && found != kind
            {
                return Err(format!(
                    "{key}: {target} holds {}, not {}",
                    found.name(),
                    kind.name()
                ));
            }
            if let Some((other, _)) = used.iter().find(|(_, t)| *t == target) {
                return Err(format!("{key} and {other} both name {target}"));
            }
            used.push((key.to_owned(), target.clone()));
            Ok(target)
        };
        let prompt = named("prompt", &config.prompt, Some(Kind::Text))?;
        let negative = optional(config.negative_prompt.as_ref())
            .map(|s| named("negative_prompt", s, Some(Kind::Text)))
            .transpose()?;
        let seed = optional(config.seed.as_ref())
            .map(|s| named("seed", s, Some(Kind::Integer)))
            .transpose()?;
        let width = optional(config.width.as_ref())
            .map(|s| named("width", s, Some(Kind::Integer)))
            .transpose()?;
        let height = optional(config.height.as_ref())
            .map(|s| named("height", s, Some(Kind::Integer)))
            .transpose()?;
        let batch = optional(config.batch_size.as_ref())
            .map(|s| named("batch_size", s, Some(Kind::Integer)))
            .transpose()?;
        let mut params = BTreeMap::new();
        for (param, spec) in &config.params {
            if RESERVED.contains(&param.as_str()) {
                return Err(format!(
                    "params.{param}: {param} is set by its own key, not under params"
                ));
            }
            let target = named(&format!("params.{param}"), spec, None)?;
            let kind = workflow.kind_of(&target)?;
            params.insert(param.clone(), (target, kind));
        }
        if width.is_some() != height.is_some() {
            return Err("width and height are named together or not at all".into());
        }
        workflow.prompt = prompt;
        workflow.negative_prompt = negative;
        workflow.seed = seed;
        workflow.width = width;
        workflow.height = height;
        workflow.batch_size = batch;
        workflow.params = params;
        Ok(workflow)
    }

    /// The input `spec` (`NODE.INPUT`) names, and the kind of value it holds.
    fn find(&self, spec: &str) -> Result<(Target, Kind), String> {
        let spec = spec.trim();
        let Some((node, input)) = spec.rsplit_once('.') else {
            return Err(format!(
                "{spec:?} is not NODE.INPUT (a node's id or title, a dot, an input's name)"
            ));
        };
        let (node, input) = (node.trim(), input.trim());
        if node.is_empty() || input.is_empty() {
            return Err(format!("{spec:?} is not NODE.INPUT"));
        }
        let id = if self.graph.contains_key(node) {
            node.to_owned()
        } else {
            let titled: Vec<&String> = self
                .graph
                .iter()
                .filter(|(_, n)| n["_meta"]["title"].as_str().map(str::trim) == Some(node))
                .map(|(id, _)| id)
                .collect();
            match titled.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(format!(
                        "the workflow has no node with id or title {node:?}"
                    ));
                }
                several => {
                    return Err(format!(
                        "nodes {} are all titled {node:?}; name one by its id",
                        several
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        };
        let target = Target {
            node: id,
            input: input.to_owned(),
        };
        let kind = self.kind_of(&target)?;
        Ok((target, kind))
    }

    fn kind_of(&self, target: &Target) -> Result<Kind, String> {
        let node = &self.graph[&target.node];
        let class = node["class_type"].as_str().unwrap_or_default();
        let inputs = node["inputs"].as_object();
        let Some(value) = inputs.and_then(|i| i.get(&target.input)) else {
            let known: Vec<&str> = inputs
                .map(|i| i.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(format!(
                "node {} ({class}) has no input {:?}; its inputs are {}",
                target.node,
                target.input,
                known.join(", ")
            ));
        };
        if let Value::Array(link) = value {
            let from = link.first().map(Value::to_string).unwrap_or_default();
            return Err(format!(
                "{target} ({class}) is linked to node {from}'s output, not a value; name the \
                 node that holds the value"
            ));
        }
        Kind::of(value).ok_or_else(|| format!("{target} ({class}) holds {value}, not a value"))
    }

    /// The template's value of an input.
    pub fn value(&self, target: &Target) -> &Value {
        &self.graph[&target.node]["inputs"][&target.input]
    }

    /// The graph with `values` set.
    pub fn fill(&self, values: &[(&Target, Value)]) -> Map<String, Value> {
        let mut graph = self.graph.clone();
        for (target, value) in values {
            if let Some(Value::Object(inputs)) = graph
                .get_mut(&target.node)
                .and_then(|n| n.get_mut("inputs"))
            {
                inputs.insert(target.input.clone(), value.clone());
            }
        }
        graph
    }
}

/// A named input that is set, not blank.
fn optional(spec: Option<&String>) -> Option<&str> {
    spec.map(String::as_str).filter(|s| !s.trim().is_empty())
}

/// Parameters with a key of their own.
pub const RESERVED: [&str; 8] = [
    "workflow",
    "prompt",
    "negative_prompt",
    "seed",
    "width",
    "height",
    "batch_size",
    "inputs",
];

#[cfg(test)]
mod tests {
    use super::*;

    pub const GRAPH: &str = r#"{
      "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 8.0,
            "sampler_name": "euler", "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}, "_meta": {"title": "Sampler"}},
      "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
      "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
      "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}, "_meta": {"title": "Positive"}},
      "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}, "_meta": {"title": "Negative"}},
      "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "A"}}
    }"#;

    fn config(prompt: &str) -> WorkflowConfig {
        WorkflowConfig {
            prompt: prompt.into(),
            ..WorkflowConfig::default()
        }
    }

    #[test]
    fn inputs_are_found_by_id_or_title() {
        let mut c = config("Positive.text");
        c.negative_prompt = Some("7.text".into());
        c.seed = Some("Sampler.seed".into());
        c.width = Some("5.width".into());
        c.height = Some("5.height".into());
        c.params.insert("cfg".into(), "3.cfg".into());
        c.params.insert("sampler".into(), "3.sampler_name".into());
        let w = Workflow::parse("t", GRAPH.as_bytes(), &c).unwrap();
        assert_eq!(w.prompt.to_string(), "6.text");
        assert_eq!(w.seed.as_ref().unwrap().to_string(), "3.seed");
        assert_eq!(w.params["cfg"].1, Kind::Number);
        assert_eq!(w.params["sampler"].1, Kind::Text);
        let filled = w.fill(&[(&w.prompt, Value::from("a fox"))]);
        assert_eq!(filled["6"]["inputs"]["text"], "a fox");
        assert_eq!(w.value(&w.prompt), "x");
    }

    #[test]
    fn every_mistake_is_named() {
        let why = |c: WorkflowConfig| Workflow::parse("t", GRAPH.as_bytes(), &c).unwrap_err();
        assert!(why(config("6.txt")).contains("has no input \"txt\""));
        assert!(why(config("Nope.text")).contains("no node with id or title \"Nope\""));
        assert!(why(config("3.model")).contains("linked to node"));
        assert!(why(config("text")).contains("NODE.INPUT"));
        assert!(why(config("5.width")).contains("holds an integer, not text"));
        assert!(why(config("")).contains("prompt is missing"));
        let mut both = config("6.text");
        both.negative_prompt = Some("Positive.text".into());
        assert!(why(both).contains("both name 6.text"));
        let mut half = config("6.text");
        half.width = Some("5.width".into());
        assert!(why(half).contains("together"));
        let ui = br#"{"nodes": [], "links": [], "version": 0.4}"#;
        assert!(
            Workflow::parse("t", ui, &config("6.text"))
                .unwrap_err()
                .contains("UI format")
        );
        let dup = GRAPH.replace("\"title\": \"Negative\"", "\"title\": \"Positive\"");
        assert!(
            Workflow::parse("t", dup.as_bytes(), &config("Positive.text"))
                .unwrap_err()
                .contains("name one by its id")
        );
    }

    #[test]
    fn values_are_taken_in_the_templates_kind() {
        assert_eq!(Kind::Integer.accept(&Value::from("12")).unwrap(), 12);
        assert!(Kind::Integer.accept(&Value::from(1.5)).is_err());
        assert_eq!(Kind::Number.accept(&Value::from(7)).unwrap(), 7.0);
        assert_eq!(Kind::Bool.accept(&Value::from("true")).unwrap(), true);
        assert!(Kind::Text.accept(&Value::Bool(true)).is_err());
    }
}
