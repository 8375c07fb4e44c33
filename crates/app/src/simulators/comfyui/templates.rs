//! What the ComfyUI simulator draws for a save node (a batch's pictures, by the sandbox),
//! and the API-format workflows `--write-config` writes and the tests use.

use serde_json::json;

use crate::providers::sandbox::draw;

/// Picture `index` of a batch for `prompt` and `seed`, `w`×`h`, as PNG.
pub(super) fn picture(prompt: &str, seed: u32, index: u32, w: u32, h: u32) -> Vec<u8> {
    let side = w.max(h).max(1);
    let square = draw::quadrant(
        prompt,
        seed.wrapping_add(index / 4),
        side,
        (index % 4) as u8 + 1,
    );
    let pixels = if w == h {
        square
    } else {
        square.crop(0, 0, w, h)
    };
    pixels.encode_png().unwrap_or_default()
}

/// The API-format workflow `--write-config` writes and the tests use: text to image (a
/// `SaveImage`), or to an animated WebP of eight frames (`SaveAnimatedWEBP`).
pub fn workflow_json(clip: bool) -> String {
    let (size, batch, save) = if clip {
        (
            256,
            8,
            json!({"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["8", 0], "filename_prefix": "atelier-clip", "fps": 8.0, "lossless": false, "quality": 80, "method": "default"}, "_meta": {"title": "Save Animated WEBP"}}),
        )
    } else {
        (
            1024,
            1,
            json!({"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "atelier"}, "_meta": {"title": "Save Image"}}),
        )
    };
    let graph = json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": 156_680_208_700_286_i64, "steps": 12, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
              "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}, "_meta": {"title": "KSampler"}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": super::nodes::CHECKPOINTS[0]}, "_meta": {"title": "Load Checkpoint"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}, "_meta": {"title": "Empty Latent Image"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}, "_meta": {"title": "Positive"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, text", "clip": ["4", 1]}, "_meta": {"title": "Negative"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}, "_meta": {"title": "VAE Decode"}},
        "9": save,
    });
    serde_json::to_string_pretty(&graph).unwrap_or_default()
}
