//! The bots' application commands as the command index lists them, with versions that
//! [`Commands::rotate`] can make stale (as when Midjourney re-registers its commands).
//!
//! The initial ids and versions are the ones the protocol fact sheet records. Niji's
//! commands are listed first: clients that cache the index by command name alone
//! (erictik/midjourney-api) keep the last entry of a name, which must be the Midjourney bot's.

use serde_json::{Value, json};

use crate::{MIDJOURNEY_BOT_ID, NIJI_BOT_ID};

/// Which bot an interaction targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum App {
    Midjourney,
    Niji,
}

impl App {
    pub(crate) fn from_id(id: &str) -> Option<Self> {
        match id {
            MIDJOURNEY_BOT_ID => Some(Self::Midjourney),
            NIJI_BOT_ID => Some(Self::Niji),
            _ => None,
        }
    }

    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::Midjourney => MIDJOURNEY_BOT_ID,
            Self::Niji => NIJI_BOT_ID,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Midjourney => "Midjourney Bot",
            Self::Niji => "niji・journey Bot",
        }
    }
}

/// One slash command.
#[derive(Clone, Debug)]
pub(crate) struct Command {
    pub(crate) id: u64,
    pub(crate) app: App,
    pub(crate) name: &'static str,
    pub(crate) version: u64,
}

/// (name, Midjourney id, Midjourney version, niji id, niji version).
#[rustfmt::skip]
const SEEDS: &[(&str, u64, u64, u64, u64)] = &[
    ("imagine", 938_956_540_159_881_230, 1_237_876_415_471_554_623, 1_023_054_140_580_057_099, 1_248_805_223_892_254_774),
    ("blend", 1_062_880_104_792_997_970, 1_237_876_415_471_554_624, 1_061_216_934_374_424_697, 1_248_805_223_892_254_775),
    ("describe", 1_092_492_867_185_950_852, 1_237_876_415_471_554_625, 1_092_683_500_743_831_652, 1_248_805_223_892_254_776),
    ("shorten", 1_121_575_372_539_039_774, 1_247_736_572_414_001_223, 1_121_575_453_916_942_376, 1_248_805_223_892_254_777),
    ("info", 972_289_487_818_334_209, 1_237_876_415_735_660_565, 1_023_054_140_580_057_102, 1_248_805_223_892_254_782),
    ("fast", 972_289_487_818_334_212, 1_237_876_415_735_660_572, 1_023_054_140_580_057_107, 1_248_805_223_925_940_261),
    ("relax", 972_289_487_818_334_213, 1_237_876_415_735_660_573, 1_023_054_140_634_579_024, 1_248_805_223_925_940_262),
    ("settings", 1_000_850_743_479_255_081, 1_493_662_068_581_077_053, 1_023_054_140_634_579_025, 1_493_662_157_915_684_906),
];

/// Both bots' commands.
pub(crate) struct Commands {
    list: Vec<Command>,
}

impl Commands {
    pub(crate) fn new() -> Self {
        let mut list = Vec::new();
        for app in [App::Niji, App::Midjourney] {
            for &(name, mj_id, mj_version, niji_id, niji_version) in SEEDS {
                let (id, version) = match app {
                    App::Midjourney => (mj_id, mj_version),
                    App::Niji => (niji_id, niji_version),
                };
                list.push(Command {
                    id,
                    app,
                    name,
                    version,
                });
            }
        }
        Self { list }
    }

    /// The command with this id, if it belongs to `app`.
    pub(crate) fn find(&self, app: App, id: u64) -> Option<&Command> {
        self.list.iter().find(|c| c.id == id && c.app == app)
    }

    /// Gives every command a new version (the `new` snowflake, +1 per command).
    pub(crate) fn rotate(&mut self, new: u64) {
        for (i, command) in self.list.iter_mut().enumerate() {
            command.version = new + i as u64;
        }
    }

    /// The index body: commands (optionally filtered by name prefix, at most `limit`) and
    /// the applications they belong to.
    pub(crate) fn index(&self, query: Option<&str>, limit: usize) -> Value {
        let commands: Vec<Value> = self
            .list
            .iter()
            .filter(|c| query.is_none_or(|q| c.name.starts_with(q)))
            .take(limit)
            .map(command_json)
            .collect();
        json!({
            "applications": [application_json(App::Niji), application_json(App::Midjourney)],
            "application_commands": commands,
            "version": self.list.iter().map(|c| c.version).max().unwrap_or(0).to_string(),
        })
    }
}

fn application_json(app: App) -> Value {
    json!({
        "id": app.id(),
        "name": app.name(),
        "description": "",
        "icon": "f6ce562a6b4979c4b1cbc5b436d3be76",
        "bot_id": app.id(),
        "flags": 0,
    })
}

fn command_json(command: &Command) -> Value {
    json!({
        "id": command.id.to_string(),
        "type": 1,
        "application_id": command.app.id(),
        "version": command.version.to_string(),
        "name": command.name,
        "description": description(command.name),
        "options": options(command.name),
        "dm_permission": true,
        "contexts": [0, 1, 2],
        "integration_types": [0, 1],
        "global_popularity_rank": 1,
    })
}

fn description(name: &str) -> &'static str {
    match name {
        "imagine" => "Create images with Midjourney",
        "blend" => "Blend images together seamlessly!",
        "describe" => "Writes a prompt based on your image.",
        "shorten" => "Analyzes and shortens a prompt.",
        "info" => "View information about your profile.",
        "fast" => "Switch to fast mode",
        "relax" => "Switch to relax mode",
        "settings" => "View and adjust your personal settings.",
        _ => "",
    }
}

fn options(name: &str) -> Value {
    let text = |name: &str, description: &str, required: bool| json!({"type": 3, "name": name, "description": description, "required": required});
    let image = |name: &str, required: bool| json!({"type": 11, "name": name, "description": "Image to use", "required": required});
    match name {
        "imagine" => json!([text("prompt", "The prompt to imagine", true)]),
        "shorten" => json!([text("prompt", "The prompt to shorten", true)]),
        "describe" => json!([
            image("image", false),
            text("link", "URL of the image to describe", false),
        ]),
        "blend" => json!([
            image("image1", true),
            image("image2", true),
            {"type": 3, "name": "dimensions", "description": "The dimensions of the image.",
             "required": false, "choices": [
                {"name": "Portrait", "value": "--ar 2:3"},
                {"name": "Square", "value": "--ar 1:1"},
                {"name": "Landscape", "value": "--ar 3:2"},
             ]},
            image("image3", false),
            image("image4", false),
            image("image5", false),
        ]),
        _ => json!([]),
    }
}

#[cfg(test)]
mod tests {
    use super::{App, Commands};

    #[test]
    fn index_lists_both_bots_and_rotation_changes_versions() {
        let mut commands = Commands::new();
        let index = commands.index(None, 100);
        let list = index["application_commands"].as_array().expect("list");
        assert_eq!(list.len(), 16);
        let last_imagine = list
            .iter()
            .rfind(|c| c["name"] == "imagine")
            .expect("imagine");
        assert_eq!(last_imagine["application_id"], "936929561302675456");
        assert_eq!(last_imagine["id"], "938956540159881230");
        let imagine = commands
            .find(App::Midjourney, 938_956_540_159_881_230)
            .expect("known")
            .version;
        assert!(commands.find(App::Niji, 938_956_540_159_881_230).is_none());
        commands.rotate(5_000_000);
        let rotated = commands
            .find(App::Midjourney, 938_956_540_159_881_230)
            .expect("known")
            .version;
        assert_ne!(imagine, rotated);
        assert_eq!(
            commands.index(Some("ble"), 1)["application_commands"][0]["name"],
            "blend"
        );
    }
}
