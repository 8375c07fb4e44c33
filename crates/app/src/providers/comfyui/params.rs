//! A request's parameters for a ComfyUI workflow: which workflow (`workflow`), the size
//! (`width` and `height`, or `--ar` over the template's area), `batch_size`, the seed, and the
//! inputs the workflow lets a request set (`params`); each checked against the workflow's
//! template before anything is written or sent, and turned into the graph to submit.

use std::collections::BTreeMap;

use serde_json::Value;

use super::workflow::{RESERVED, Target, Workflow};
use crate::domain::Parameters;

/// The sides ComfyUI's latents take: multiples of 8 in this range.
const SIDE: std::ops::RangeInclusive<i64> = 16..=16_384;
/// The largest batch a request may ask for (each item one or more outputs).
pub const MAX_BATCH: u8 = 16;

/// The configured workflows and the default.
#[derive(Clone, Debug)]
pub struct Workflows {
    pub by_name: BTreeMap<String, Workflow>,
    pub default: String,
}

/// What a request asks of one workflow, checked.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub workflow: &'a Workflow,
    pub size: Option<(i64, i64)>,
    pub batch: u8,
    /// The request's seed; a render draws one when it gives none.
    pub seed: Option<u32>,
    /// The negative prompt: the request's, or `--no …` written in the prompt.
    pub negative: Option<String>,
    values: Vec<(&'a Target, Value)>,
}

impl Workflows {
    /// The workflows' largest output count, which the provider declares.
    pub fn max_outputs(&self) -> u8 {
        self.by_name
            .values()
            .map(|w| {
                let batch = if w.batch_size.is_some() { MAX_BATCH } else { 1 };
                w.outputs.saturating_mul(batch)
            })
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Checks a request and says what it runs.
    pub fn plan(
        &self,
        negative_prompt: Option<&str>,
        parameters: &Parameters,
    ) -> Result<Plan<'_>, String> {
        let name = match parameters.extra.get("workflow") {
            None => self.default.as_str(),
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(format!("workflow must be a workflow's name, not {other}")),
        };
        let Some(workflow) = self.by_name.get(name) else {
            return Err(format!(
                "workflow {name:?} is not configured; the workflows are {}",
                self.by_name
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let w = workflow;
        let at = |what: &str| format!("workflow {:?} has no {what} input", w.name);
        let negative = match (negative_prompt, parameters.extra.get("no")) {
            (Some(n), _) => Some(n.to_owned()),
            (None, Some(Value::String(n))) => Some(n.clone()),
            (None, Some(other)) => return Err(format!("--no must be text, not {other}")),
            (None, None) => None,
        };
        if negative.is_some() && w.negative_prompt.is_none() {
            return Err(format!(
                "{}: leave the negative prompt out, or name negative_prompt in its configuration",
                at("negative prompt")
            ));
        }
        if parameters.seed.is_some() && w.seed.is_none() {
            return Err(format!("{}; leave --seed out", at("seed")));
        }
        let extra = &parameters.extra;
        if let Some(unknown) = extra.keys().find(|k| {
            !w.params.contains_key(k.as_str())
                && !["workflow", "width", "height", "batch_size", "no"].contains(&k.as_str())
        }) {
            let mut takes: Vec<&str> = vec!["workflow"];
            if w.width.is_some() {
                takes.extend(["width", "height"]);
            }
            if w.batch_size.is_some() {
                takes.push("batch_size");
            }
            takes.extend(w.params.keys().map(String::as_str));
            let hint = if RESERVED.contains(&unknown.as_str()) {
                " (it is not a parameter)"
            } else {
                ""
            };
            return Err(format!(
                "{unknown:?} is not a parameter of workflow {:?}{hint}; it takes {}",
                w.name,
                takes.join(", ")
            ));
        }
        let size = size(w, parameters)?;
        let batch = match extra.get("batch_size") {
            None => 1,
            Some(v) => {
                if w.batch_size.is_none() {
                    return Err(format!("{}; leave batch_size out", at("batch_size")));
                }
                integer(v)
                    .and_then(|n| u8::try_from(n).ok())
                    .filter(|n| (1..=MAX_BATCH).contains(n))
                    .ok_or_else(|| {
                        format!("batch_size must be an integer from 1 to {MAX_BATCH}, not {v}")
                    })?
            }
        };
        let mut values = Vec::new();
        for (param, (target, kind)) in &w.params {
            if let Some(v) = extra.get(param) {
                let v = kind.accept(v).map_err(|e| format!("{param} {e}"))?;
                values.push((target, v));
            }
        }
        Ok(Plan {
            workflow,
            size,
            batch,
            seed: parameters.seed,
            negative,
            values,
        })
    }
}

fn integer(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The size asked: `width` and `height`, or `--ar W:H` keeping the template's pixel area.
fn size(w: &Workflow, parameters: &Parameters) -> Result<Option<(i64, i64)>, String> {
    let extra = &parameters.extra;
    let asked = extra.contains_key("width") || extra.contains_key("height");
    let (Some(wt), Some(ht)) = (&w.width, &w.height) else {
        if asked || parameters.aspect_ratio.is_some() {
            return Err(format!(
                "workflow {:?} has no width and height inputs; leave the size and aspect ratio out",
                w.name
            ));
        }
        return Ok(None);
    };
    let side = |name: &str, v: &Value| {
        integer(v)
            .filter(|n| SIDE.contains(n) && n % 8 == 0)
            .ok_or_else(|| {
                format!("{name} must be a multiple of 8 from 16 to 16384 pixels, not {v}")
            })
    };
    let template = (
        w.value(wt).as_i64().unwrap_or(512),
        w.value(ht).as_i64().unwrap_or(512),
    );
    if let Some(ar) = &parameters.aspect_ratio {
        if asked {
            return Err("give width and height, or an aspect ratio, not both".into());
        }
        let (a, b) = ar
            .split_once(':')
            .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
            .filter(|(a, b)| *a > 0.0 && *b > 0.0 && (a / b).is_finite())
            .ok_or_else(|| format!("aspect ratio {ar:?} is not W:H"))?;
        let area = (template.0 * template.1) as f64;
        let width = (area * a / b).sqrt();
        let round = |x: f64| ((x / 8.0).round() as i64 * 8).clamp(16, 16_384);
        return Ok(Some((round(width), round(width * b / a))));
    }
    if !asked {
        return Ok(None);
    }
    let width = extra
        .get("width")
        .map_or(Ok(template.0), |v| side("width", v))?;
    let height = extra
        .get("height")
        .map_or(Ok(template.1), |v| side("height", v))?;
    Ok(Some((width, height)))
}

impl Plan<'_> {
    /// The outputs this run delivers.
    pub fn outputs(&self) -> u8 {
        self.workflow.outputs.saturating_mul(self.batch).max(1)
    }

    /// The graph to submit, with the prompt's text (without its inline parameters).
    pub fn graph(&self, prompt: &str, seed: u32) -> serde_json::Map<String, Value> {
        let w = self.workflow;
        let mut values: Vec<(&Target, Value)> = self.values.clone();
        values.push((&w.prompt, Value::from(prompt)));
        if let Some(t) = &w.negative_prompt {
            values.push((t, Value::from(self.negative.as_deref().unwrap_or_default())));
        }
        if let Some(t) = &w.seed {
            values.push((t, Value::from(seed)));
        }
        if let (Some((width, height)), Some(wt), Some(ht)) = (self.size, &w.width, &w.height) {
            values.push((wt, Value::from(width)));
            values.push((ht, Value::from(height)));
        }
        if let Some(t) = &w.batch_size {
            values.push((t, Value::from(self.batch)));
        }
        w.fill(&values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkflowConfig;

    fn workflows() -> Workflows {
        let graph = r#"{
          "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 8.0}},
          "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
          "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}},
          "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}}
        }"#;
        let mut c = WorkflowConfig {
            prompt: "6.text".into(),
            negative_prompt: Some("7.text".into()),
            seed: Some("3.seed".into()),
            width: Some("5.width".into()),
            height: Some("5.height".into()),
            batch_size: Some("5.batch_size".into()),
            ..WorkflowConfig::default()
        };
        c.params.insert("steps".into(), "3.steps".into());
        let full = Workflow::parse("full", graph.as_bytes(), &c).unwrap();
        let bare = Workflow::parse(
            "bare",
            graph.as_bytes(),
            &WorkflowConfig {
                prompt: "6.text".into(),
                ..WorkflowConfig::default()
            },
        )
        .unwrap();
        Workflows {
            by_name: [("full".to_owned(), full), ("bare".to_owned(), bare)].into(),
            default: "full".into(),
        }
    }

    #[allow(clippy::needless_pass_by_value)]
    fn params(v: serde_json::Value) -> Parameters {
        Parameters {
            extra: v.as_object().cloned().unwrap(),
            ..Parameters::default()
        }
    }

    #[test]
    fn a_plan_fills_the_named_inputs() {
        let ws = workflows();
        let p = params(
            serde_json::json!({"width": 768, "height": "512", "batch_size": 2, "steps": "30"}),
        );
        let plan = ws.plan(Some("blur"), &p).unwrap();
        assert_eq!(plan.outputs(), 2);
        let g = plan.graph("a fox", 42);
        assert_eq!(g["6"]["inputs"]["text"], "a fox");
        assert_eq!(g["7"]["inputs"]["text"], "blur");
        assert_eq!(g["3"]["inputs"]["seed"], 42);
        assert_eq!(g["3"]["inputs"]["steps"], 30);
        assert_eq!(
            (
                g["5"]["inputs"]["width"].as_i64(),
                g["5"]["inputs"]["height"].as_i64()
            ),
            (Some(768), Some(512))
        );
        assert_eq!(g["5"]["inputs"]["batch_size"], 2);
        let wide = Parameters {
            aspect_ratio: Some("16:9".into()),
            ..Parameters::default()
        };
        let plan = ws.plan(None, &wide).unwrap();
        assert_eq!(plan.size, Some((1368, 768)));
        assert_eq!(ws.max_outputs(), 16);
    }

    #[test]
    fn what_a_workflow_does_not_take_is_refused_by_name() {
        let ws = workflows();
        let why = |v: serde_json::Value| ws.plan(None, &params(v)).unwrap_err();
        assert!(why(serde_json::json!({"workflow": "other"})).contains("bare, full"));
        assert!(why(serde_json::json!({"width": 500})).contains("multiple of 8"));
        assert!(why(serde_json::json!({"batch_size": 17})).contains("1 to 16"));
        assert!(why(serde_json::json!({"steps": "many"})).contains("steps must be an integer"));
        assert!(
            why(serde_json::json!({"cfg": 2}))
                .contains("takes workflow, width, height, batch_size, steps")
        );
        let bare = |v: serde_json::Value| {
            let mut p = params(v);
            p.extra.insert("workflow".into(), "bare".into());
            p
        };
        assert!(
            ws.plan(Some("x"), &bare(serde_json::json!({})))
                .unwrap_err()
                .contains("negative prompt")
        );
        let mut seeded = bare(serde_json::json!({}));
        seeded.seed = Some(3);
        assert!(ws.plan(None, &seeded).unwrap_err().contains("--seed"));
        assert!(
            ws.plan(None, &bare(serde_json::json!({"width": 512})))
                .unwrap_err()
                .contains("no width")
        );
        assert_eq!(
            ws.plan(None, &bare(serde_json::json!({})))
                .unwrap()
                .outputs(),
            1
        );
        assert!(
            ws.plan(None, &bare(serde_json::json!({"no": "cars"})))
                .unwrap_err()
                .contains("negative prompt")
        );
        let inline = ws
            .plan(None, &params(serde_json::json!({"no": "cars"})))
            .unwrap();
        assert_eq!(inline.graph("a fox", 1)["7"]["inputs"]["text"], "cars");
    }
}
