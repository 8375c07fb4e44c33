//! A minimal `multipart/form-data` reader for interactions sent the way the web client
//! does: a `payload_json` part plus optional `files[N]` parts. Only what that needs: the
//! boundary, each part's `name` / `filename`, and its bytes.

use axum::body::Bytes;

/// One part of a form.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) filename: Option<String>,
    pub(crate) body: Bytes,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// The parts of `body`; `None` if it is not a well-formed form with that boundary.
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Option<Vec<Part>> {
    let delimiter = format!("--{boundary}");
    let bytes = &body[..];
    let mut at = find(bytes, delimiter.as_bytes(), 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if bytes[at..].starts_with(b"--") {
            return Some(parts);
        }
        at += skip_newline(&bytes[at..]);
        let headers_end = find(bytes, b"\r\n\r\n", at)?;
        let headers = std::str::from_utf8(&bytes[at..headers_end]).ok()?;
        let content_start = headers_end + 4;
        let next = find(bytes, format!("\r\n{delimiter}").as_bytes(), content_start)?;
        let (name, filename) = disposition(headers)?;
        parts.push(Part {
            name,
            filename,
            body: body.slice(content_start..next),
        });
        at = next + 2 + delimiter.len();
    }
}

fn skip_newline(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"\r\n") {
        2
    } else {
        usize::from(bytes.starts_with(b"\n"))
    }
}

/// `name` and `filename` of the `Content-Disposition: form-data; …` header.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let mut name = None;
    let mut filename = None;
    for param in line.split(';').skip(1) {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    Some((name?, filename))
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() || needle.is_empty() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::{boundary, parse};
    use axum::body::Bytes;

    #[test]
    fn reads_payload_json_and_files() {
        let b = boundary("multipart/form-data; boundary=\"XyZ\"").expect("boundary");
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{\"type\":2}\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"a.png\"\r\n\
              Content-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n",
        );
        let parts = parse(&body, &b).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "payload_json");
        assert_eq!(&parts[0].body[..], b"{\"type\":2}");
        assert_eq!(parts[1].filename.as_deref(), Some("a.png"));
        assert_eq!(&parts[1].body[..], b"\x89PNG");
        assert!(parse(&Bytes::from_static(b"garbage"), "XyZ").is_none());
        assert!(boundary("application/json").is_none());
    }
}
