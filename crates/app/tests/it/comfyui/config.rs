//! Workflow files checked when the configuration loads: every mistake a configuration error
//! naming the workflow, the node and the input, before any command runs.

use atelier::simulators::comfyui as sim;

/// A configuration file naming one workflow file written from `graph`, loaded.
fn load_with(graph: &str, inputs: &str) -> Result<atelier::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.json"), graph).unwrap();
    let toml = format!(
        "default_provider = \"comfyui\"\n[providers.comfyui]\nenabled = true\n\
         [providers.comfyui.workflows.flow]\nfile = \"flow.json\"\n{inputs}\n"
    );
    let file = dir.path().join("atelier.toml");
    std::fs::write(&file, toml).unwrap();
    atelier::config::load(Some(&file), Some(dir.path())).map_err(|e| e.to_string())
}

#[test]
fn bad_workflow_files_are_refused_when_the_configuration_loads() {
    let graph = sim::workflow_json(false);
    // Relative to the configuration file, and found by title or id.
    let loaded = load_with(&graph, "prompt = \"Positive.text\"\nseed = \"3.seed\"").unwrap();
    assert!(
        loaded.providers.comfyui.workflows["flow"]
            .file
            .is_absolute()
    );
    let cases = [
        (
            "prompt = \"Positive.txt\"",
            "node 6 (CLIPTextEncode) has no input \"txt\"",
        ),
        (
            "prompt = \"Nope.text\"",
            "no node with id or title \"Nope\"",
        ),
        ("prompt = \"6.text\"\nseed = \"3.model\"", "linked to node"),
        (
            "prompt = \"6.text\"\nwidth = \"6.text\"",
            "holds text, not an integer",
        ),
        (
            "prompt = \"6.text\"\nparams = { prompt = \"7.text\" }",
            "set by its own key",
        ),
        ("negative_prompt = \"7.text\"", "prompt is missing"),
        (
            "prompt = \"6.text\"\noutputs = 0",
            "outputs must be from 1 to 16",
        ),
    ];
    for (inputs, words) in cases {
        let e = load_with(&graph, inputs).unwrap_err();
        assert!(
            e.contains("providers.comfyui.workflows.flow"),
            "{inputs}: {e}"
        );
        assert!(e.contains(words), "{inputs}: {e}");
    }
    let ui = r#"{"last_node_id": 9, "nodes": [], "links": [], "version": 0.4}"#;
    assert!(
        load_with(ui, "prompt = \"6.text\"")
            .unwrap_err()
            .contains("Export (API)")
    );
    assert!(
        load_with("{not json", "prompt = \"6.text\"")
            .unwrap_err()
            .contains("not JSON")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("atelier.toml");
    std::fs::write(
        &file,
        "[providers.comfyui]\nenabled = true\n[providers.comfyui.workflows.flow]\nfile = \"gone.json\"\nprompt = \"6.text\"\n",
    )
    .unwrap();
    let e = atelier::config::load(Some(&file), Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone.json") && e.contains("cannot read"), "{e}");
    // Two workflows and no default: the configuration says which is missing.
    std::fs::write(dir.path().join("a.json"), &graph).unwrap();
    std::fs::write(
        &file,
        "[providers.comfyui]\nenabled = true\n[providers.comfyui.workflows.a]\nfile = \"a.json\"\nprompt = \"6.text\"\n\
         [providers.comfyui.workflows.b]\nfile = \"a.json\"\nprompt = \"6.text\"\n",
    )
    .unwrap();
    let e = atelier::config::load(Some(&file), Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("default_workflow"), "{e}");
}
