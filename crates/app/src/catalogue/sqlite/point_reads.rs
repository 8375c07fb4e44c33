//! Point reads on the caller's own thread: a generation with its images, or a generation or
//! an image by id, through rusqlite on the `SQLite` library sqlx links.
//!
//! Why: sqlx's `SQLite` driver runs every statement on its connection's thread, and a status
//! read spent as long handing its statement there and its rows back as `SQLite` spent on it.
//! These reads are an index lookup and a few rows, so they run inline, like any short
//! computation on an async thread.
//!
//! They do not wait for the file and never decide an error: the connections have no busy
//! timeout, and anything short of a clean answer (the file busy, an I/O error, a connection
//! that cannot be opened) returns `None`, and the caller takes the ordinary path, whose errors
//! are the catalogue's. A row that is there but does not decode is an answer (corrupt), as on
//! the ordinary path. The rows are decoded by the same rules (`rows.rs`) as every other read.
//!
//! A read can still be held inside `SQLite`: a WAL read lock that other connections keep
//! taken is retried for up to about ten seconds whatever the busy timeout, and a slow disk is
//! slow. So all but one of the threads that may read at once (the runtime's workers, one a
//! core) may be in a point read; a read beyond that takes the ordinary path. With the yield
//! before each read (`SqliteCatalogue::point_read`), which wakes a parked worker, the runtime
//! always has a thread to go on with.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Statement};

use super::rows::{self, Cell, Cells};
use crate::catalogue::{CatalogueError, Result};
use crate::domain::{Generation, GenerationId, Image, ImageId};

pub(super) struct PointReads {
    path: PathBuf,
    /// Connections kept for the next reads, as many as may read at once (so that a busy
    /// server does not open and close them); a read holds one only while it runs, never
    /// across an `await`.
    idle: Mutex<Vec<Connection>>,
    /// Point reads running now, and how many may.
    running: AtomicUsize,
    most: usize,
}

/// A point read counted in [`PointReads::running`] until dropped.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection answered: the read's own result (found, not found, corrupt).
type Answer<T> = rusqlite::Result<Result<T>>;

impl PointReads {
    /// Point reads of the database file at `path` (opened when first needed, read-only), by
    /// all but one of the threads that may read at once: none on one core.
    pub(super) fn new(path: PathBuf) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::at_most(path, threads - 1)
    }

    /// Point reads of the file at `path`, at most `most` at once.
    fn at_most(path: PathBuf, most: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            most,
        }
    }

    /// The generation `id` and its images, in no particular order.
    pub(super) fn generation_with_images(
        &self,
        id: GenerationId,
    ) -> Option<Result<(Generation, Vec<Image>)>> {
        let id = id.to_string();
        self.with(|conn| {
            let generation = match generation_row(conn, &id)? {
                Ok(Some(g)) => g,
                none_or_corrupt => return Ok(none_or_corrupt.map(|_| None)),
            };
            let mut st = conn.prepare_cached("SELECT * FROM images WHERE generation_id = ?1")?;
            let names = names(&st);
            let mut found = st.query([&id])?;
            let mut images = Vec::new();
            while let Some(row) = found.next()? {
                match rows::image(&Named { row, names: &names }) {
                    Ok(image) => images.push(image),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(Some((generation, images))))
        })
        .map(|answer| answer.and_then(|found| found.ok_or_else(|| missing("generation", &id))))
    }

    /// The generation `id`.
    pub(super) fn generation(&self, id: GenerationId) -> Option<Result<Generation>> {
        let id = id.to_string();
        self.with(|conn| generation_row(conn, &id))
            .map(|answer| answer.and_then(|found| found.ok_or_else(|| missing("generation", &id))))
    }

    /// The image `id`.
    pub(super) fn image(&self, id: ImageId) -> Option<Result<Image>> {
        let id = id.to_string();
        self.with(|conn| {
            let mut st = conn.prepare_cached("SELECT * FROM images WHERE id = ?1")?;
            let names = names(&st);
            let mut found = st.query([&id])?;
            Ok(match found.next()? {
                Some(row) => rows::image(&Named { row, names: &names }).map(Some),
                None => Ok(None),
            })
        })
        .map(|answer| answer.and_then(|found| found.ok_or_else(|| missing("image", &id))))
    }

    /// `read` on an idle connection, or a new one; `None` when as many reads as may already
    /// run, or when the connection could not answer.
    fn with<T>(&self, read: impl FnOnce(&Connection) -> Answer<T>) -> Option<Result<T>> {
        if self.running.fetch_add(1, Ordering::AcqRel) >= self.most {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let _running = Running(&self.running);
        let idle = self.idle.lock().ok()?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self
                .open()
                .inspect_err(|e| tracing::debug!(error = %e, "point read: cannot open"))
                .ok()?,
        };
        let read = read(&conn);
        // A connection that met anything but a busy file is dropped: whatever went wrong is
        // not carried to the next read.
        let busy =
            matches!(&read, Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy));
        if (read.is_ok() || busy)
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.most
        {
            idle.push(conn);
        }
        read.inspect_err(|e| tracing::debug!(error = %e, "point read: taking the ordinary path"))
            .ok()
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Never wait on the caller's thread: a busy file is the ordinary path's to wait out.
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    }
}

/// The generation `id`, if there is one.
fn generation_row(conn: &Connection, id: &str) -> Answer<Option<Generation>> {
    let mut st = conn.prepare_cached("SELECT * FROM generations WHERE id = ?1")?;
    let names = names(&st);
    let mut found = st.query([id])?;
    Ok(match found.next()? {
        Some(row) => rows::generation(&Named { row, names: &names }).map(Some),
        None => Ok(None),
    })
}

fn missing(what: &str, id: &str) -> CatalogueError {
    CatalogueError::NotFound(format!("{what} {id}"))
}

/// A statement's column names, looked up once per read rather than once per cell (rusqlite
/// asks `SQLite` for every column's name on each lookup by name).
fn names(st: &Statement<'_>) -> Vec<String> {
    st.column_names().into_iter().map(str::to_owned).collect()
}

/// A rusqlite row with its statement's column names.
struct Named<'a, 'r> {
    row: &'a rusqlite::Row<'r>,
    names: &'a [String],
}

impl Cells for Named<'_, '_> {
    fn cell<T: Cell>(&self, col: &str) -> Result<T> {
        let i = self
            .names
            .iter()
            .position(|n| n == col)
            .ok_or_else(|| CatalogueError::Other(format!("no column {col}").into()))?;
        self.row.get(i).map_err(|e| CatalogueError::Other(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::SqliteCatalogue;
    use super::*;
    use crate::catalogue::Catalogue;
    use crate::domain::{
        Generation, GenerationKind, GenerationStatus, ImageStatus, Parameters, Rgb, Role,
    };

    fn generation() -> Generation {
        Generation {
            id: GenerationId::new(),
            owner: None,
            provider: "sandbox".into(),
            account: None,
            kind: GenerationKind::Imagine,
            parent_id: None,
            prompt: "a lighthouse".into(),
            negative_prompt: None,
            parameters: Parameters::default(),
            category: None,
            subject: Some("coast".into()),
            client_reference: None,
            version: 0,
            status: GenerationStatus::Queued,
            phase: None,
            progress: 0.0,
            error: None,
            provider_refs: serde_json::json!({"job": "x"}),
            created_at: time::OffsetDateTime::now_utc(),
            started_at: None,
            completed_at: None,
        }
    }

    fn image(g: &Generation, role: Role) -> Image {
        Image {
            id: ImageId::new(),
            generation_id: g.id,
            owner: None,
            role,
            storage_key: format!("{}/{role}.png", g.id),
            public_url: None,
            thumbnail_key: None,
            width: 64,
            height: 48,
            format: "png".into(),
            size_bytes: 1234,
            sha256: "ab".repeat(32),
            dominant: Some(Rgb([1, 2, 3])),
            palette: vec![Rgb([1, 2, 3])],
            category: None,
            subject: g.subject.clone(),
            version: 1,
            status: ImageStatus::Draft,
            favourite: true,
            public: false,
            tags: vec!["sea".into()],
            synthetic: true,
            created_at: time::OffsetDateTime::now_utc(),
            clip: None,
        }
    }

    /// A catalogue in `dir` holding one generation with two images.
    async fn filled(dir: &std::path::Path) -> (SqliteCatalogue, Generation) {
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let catalogue = SqliteCatalogue::open(&url, true).await.expect("open");
        let g = generation();
        let images = [image(&g, Role::Grid), image(&g, Role::Upscale(1))];
        let g = catalogue
            .create_generation(&g, None, &images)
            .await
            .expect("create");
        (catalogue, g)
    }

    #[tokio::test]
    async fn point_reads_answer_as_the_ordinary_reads_do() {
        let dir = tempfile::tempdir().expect("dir");
        let (catalogue, g) = filled(dir.path()).await;
        assert!(catalogue.points.is_some(), "a file has point reads");
        let points = PointReads::at_most(dir.path().join("test.db"), 2);
        let (fast, mut fast_images) = points
            .generation_with_images(g.id)
            .expect("answered")
            .expect("found");
        let mut images = catalogue.generation_images(g.id).await.expect("images");
        fast_images.sort_by_key(|i| i.id);
        images.sort_by_key(|i| i.id);
        assert_eq!(fast, g);
        assert_eq!(fast_images, images);
        assert_eq!(fast_images.len(), 2);
        assert_eq!(
            points.generation(g.id).expect("answered").expect("found"),
            g
        );
        assert_eq!(
            points
                .image(images[0].id)
                .expect("answered")
                .expect("found"),
            images[0]
        );
        // What is not there is an answer too.
        let none = GenerationId::new();
        assert!(matches!(
            points.generation_with_images(none),
            Some(Err(CatalogueError::NotFound(_)))
        ));
        assert!(matches!(
            points.image(ImageId::new()),
            Some(Err(CatalogueError::NotFound(_)))
        ));
        // A write is seen by the next read.
        catalogue
            .set_image_status(images[0].id, ImageStatus::Final)
            .await
            .expect("publish");
        let read = points
            .image(images[0].id)
            .expect("answered")
            .expect("found");
        assert_eq!(read.status, ImageStatus::Final);
    }

    #[tokio::test]
    async fn a_corrupt_row_is_reported_as_the_ordinary_read_reports_it() {
        let dir = tempfile::tempdir().expect("dir");
        let (catalogue, g) = filled(dir.path()).await;
        sqlx::query("UPDATE generations SET status = 'sideways' WHERE id = ?1")
            .bind(g.id.to_string())
            .execute(&mut *catalogue.writer.get().await.expect("writer"))
            .await
            .expect("spoil");
        let points = PointReads::at_most(dir.path().join("test.db"), 2);
        let fast = points.generation(g.id).expect("answered").unwrap_err();
        assert!(fast.to_string().contains("sideways"), "{fast}");
        assert!(matches!(
            points.generation_with_images(g.id),
            Some(Err(CatalogueError::Other(_)))
        ));
    }

    #[test]
    fn a_file_that_cannot_answer_at_once_leaves_the_read_to_the_ordinary_path() {
        let dir = tempfile::tempdir().expect("dir");
        // A file in rollback-journal mode under an exclusive lock: a reader is refused at once
        // (a WAL file lets readers in beside its writer).
        let path = dir.path().join("locked.db");
        let lock = Connection::open(&path).expect("open");
        lock.execute_batch("CREATE TABLE generations (id TEXT); BEGIN EXCLUSIVE;")
            .expect("lock");
        let points = PointReads::at_most(path.clone(), 2);
        let t = Instant::now();
        assert!(points.generation(GenerationId::new()).is_none());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        lock.execute_batch("COMMIT").expect("unlock");
        assert!(matches!(
            points.generation(GenerationId::new()),
            Some(Err(CatalogueError::NotFound(_)))
        ));

        // A file that is not there, or not a database: not an answer either.
        let gone = PointReads::at_most(dir.path().join("missing.db"), 2);
        assert!(gone.generation(GenerationId::new()).is_none());
        assert!(
            !dir.path().join("missing.db").exists(),
            "nothing is created"
        );
        std::fs::write(dir.path().join("junk.db"), [7u8; 4096]).expect("junk");
        let junk = PointReads::at_most(dir.path().join("junk.db"), 2);
        assert!(junk.image(ImageId::new()).is_none());
    }

    #[tokio::test]
    async fn reads_beyond_the_limit_take_the_ordinary_path() {
        let dir = tempfile::tempdir().expect("dir");
        let (catalogue, g) = filled(dir.path()).await;
        let points = PointReads::at_most(dir.path().join("test.db"), 1);
        // A read that runs while another is held inside SQLite is not attempted.
        let inner = points.with(|_| Ok(Ok(points.generation(g.id).is_none())));
        assert_eq!(inner.map(Result::ok), Some(Some(true)));
        assert!(points.generation(g.id).is_some(), "the slot is free again");
        // None at all where only one thread may read.
        let none = PointReads::at_most(dir.path().join("test.db"), 0);
        assert!(none.generation(g.id).is_none());
        drop(catalogue);
    }

    #[tokio::test]
    async fn a_catalogue_in_memory_has_no_point_reads() {
        let catalogue = SqliteCatalogue::open("sqlite::memory:", true)
            .await
            .expect("open");
        assert!(catalogue.points.is_none());
        let g = generation();
        catalogue
            .create_generation(&g, None, &[])
            .await
            .expect("create");
        let (read, images) = catalogue.generation_with_images(g.id).await.expect("read");
        assert_eq!((read.id, images.len()), (g.id, 0));
    }
}
