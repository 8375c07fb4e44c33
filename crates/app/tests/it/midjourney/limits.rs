//! The size limit on images downloaded from Discord's CDN (`[limits] max_file_mib`).

use atelier::catalogue::ImageFilter;
use atelier::domain::{ErrorCode, GenerationStatus};

use super::{app_for, generate, simulator};

/// A grid over the limit is refused from its `Content-Length`, once: the same file would be
/// refused again, so the job fails at once with a message that names the limit.
#[tokio::test]
async fn a_download_over_the_size_limit_fails_the_job_without_retrying() {
    let sim = simulator(|c| c.image_side = 2048).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_for(&sim, dir.path(), 1, |c| c.limits.max_file_mib = 1).await;
    let id = generate(&app, "a fox in the snow").await;
    let g = app.catalogue().generation(id).await.unwrap();
    assert_eq!(g.status, GenerationStatus::Failed);
    assert_eq!(g.error_code(), Some(ErrorCode::DownloadFailed));
    let message = &g.error.as_ref().unwrap().message;
    assert!(
        message.contains("limit of 1 MiB") && message.contains("max_file_mib"),
        "{message}"
    );
    assert_eq!(sim.control().stats().downloads, 1, "retried");
    let filter = ImageFilter {
        generation_id: Some(id),
        ..ImageFilter::default()
    };
    assert!(app.catalogue().images(&filter).await.unwrap().is_empty());
    sim.shutdown().await;
}
