//! `kill -9` at many moments of a generation, then workers again: every job completes, no
//! image is lost or duplicated, and nothing half-written is ever visible under the storage
//! root.

use std::collections::BTreeSet;
use std::time::Duration;

use atelier::pipeline::decode;
use atelier::store::sha256_hex;

use crate::support::DataDir;

const CONFIG: &str = "[providers.sandbox]\nsize = 256\ndelay_ms = 400\n[jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n";

/// Every file under the storage root must be whole: it decodes in full.
fn assert_all_whole(d: &DataDir) {
    for f in d.stored_files() {
        let bytes = std::fs::read(d.images().join(&f)).unwrap();
        assert!(
            decode(&bytes).is_ok(),
            "{f} is half-written ({} bytes)",
            bytes.len()
        );
    }
}

/// The catalogue and the storage root agree, and every generation finished with its five
/// images, each once.
fn assert_complete(d: &DataDir) -> usize {
    let (code, list) = d.json(&["image", "list", "--limit", "1000"]);
    assert_eq!(code, 0);
    let images = list.as_array().unwrap();
    let mut by_generation = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut expected_files = BTreeSet::new();
    for i in images {
        let path = std::path::Path::new(i["path"].as_str().unwrap());
        let bytes = std::fs::read(path).expect("catalogued image exists");
        assert_eq!(i["sha256"], sha256_hex(&bytes));
        by_generation
            .entry(i["generation_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(i["role"].as_str().unwrap().to_owned());
        let gen_id = i["generation_id"].as_str().unwrap();
        expected_files.insert(format!("{gen_id}/{}.png", i["role"].as_str().unwrap()));
        expected_files.insert(format!(
            "{gen_id}/thumb_{}.webp",
            i["role"].as_str().unwrap()
        ));
    }
    for (g, mut roles) in by_generation.clone() {
        roles.sort();
        assert_eq!(
            roles,
            ["grid", "upscale_1", "upscale_2", "upscale_3", "upscale_4"],
            "generation {g}"
        );
        let (_, shown) = d.json(&["generation", "show", &g]);
        assert_eq!(shown["status"], "succeeded", "{shown}");
    }
    let on_disk: BTreeSet<String> = d.stored_files().into_iter().collect();
    assert_eq!(
        on_disk, expected_files,
        "storage holds exactly the catalogued images"
    );
    by_generation.len()
}

#[test]
fn kill_9_during_generate_then_workers_complete_the_job() {
    let d = DataDir::raw(CONFIG);
    let moments = [30, 150, 350, 500, 700, 900, 1100, 1400];
    let mut started = 0;
    for (n, ms) in moments.iter().enumerate() {
        let mut child = d
            .cmd()
            .args(["generate", &format!("crash test {n}"), "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        started += 1;
        assert_all_whole(&d);
    }
    let (code, run) = d.json(&["jobs", "run", "--until-idle"]);
    assert_eq!(code, 0);
    // The kills did interrupt work: the recovery run had jobs to finish.
    assert!(run["completed"].as_u64().unwrap() >= 3, "{run}");
    assert_all_whole(&d);
    let done = assert_complete(&d);
    assert!(
        done >= started - 1,
        "only a kill before the first write may leave no generation: {done}/{started}"
    );
}

#[test]
fn kill_9_during_jobs_run_then_workers_complete_every_job() {
    let d = DataDir::raw(CONFIG);
    for n in 0..3 {
        let (code, _) = d.json(&["generate", &format!("queued {n}"), "--no-wait"]);
        assert_eq!(code, 0);
    }
    for ms in [250, 800] {
        let mut child = d
            .cmd()
            .args(["jobs", "run", "--until-idle"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_all_whole(&d);
    }
    let (code, run) = d.json(&["jobs", "run", "--until-idle"]);
    assert_eq!(code, 0);
    assert!(run["completed"].as_u64().unwrap() >= 1, "{run}");
    assert_eq!(assert_complete(&d), 3);
}

/// The same against Midjourney (the simulator): a job killed while it waits for the bot
/// resumes from its saved Discord references, without asking Midjourney to render again what
/// it already rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_midjourney_job_then_workers_recover_it() {
    use atelier::cli::simulate::{SandboxPainter, client_config};
    let mut sim_config = atelier_simulator::Config::new(std::sync::Arc::new(SandboxPainter));
    sim_config.image_side = 256;
    sim_config.timing = atelier_simulator::Timing::quick(Duration::from_millis(80));
    let sim = atelier_simulator::start(sim_config).await.unwrap();
    let d = DataDir::raw(&format!(
        "{}\n[jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n",
        client_config(&sim).replace("history_poll_secs = 5.0", "history_poll_secs = 0.5")
    ));
    let moments = [200, 700, 1500, 2300, 3100];
    for (n, ms) in moments.iter().enumerate() {
        let mut child = d
            .cmd()
            .args(["generate", &format!("a windmill, take {n}"), "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        let _ = child.kill();
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        assert_all_whole(&d);
    }
    let (code, run) = {
        let mut cmd = d.cmd();
        cmd.args(["--json", "jobs", "run", "--until-idle"]);
        tokio::task::spawn_blocking(move || {
            let out = cmd.output().unwrap();
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
            (out.status.code(), json)
        })
        .await
        .unwrap()
    };
    assert_eq!(code, Some(0), "{run}");
    // The kills did interrupt Midjourney jobs: the recovery run had some to finish.
    assert!(run["completed"].as_u64().unwrap() >= 1, "{run}");
    assert_all_whole(&d);
    let done = tokio::task::block_in_place(|| assert_complete(&d));
    assert!(done >= moments.len() - 1, "{done} generations recovered");
    // Each generation is one /imagine and four U presses; a kill may at worst cost one
    // interaction sent again (killed after saving its nonce, before sending it).
    let interactions = sim.control().stats().interactions;
    let most = (5 * done + moments.len()) as u64;
    assert!(
        interactions <= most,
        "{interactions} interactions for {done} generations: work was redone"
    );
    sim.shutdown().await;
}

/// `kill -9` right after a Midjourney job sent its four U presses at once: the resumed job
/// finds each press's result in the channel (its nonce was saved before the send) and presses
/// nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_four_presses_in_flight_then_none_is_sent_again() {
    use atelier::cli::simulate::{SandboxPainter, client_config};
    let mut sim_config = atelier_simulator::Config::new(std::sync::Arc::new(SandboxPainter));
    sim_config.image_side = 128;
    // A U press answers 300 ms after it is sent: the kill lands while all four are pending.
    sim_config.timing = atelier_simulator::Timing::quick(Duration::from_millis(300));
    let sim = atelier_simulator::start(sim_config).await.unwrap();
    let d = DataDir::raw(&format!(
        "{}\n[jobs]\nlease_secs = 0.6\nretry_base_secs = 0.05\npoll_secs = 0.05\n",
        client_config(&sim)
            .replace("history_poll_secs = 5.0", "history_poll_secs = 0.5")
            .replace("interaction_gap_ms = 50", "interaction_gap_ms = 0")
            .replace("interaction_jitter_ms = 50", "interaction_jitter_ms = 0")
    ));
    let (code, submitted) = tokio::task::block_in_place(|| {
        d.json(&["generate", "a lighthouse, four lamps", "--no-wait"])
    });
    assert_eq!(code, 0, "{submitted}");
    let id: atelier::domain::GenerationId = submitted["id"].as_str().unwrap().parse().unwrap();
    let mut child = d
        .cmd()
        .args(["jobs", "run", "--until-idle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let control = sim.control();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while control.stats().interactions < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the presses were not sent"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = child.kill();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;

    // Several presses were pending when the process died.
    let url = d.database_url();
    let catalogue = atelier::catalogue::open(&url, false)
        .await
        .unwrap()
        .catalogue;
    let refs = catalogue.generation(id).await.unwrap().provider_refs;
    let pending = refs["pending"].as_object().map_or(0, serde_json::Map::len);
    assert!(pending >= 2, "{refs}");
    drop(catalogue);

    let (code, run) = tokio::task::block_in_place(|| d.json(&["jobs", "run", "--until-idle"]));
    assert_eq!(code, 0, "{run}");
    assert_eq!(tokio::task::block_in_place(|| assert_complete(&d)), 1);
    let stats = sim.control().stats();
    assert_eq!(stats.interactions, 5, "a press was sent again: {stats:?}");
    sim.shutdown().await;
}

/// A job whose process is killed more often than it has attempts still completes: taking over
/// the job of a dead worker spends no attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_more_often_than_its_attempts_completes() {
    let d = DataDir::raw(&format!("{CONFIG}max_attempts = 1\n"));
    let (code, queued) =
        tokio::task::block_in_place(|| d.json(&["generate", "killed thrice", "--no-wait"]));
    assert_eq!(code, 0, "{queued}");
    let id: atelier::domain::GenerationId = queued["id"].as_str().unwrap().parse().unwrap();
    let url = d.database_url();
    let queue = atelier::catalogue::open(&url, false).await.unwrap().queue;
    for _ in 0..3 {
        let mut child = d
            .cmd()
            .args(["jobs", "run", "--until-idle"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once it holds the job (its worker ids carry its node id, with its pid).
        let mark = format!("-{}-", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !queue
            .job_of(id)
            .await
            .unwrap()
            .lease_owner
            .is_some_and(|owner| owner.contains(&mark))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the job was not claimed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = child.kill();
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }
    let (code, run) = tokio::task::block_in_place(|| d.json(&["jobs", "run", "--until-idle"]));
    assert_eq!(
        (code, &run["completed"]),
        (0, &serde_json::json!(1)),
        "{run}"
    );
    let job = queue.job_of(id).await.unwrap();
    assert_eq!(
        (job.status, job.attempts, job.takeovers),
        (atelier::domain::JobStatus::Succeeded, 1, 3)
    );
    assert_eq!(tokio::task::block_in_place(|| assert_complete(&d)), 1);
}
