//! Prompts: ready-made requests a client offers its user, which the assistant then carries
//! out with the tools.

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};

type Arguments = serde_json::Map<String, serde_json::Value>;

pub fn list() -> Vec<Prompt> {
    let arg = |name: &str, description: &str, required: bool| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(required)
    };
    vec![
        Prompt::new(
            "illustrate",
            Some("Illustrate a character, a scene or an element of a book, in the library's order"),
            Some(vec![
                arg("category", "character, scene or element", true),
                arg(
                    "subject",
                    "who or what it shows (\"squirrel\", \"the mill\")",
                    true,
                ),
                arg(
                    "description",
                    "what the picture should show, and its style",
                    false,
                ),
            ]),
        )
        .with_title("Illustrate a character or a scene"),
        Prompt::new(
            "review_subject",
            Some("Show the latest pictures of a subject and help choose the final one"),
            Some(vec![arg("subject", "who or what the pictures show", true)]),
        )
        .with_title("Review the pictures of a subject"),
    ]
}

fn text(args: Option<&Arguments>, name: &str) -> Option<String> {
    args.and_then(|a| a.get(name))
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn required(args: Option<&Arguments>, name: &str) -> Result<String, ErrorData> {
    text(args, name)
        .ok_or_else(|| ErrorData::invalid_params(format!("argument {name:?} is required"), None))
}

pub fn get(name: &str, args: Option<&Arguments>) -> Result<GetPromptResult, ErrorData> {
    let message = match name {
        "illustrate" => {
            let category = required(args, "category")?;
            if !matches!(category.as_str(), "character" | "scene" | "element") {
                return Err(ErrorData::invalid_params(
                    format!("category must be character, scene or element, not {category:?}"),
                    None,
                ));
            }
            let subject = required(args, "subject")?;
            let description = text(args, "description").unwrap_or_else(|| {
                format!("the {category} {subject}, in the style of the book's other pictures")
            });
            format!(
                "Illustrate the {category} \"{subject}\": {description}.\n\
                 First call search_images with text \"{subject}\" to see earlier pictures of it \
                 and keep the same look. Then call generate_image with category \"{category}\", \
                 subject \"{subject}\" and a detailed prompt. Show me the pictures; when I pick \
                 one, upscale or vary it with run_action, and mark the one I keep final with \
                 set_image_status."
            )
        }
        "review_subject" => {
            let subject = required(args, "subject")?;
            format!(
                "Show me the latest pictures of \"{subject}\": call list_images with subject \
                 \"{subject}\" and thumbnails true (and search_images with text \"{subject}\" if \
                 that finds none). Compare them briefly, then ask which one to mark final with \
                 set_image_status, and which to archive."
            )
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("no prompt is called {other:?}; there are: illustrate, review_subject"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        message,
    )]))
}
