//! Where a generate job's images go: processed and written on one blocking thread, then
//! their catalogue rows inserted. Clips go the same way: a render's separate outputs, and the
//! grid, upscales and single result of a video generation (`domain::makes_video`: Midjourney's
//! Animate, video upscales, Extend, `--video`). A clip where a picture generation needs a
//! picture, or a picture where a video generation needs a clip, is refused here
//! ([`Unstorable`], [`processing`]).

use std::sync::Arc;

use super::JobError;
use super::generate::pipeline_error;
use crate::app::App;
use crate::catalogue::Inserted;
use crate::domain::{ErrorCode, Failure, Generation, Image, MediaKind, Role};
use crate::pipeline::{self, ClipFormat, Limits, PipelineError, Processed};
use crate::providers::{Output, OutputKind, VideoFormat};

/// An output the engine cannot store.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unstorable {
    #[error(
        "output {index} is a clip ({format}); this generation makes pictures, so its grid, \
         upscales and result must be pictures (clips come as a render's separate outputs, or \
         from a generation that makes video)"
    )]
    Video { index: u8, format: VideoFormat },
    #[error(
        "output {index} is a picture; this generation makes video, so its grid, upscales and \
         result must be clips"
    )]
    Picture { index: u8 },
}

/// Nothing mends it on a retry: the job fails.
impl From<Unstorable> for JobError {
    fn from(e: Unstorable) -> Self {
        JobError::Abort(Failure::new(ErrorCode::Internal, e.to_string()))
    }
}

/// The pipeline's name for a provider's clip container.
pub(super) fn clip_format(format: VideoFormat) -> ClipFormat {
    match format {
        VideoFormat::Mp4 => ClipFormat::Mp4,
        VideoFormat::WebP => ClipFormat::WebP,
    }
}

/// The pipeline's work on one output, to run on a blocking thread.
pub(super) type Process = Box<dyn FnOnce() -> Result<Processed, PipelineError> + Send + 'static>;

/// The pipeline's work on an output where the job needs `wanted` (a grid, an upscale, an
/// action's result): a picture verified as a picture, a clip as a clip; the other kind is
/// refused, since nothing on a retry would change it.
pub(super) fn processing(
    output: Output,
    wanted: MediaKind,
    limits: Limits,
) -> Result<Process, Unstorable> {
    let index = output.index;
    let bytes = output.bytes;
    match (output.kind, wanted) {
        (OutputKind::Image, MediaKind::Image) => Ok(Box::new(move || {
            pipeline::process_image_within(bytes, &limits)
        })),
        (OutputKind::Video(format), MediaKind::Video) => {
            let format = clip_format(format);
            Ok(Box::new(move || {
                pipeline::process_clip_within(bytes, format, &limits)
            }))
        }
        (OutputKind::Video(format), MediaKind::Image) => Err(Unstorable::Video { index, format }),
        (OutputKind::Image, MediaKind::Video) => Err(Unstorable::Picture { index }),
    }
}

/// The bytes of a picture the provider delivered, for the pipeline; a clip is refused.
pub(super) fn picture(output: Output) -> Result<Vec<u8>, Unstorable> {
    match output.kind {
        OutputKind::Image => Ok(output.bytes),
        OutputKind::Video(format) => Err(Unstorable::Video {
            index: output.index,
            format,
        }),
    }
}

/// Runs `process` (the pipeline on a delivered image) and writes the image's blobs on one
/// blocking thread; returns the image's row, to insert once its place in the life cycle
/// allows.
pub(super) async fn process_and_store(
    app: &Arc<App>,
    g: &Arc<Generation>,
    synthetic: bool,
    role: Role,
    process: impl FnOnce() -> Result<Processed, PipelineError> + Send + 'static,
) -> Result<Image, JobError> {
    let mut rows = store_made(app, g, synthetic, move || Ok(vec![(role, process()?)])).await?;
    rows.pop()
        .ok_or_else(|| JobError::Abort(Failure::new(ErrorCode::Internal, "no image made")))
}

/// Writes the blobs of several processed images in one batch; returns their rows, in order,
/// to insert.
pub(super) async fn store_all(
    app: &Arc<App>,
    g: &Arc<Generation>,
    synthetic: bool,
    images: Vec<(Role, Processed)>,
) -> Result<Vec<Image>, JobError> {
    store_made(app, g, synthetic, move || Ok(images)).await
}

/// Makes images with `make` and writes their blobs, both on one blocking thread when the
/// store is the folder store (other stores write from the runtime); returns their rows.
async fn store_made(
    app: &Arc<App>,
    g: &Arc<Generation>,
    synthetic: bool,
    make: impl FnOnce() -> Result<Vec<(Role, Processed)>, PipelineError> + Send + 'static,
) -> Result<Vec<Image>, JobError> {
    let (app2, g2) = (app.clone(), g.clone());
    let (rows, unwritten) = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        let mut blobs = Vec::new();
        for (role, processed) in make().map_err(pipeline_error)? {
            let (image, files) = app2.image_and_blobs(&g2, role, processed, synthetic);
            rows.push(image);
            blobs.extend(files);
        }
        let unwritten = app2.store.put_all_here(blobs)?;
        Ok::<_, JobError>((rows, unwritten))
    })
    .await
    .map_err(|e| JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None))??;
    if let Some(blobs) = unwritten {
        app.store.put_all(blobs).await?;
    }
    Ok(rows)
}

impl From<crate::store::StoreError> for JobError {
    fn from(e: crate::store::StoreError) -> Self {
        // A denied write fails at once: five tries would be denied the same way.
        if e.is_permanent() {
            JobError::Abort(Failure::new(ErrorCode::Internal, e.to_string()))
        } else {
            JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None)
        }
    }
}

/// Inserts the image's row; returns the one already there when a retried job had written it.
pub(super) async fn insert(app: &App, image: &Image) -> Result<Image, JobError> {
    match app.catalogue.insert_image(image).await? {
        Inserted::New(i) | Inserted::Existing(i) => Ok(i),
    }
}

/// Stores the blobs, then the catalogue row: a row never points at a missing blob, and a
/// crash in between leaves only blobs that the retry overwrites.
pub(super) async fn save(
    app: &App,
    g: &Generation,
    synthetic: bool,
    role: Role,
    p: Processed,
) -> Result<Image, JobError> {
    let image = app
        .store_image(g, role, p, synthetic)
        .await
        .map_err(|e| match e {
            crate::error::AppError::Store(e) => JobError::from(e),
            e => JobError::Retry(Failure::new(ErrorCode::Internal, e.to_string()), None),
        })?;
    insert(app, &image).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_upscale_or_result_is_the_kind_the_generation_makes() {
        let limits = Limits::default();
        let clip = || Output::video(2, VideoFormat::Mp4, vec![0; 8]);
        let still = || Output::image(1, vec![0; 8]);
        assert!(processing(still(), MediaKind::Image, limits).is_ok());
        assert!(processing(clip(), MediaKind::Video, limits).is_ok());
        let refused = |r: Result<Process, Unstorable>| r.err().map(|e| e.to_string());
        assert!(
            refused(processing(clip(), MediaKind::Image, limits))
                .is_some_and(|m| m.starts_with("output 2 is a clip (MP4)"))
        );
        assert!(
            refused(processing(still(), MediaKind::Video, limits)).is_some_and(
                |m| m.starts_with("output 1 is a picture; this generation makes video")
            )
        );
    }
}
