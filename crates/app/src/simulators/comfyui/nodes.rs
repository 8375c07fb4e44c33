//! The node classes the ComfyUI simulator knows (the common text-to-image nodes, and the
//! animated-WebP and video save nodes), as `/object_info` describes them; `validate.rs`
//! checks graphs against them.

use serde_json::{Map, Value, json};

/// What an input takes.
#[derive(Clone, Copy, Debug)]
pub enum In {
    /// A link to another node's output of this type.
    Link(&'static str),
    Int {
        default: i64,
        min: i64,
        max: u64,
    },
    Float {
        default: f64,
        min: f64,
        max: f64,
    },
    Text {
        default: &'static str,
        multiline: bool,
    },
    Bool(bool),
    Combo(&'static [&'static str]),
}

/// A node class.
pub struct Class {
    pub name: &'static str,
    pub category: &'static str,
    pub inputs: &'static [(&'static str, In)],
    pub outputs: &'static [&'static str],
    pub output_node: bool,
}

pub const CHECKPOINTS: [&str; 3] = [
    "sd_xl_base_1.0.safetensors",
    "v1-5-pruned-emaonly-fp16.safetensors",
    "v1-5-pruned-emaonly.safetensors",
];
const SAMPLERS: [&str; 7] = [
    "euler",
    "euler_ancestral",
    "heun",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "ddim",
    "uni_pc",
];
const SCHEDULERS: [&str; 6] = [
    "normal",
    "karras",
    "exponential",
    "simple",
    "sgm_uniform",
    "beta",
];
const SIDE: In = In::Int {
    default: 512,
    min: 16,
    max: 16_384,
};
const FPS: In = In::Float {
    default: 6.0,
    min: 0.01,
    max: 1000.0,
};

pub const CLASSES: [Class; 10] = [
    Class {
        name: "CheckpointLoaderSimple",
        category: "loaders",
        inputs: &[("ckpt_name", In::Combo(&CHECKPOINTS))],
        outputs: &["MODEL", "CLIP", "VAE"],
        output_node: false,
    },
    Class {
        name: "CLIPTextEncode",
        category: "conditioning",
        inputs: &[
            (
                "text",
                In::Text {
                    default: "",
                    multiline: true,
                },
            ),
            ("clip", In::Link("CLIP")),
        ],
        outputs: &["CONDITIONING"],
        output_node: false,
    },
    Class {
        name: "EmptyLatentImage",
        category: "latent",
        inputs: &[
            ("width", SIDE),
            ("height", SIDE),
            (
                "batch_size",
                In::Int {
                    default: 1,
                    min: 1,
                    max: 4096,
                },
            ),
        ],
        outputs: &["LATENT"],
        output_node: false,
    },
    Class {
        name: "KSampler",
        category: "sampling",
        inputs: &[
            ("model", In::Link("MODEL")),
            (
                "seed",
                In::Int {
                    default: 0,
                    min: 0,
                    max: u64::MAX,
                },
            ),
            (
                "steps",
                In::Int {
                    default: 20,
                    min: 1,
                    max: 10_000,
                },
            ),
            (
                "cfg",
                In::Float {
                    default: 8.0,
                    min: 0.0,
                    max: 100.0,
                },
            ),
            ("sampler_name", In::Combo(&SAMPLERS)),
            ("scheduler", In::Combo(&SCHEDULERS)),
            ("positive", In::Link("CONDITIONING")),
            ("negative", In::Link("CONDITIONING")),
            ("latent_image", In::Link("LATENT")),
            (
                "denoise",
                In::Float {
                    default: 1.0,
                    min: 0.0,
                    max: 1.0,
                },
            ),
        ],
        outputs: &["LATENT"],
        output_node: false,
    },
    Class {
        name: "VAEDecode",
        category: "latent",
        inputs: &[("samples", In::Link("LATENT")), ("vae", In::Link("VAE"))],
        outputs: &["IMAGE"],
        output_node: false,
    },
    Class {
        name: "SaveImage",
        category: "image",
        inputs: &[
            ("images", In::Link("IMAGE")),
            (
                "filename_prefix",
                In::Text {
                    default: "ComfyUI",
                    multiline: false,
                },
            ),
        ],
        outputs: &[],
        output_node: true,
    },
    Class {
        name: "PreviewImage",
        category: "image",
        inputs: &[("images", In::Link("IMAGE"))],
        outputs: &[],
        output_node: true,
    },
    Class {
        name: "SaveAnimatedWEBP",
        category: "image/animation",
        inputs: &[
            ("images", In::Link("IMAGE")),
            (
                "filename_prefix",
                In::Text {
                    default: "ComfyUI",
                    multiline: false,
                },
            ),
            ("fps", FPS),
            ("lossless", In::Bool(true)),
            (
                "quality",
                In::Int {
                    default: 80,
                    min: 0,
                    max: 100,
                },
            ),
            ("method", In::Combo(&["default", "fastest", "slowest"])),
        ],
        outputs: &[],
        output_node: true,
    },
    Class {
        name: "CreateVideo",
        category: "image/video",
        inputs: &[
            ("images", In::Link("IMAGE")),
            (
                "fps",
                In::Float {
                    default: 30.0,
                    min: 1.0,
                    max: 120.0,
                },
            ),
        ],
        outputs: &["VIDEO"],
        output_node: false,
    },
    Class {
        name: "SaveVideo",
        category: "image/video",
        inputs: &[
            ("video", In::Link("VIDEO")),
            (
                "filename_prefix",
                In::Text {
                    default: "video/ComfyUI",
                    multiline: false,
                },
            ),
            ("format", In::Combo(&["auto", "mp4"])),
            ("codec", In::Combo(&["auto", "h264"])),
        ],
        outputs: &[],
        output_node: true,
    },
];

pub fn class(name: &str) -> Option<&'static Class> {
    CLASSES.iter().find(|c| c.name == name)
}

/// One class as `/object_info` describes it.
pub fn info(c: &Class) -> Value {
    let mut required = Map::new();
    for (name, kind) in c.inputs {
        let spec = match *kind {
            In::Link(t) => json!([t]),
            In::Int { default, min, max } => {
                json!(["INT", {"default": default, "min": min, "max": max}])
            }
            In::Float { default, min, max } => {
                json!(["FLOAT", {"default": default, "min": min, "max": max, "step": 0.01}])
            }
            In::Text { default, multiline } => {
                json!(["STRING", {"default": default, "multiline": multiline}])
            }
            In::Bool(default) => json!(["BOOLEAN", {"default": default}]),
            In::Combo(options) => json!([options]),
        };
        required.insert((*name).to_owned(), spec);
    }
    let order: Vec<&str> = c.inputs.iter().map(|(n, _)| *n).collect();
    json!({
        "input": {"required": required, "hidden": if c.output_node { json!({"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}) } else { json!({}) }},
        "input_order": {"required": order},
        "output": c.outputs,
        "output_is_list": c.outputs.iter().map(|_| false).collect::<Vec<_>>(),
        "output_name": c.outputs,
        "name": c.name,
        "display_name": c.name,
        "description": "",
        "python_module": "nodes",
        "category": c.category,
        "output_node": c.output_node,
    })
}

/// Every class by name.
pub fn object_info() -> Value {
    Value::Object(
        CLASSES
            .iter()
            .map(|c| (c.name.to_owned(), info(c)))
            .collect(),
    )
}
