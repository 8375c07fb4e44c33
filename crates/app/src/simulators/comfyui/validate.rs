//! A graph's validation as ComfyUI does it before queuing: unknown classes, missing inputs,
//! links to the wrong type, values out of range or not in a list, each reported in
//! `node_errors` under the node, with the outputs that depend on it.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::nodes::{In, class};

fn reason(kind: &str, message: &str, details: &str, input: Option<&str>) -> Value {
    let extra = input.map_or_else(|| json!({}), |i| json!({"input_name": i}));
    json!({"type": kind, "message": message, "details": details, "extra_info": extra})
}

/// A refused graph: the answer's `error` and `node_errors`.
pub struct Refusal {
    pub error: Value,
    pub node_errors: Value,
}

/// Checks a graph as ComfyUI's `validate_prompt` does; the output nodes to run.
pub fn validate(prompt: &Map<String, Value>) -> Result<Vec<String>, Refusal> {
    let whole = |kind: &str, message: String, details: String| Refusal {
        error: reason(kind, &message, &details, None),
        node_errors: json!({}),
    };
    let mut outputs = Vec::new();
    for (id, node) in prompt {
        let Some(class_type) = node.get("class_type").and_then(Value::as_str) else {
            return Err(whole(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.".into(),
                format!("Node ID '#{id}'"),
            ));
        };
        let Some(c) = class(class_type) else {
            return Err(whole(
                "invalid_prompt",
                format!("Cannot execute because node {class_type} does not exist."),
                format!("Node ID '#{id}'"),
            ));
        };
        if c.output_node {
            outputs.push(id.clone());
        }
    }
    if outputs.is_empty() {
        return Err(whole(
            "prompt_no_outputs",
            "Prompt has no outputs".into(),
            String::new(),
        ));
    }
    outputs.sort_by(|a, b| crate::providers::comfyui::wire::node_order(a, b));
    let mut checked: HashMap<String, (bool, Vec<Value>)> = HashMap::new();
    let mut good = Vec::new();
    let mut node_errors = Map::new();
    let mut lines = Vec::new();
    for output in &outputs {
        if node(prompt, output, &mut checked, 0) {
            good.push(output.clone());
            continue;
        }
        for (id, (_, reasons)) in &checked {
            if reasons.is_empty() {
                continue;
            }
            let entry = node_errors.entry(id.clone()).or_insert_with(|| {
                json!({"errors": reasons, "dependent_outputs": [], "class_type": prompt[id]["class_type"]})
            });
            if let Some(list) = entry["dependent_outputs"].as_array_mut() {
                list.push(json!(output));
            }
        }
        for r in checked.get(output).map(|c| c.1.clone()).unwrap_or_default() {
            lines.push(format!(
                "{}: {}",
                r["message"].as_str().unwrap_or_default(),
                r["details"].as_str().unwrap_or_default()
            ));
        }
    }
    if good.is_empty() {
        return Err(Refusal {
            error: reason(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                &lines.join("\n"),
                None,
            ),
            node_errors: Value::Object(node_errors),
        });
    }
    Ok(good)
}

/// Whether node `id` and everything it links to are valid; its reasons go in `checked`.
fn node(
    prompt: &Map<String, Value>,
    id: &str,
    checked: &mut HashMap<String, (bool, Vec<Value>)>,
    depth: usize,
) -> bool {
    if let Some((ok, _)) = checked.get(id) {
        return *ok;
    }
    // A cycle or an absurd depth is refused rather than followed.
    checked.insert(id.to_owned(), (false, Vec::new()));
    let Some(c) = prompt[id]["class_type"].as_str().and_then(class) else {
        return false;
    };
    let inputs = prompt[id]["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut reasons = Vec::new();
    let mut valid = depth < 256;
    for (name, kind) in c.inputs {
        let Some(value) = inputs.get(*name) else {
            reasons.push(reason(
                "required_input_missing",
                "Required input is missing",
                name,
                Some(name),
            ));
            continue;
        };
        match (kind, value) {
            (In::Link(want), Value::Array(link)) => {
                let (Some(from), Some(slot)) = (
                    link.first().and_then(Value::as_str),
                    link.get(1).and_then(Value::as_u64),
                ) else {
                    reasons.push(reason(
                        "bad_linked_input",
                        "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                        name,
                        Some(name),
                    ));
                    continue;
                };
                let got = prompt
                    .get(from)
                    .and_then(|n| n["class_type"].as_str())
                    .and_then(class);
                let Some(got) = got else {
                    reasons.push(reason(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        &format!("'{from}'"),
                        Some(name),
                    ));
                    continue;
                };
                let given = usize::try_from(slot).ok().and_then(|s| got.outputs.get(s));
                if given != Some(want) {
                    let details = format!(
                        "{name}, received_type({}) mismatch input_type({want})",
                        given.copied().unwrap_or("nothing")
                    );
                    reasons.push(reason(
                        "return_type_mismatch",
                        "Return type mismatch between linked nodes",
                        &details,
                        Some(name),
                    ));
                    continue;
                }
                if !node(prompt, from, checked, depth + 1) {
                    valid = false;
                }
            }
            (In::Link(_), _) => reasons.push(reason(
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                name,
                Some(name),
            )),
            (_, Value::Array(_)) => reasons.push(reason(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                name,
                Some(name),
            )),
            (In::Int { min, max, .. }, v) => match v
                .as_i64()
                .map(i128::from)
                .or_else(|| v.as_u64().map(i128::from))
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            {
                None => reasons.push(reason(
                    "invalid_input_type",
                    "Failed to convert an input value to a INT value",
                    &format!("{name}, {v}"),
                    Some(name),
                )),
                Some(n) if n < i128::from(*min) => reasons.push(reason(
                    "value_smaller_than_min",
                    &format!("Value {n} smaller than min of {min}"),
                    name,
                    Some(name),
                )),
                Some(n) if n > i128::from(*max) => reasons.push(reason(
                    "value_bigger_than_max",
                    &format!("Value {n} bigger than max of {max}"),
                    name,
                    Some(name),
                )),
                Some(_) => {}
            },
            (In::Float { min, max, .. }, v) => match v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            {
                None => reasons.push(reason(
                    "invalid_input_type",
                    "Failed to convert an input value to a FLOAT value",
                    &format!("{name}, {v}"),
                    Some(name),
                )),
                Some(f) if f < *min => reasons.push(reason(
                    "value_smaller_than_min",
                    &format!("Value {f} smaller than min of {min}"),
                    name,
                    Some(name),
                )),
                Some(f) if f > *max => reasons.push(reason(
                    "value_bigger_than_max",
                    &format!("Value {f} bigger than max of {max}"),
                    name,
                    Some(name),
                )),
                Some(_) => {}
            },
            (In::Combo(options), v) => {
                if !v.as_str().is_some_and(|s| options.contains(&s)) {
                    let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    reasons.push(reason(
                        "value_not_in_list",
                        "Value not in list",
                        &format!("{name}: '{shown}' not in {options:?}"),
                        Some(name),
                    ));
                }
            }
            (In::Text { .. } | In::Bool(_), _) => {}
        }
    }
    let ok = valid && reasons.is_empty();
    checked.insert(id.to_owned(), (ok, reasons));
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulators::comfyui::nodes::object_info;

    #[allow(clippy::needless_pass_by_value)]
    fn graph(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn graphs_are_refused_as_comfyui_refuses_them() {
        let unknown = validate(&graph(
            json!({"1": {"class_type": "Upscaler", "inputs": {}}}),
        ))
        .unwrap_err();
        assert_eq!(unknown.error["type"], "invalid_prompt");
        assert_eq!(
            unknown.error["message"],
            "Cannot execute because node Upscaler does not exist."
        );
        let none = validate(&graph(
            json!({"1": {"class_type": "EmptyLatentImage", "inputs": {}}}),
        ))
        .unwrap_err();
        assert_eq!(none.error["type"], "prompt_no_outputs");
        let bad = validate(&graph(json!({
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 8, "height": 512}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["5", 0]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}
        })))
        .unwrap_err();
        assert_eq!(bad.error["type"], "prompt_outputs_failed_validation");
        let five = &bad.node_errors["5"];
        let kinds: Vec<&str> = five["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["value_smaller_than_min", "required_input_missing"]);
        assert_eq!(five["dependent_outputs"], json!(["9"]));
        assert_eq!(
            bad.node_errors["8"]["errors"][0]["type"],
            "return_type_mismatch"
        );
        assert!(
            object_info()["KSampler"]["input"]["required"]["seed"][1]["max"].as_u64()
                == Some(u64::MAX)
        );
    }
}
