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
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}
