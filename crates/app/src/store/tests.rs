//! Tests of the store: verified round trips, atomic writes and public URLs.

use super::*;

#[tokio::test]
async fn round_trip_is_verified() {
    let store = Store::memory(Layout::Default);
    let bytes = b"pixels".to_vec();
    let sha = sha256_hex(&bytes);
    store.put("g/grid.png", bytes.clone()).await.unwrap();
    assert_eq!(store.get("g/grid.png", &sha).await.unwrap(), bytes);
    let wrong = sha256_hex(b"other");
    assert!(matches!(
        store.get("g/grid.png", &wrong).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.get("g/none.png", &sha).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn folder_store_leaves_no_temporary_file_under_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let tmp = dir.path().join("tmp");
    let store = Store::local(&root, &tmp, Layout::Default).unwrap();
    let bytes = vec![7u8; 300_000];
    store.put("a/b/grid.png", bytes.clone()).await.unwrap();
    let path = store.local_path("a/b/grid.png").unwrap();
    assert!(path.is_absolute());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(files, vec![path]);
}

#[test]
fn public_urls_join_cleanly() {
    let store = Store::memory(Layout::Default)
        .with_public_base_url(Some("https://cdn.example/bucket/".into()));
    assert_eq!(
        store.url("g/grid.png").as_deref(),
        Some("https://cdn.example/bucket/g/grid.png")
    );
    assert_eq!(Store::memory(Layout::Default).url("x"), None);
}

#[test]
fn sha256_matches_a_known_vector() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn a_batch_is_written_whole_and_bad_keys_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let store = Store::local(&root, &dir.path().join("tmp"), Layout::Default).unwrap();
    let blobs: Vec<(String, Vec<u8>)> = (0..10u8)
        .map(|i| (format!("g/{i}/file.bin"), vec![i; 1000 + usize::from(i)]))
        .collect();
    store.put_all(blobs.clone()).await.unwrap();
    for (key, bytes) in &blobs {
        let got = store.get(key, &sha256_hex(bytes)).await.unwrap();
        assert_eq!(&got, bytes, "{key}");
    }
    // Replacing keeps one file per key.
    store.put("g/3/file.bin", b"new".to_vec()).await.unwrap();
    assert_eq!(std::fs::read(root.join("g/3/file.bin")).unwrap(), b"new");
    for bad in ["", "../escape.bin", "g//x.bin", "/abs.bin"] {
        assert!(
            matches!(
                store.put(bad, b"x".to_vec()).await,
                Err(StoreError::Io { .. })
            ),
            "{bad:?} accepted"
        );
    }
    assert!(!dir.path().join("escape.bin").exists());
    assert_eq!(
        temporary_files(dir.path()),
        0,
        "temporary files left behind"
    );
}

/// Files in the store's temporary folder (which may not exist).
fn temporary_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("tmp")).map_or(0, Iterator::count)
}

/// Both ways of writing (unnamed files linked in place where Linux allows, named temporary
/// files renamed elsewhere) write, replace and clean up alike.
#[tokio::test]
async fn named_and_unnamed_files_write_and_replace_alike() {
    for unnamed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("images");
        let mut store = Store::local(&root, &dir.path().join("tmp"), Layout::Default).unwrap();
        store.local.as_mut().unwrap().unnamed = unnamed;
        let blobs: Vec<(String, Vec<u8>)> = (0..5u8)
            .map(|i| (format!("g/{i}.bin"), vec![i; 5000]))
            .collect();
        // New keys need no temporary folder where files can be unnamed (Linux on ext4, xfs,
        // btrfs, tmpfs): with a plain file in its place, only named files fail.
        let tmp = dir.path().join("tmp");
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::write(&tmp, b"in the way").unwrap();
        let written = store.put_all(blobs.clone()).await;
        if cfg!(target_os = "linux") {
            assert_eq!(written.is_ok(), unnamed, "{written:?}");
        }
        std::fs::remove_file(&tmp).unwrap();
        store.put_all(blobs.clone()).await.unwrap();
        // Replaced with other bytes, one by one and as a batch.
        store.put("g/0.bin", b"zero".to_vec()).await.unwrap();
        let again: Vec<(String, Vec<u8>)> = blobs
            .iter()
            .skip(1)
            .map(|(k, b)| (k.clone(), b.iter().map(|x| x + 1).collect()))
            .collect();
        store.put_all(again.clone()).await.unwrap();
        assert_eq!(std::fs::read(root.join("g/0.bin")).unwrap(), b"zero");
        for (key, bytes) in &again {
            assert_eq!(&std::fs::read(root.join(key)).unwrap(), bytes, "{key}");
        }
        assert_eq!(std::fs::read_dir(root.join("g")).unwrap().count(), 5);
        assert_eq!(temporary_files(dir.path()), 0, "unnamed: {unnamed}");
        // A file is made for the owner and readable by others, as `File::create` would.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(root.join("g/1.bin"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        }
    }
}

/// Temporary files of processes that are gone are removed when the store opens; those of
/// live processes and files the store did not name stay.
#[tokio::test]
async fn opening_sweeps_what_stopped_processes_left() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // Above any pid Linux hands out (`pid_max` is at most 2^22).
    let gone = tmp.join("4999999-7.part");
    let mine = tmp.join(format!("{}-3.part", std::process::id()));
    let foreign = tmp.join("notes-1.part");
    for f in [&gone, &mine, &foreign] {
        std::fs::write(f, b"half").unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_hours(72);
    std::fs::File::options()
        .write(true)
        .open(&gone)
        .unwrap()
        .set_modified(old)
        .unwrap();
    Store::local(&dir.path().join("images"), &tmp, Layout::Default).unwrap();
    assert!(!gone.exists());
    assert!(mine.exists() && foreign.exists());
}

/// A write retrying cannot mend is told apart (the real binary meets it in
/// `tests/it/cli_errors.rs`, denied even to root).
#[test]
fn a_write_no_retry_mends_is_permanent() {
    for (kind, permanent) in [
        (std::io::ErrorKind::PermissionDenied, true),
        (std::io::ErrorKind::ReadOnlyFilesystem, true),
        (std::io::ErrorKind::Interrupted, false),
        (std::io::ErrorKind::StorageFull, false),
    ] {
        let e = StoreError::Io {
            key: "k".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(e.is_permanent(), permanent, "{kind:?}");
    }
    assert!(!StoreError::NotFound("k".into()).is_permanent());
}
