//! The REST routes other than interactions and the start-up reads: the user, the command
//! index, the upload flow, channel messages and attachment URL refresh.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, MAX_BODY, authed, snowflake};
use crate::bot::messages::user_json;
use crate::ids::{iso_timestamp, unix_ms};
use crate::sim::{Delivery, Sim};
use crate::state::{Upload, User};

type ApiResult<T> = Result<T, ApiError>;

/// The caller's own channel, or 404 / 403.
pub(super) fn own_channel(sim: &Sim, user: &User, raw: &str) -> ApiResult<u64> {
    let id = snowflake("channel_id", raw)?;
    match sim.world().channels.get(&id) {
        None => Err(ApiError::unknown_channel()),
        Some(channel) if channel.owner != user.id => Err(ApiError::missing_access()),
        Some(_) => Ok(id),
    }
}

fn json_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Value> {
    let body = body.map_err(|r| ApiError::body_rejection(&r))?;
    serde_json::from_slice(&body).map_err(|_| ApiError::bad_json())
}

pub(crate) async fn me(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    let mut value = user_json(&user);
    value["verified"] = json!(true);
    value["mfa_enabled"] = json!(false);
    value["email"] = Value::Null;
    value["locale"] = json!("en-US");
    value["premium_type"] = json!(0);
    Ok(Json(value))
}

pub(crate) async fn dm_channels(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    authed(&sim, &headers)?;
    Ok(Json(json!([])))
}

pub(crate) async fn country_code(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    authed(&sim, &headers)?;
    Ok(Json(json!({"country_code": "US"})))
}

pub(crate) async fn guild_command_index(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(guild): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    super::reads::own_guild(&sim, &user, &guild)?;
    Ok(Json(sim.world().commands.index(None, usize::MAX)))
}

pub(crate) async fn channel_command_index(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    own_channel(&sim, &user, &channel)?;
    Ok(Json(sim.world().commands.index(None, usize::MAX)))
}

/// The pre-2024 search endpoint: `?type=1&query=imagine&limit=1&include_applications=true`.
pub(crate) async fn command_search(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    own_channel(&sim, &user, &channel)?;
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let name = query
        .get("query")
        .map(String::as_str)
        .filter(|q| !q.is_empty());
    let mut index = sim.world().commands.index(name, limit);
    index["cursor"] = json!({"next": null, "previous": null, "repaired": null});
    Ok(Json(index))
}

/// `POST channels/{id}/attachments`: announce files, get upload URLs on this server.
pub(crate) async fn upload_slots(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    own_channel(&sim, &user, &channel)?;
    let body = json_body(body)?;
    let Some(files) = body
        .get("files")
        .and_then(Value::as_array)
        .filter(|f| !f.is_empty())
    else {
        return Err(ApiError::required(&["files"]));
    };
    if files.len() > 10 {
        return Err(ApiError::form(
            &["files"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    let mut slots = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let index = i.to_string();
        let filename = file
            .get("filename")
            .and_then(Value::as_str)
            .map(sanitize)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| ApiError::required(&["files", &index, "filename"]))?;
        let size = file.get("file_size").and_then(Value::as_u64).unwrap_or(0);
        if size > MAX_BODY as u64 {
            return Err(ApiError::form(
                &["files", &index, "file_size"],
                "BASE_TYPE_MAX_VALUE",
                "Maximum file size is 26214400 bytes.",
            ));
        }
        let key = format!("{}/{filename}", sim.ids.uuid());
        sim.world().add_upload(
            key.clone(),
            Upload {
                owner: user.id,
                filename,
                bytes: None,
            },
        );
        let id = match file.get("id") {
            Some(Value::String(s)) => s.parse::<u64>().map_or_else(|_| json!(s), |n| json!(n)),
            Some(other) => other.clone(),
            None => json!(i),
        };
        slots.push(json!({
            "id": id,
            "upload_url": format!("{}/upload/{key}?upload_id={}", sim.http_base, sim.ids.hex(32)),
            "upload_filename": key,
        }));
    }
    Ok(Json(json!({"attachments": slots})))
}

/// Keeps a file name URL- and path-safe.
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

/// `PUT /upload/{key}`: the storage side of the upload flow (no Discord auth).
pub(crate) async fn upload(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return ApiError::body_rejection(&rejection).into_response(),
    };
    let mut world = sim.world();
    match world.uploads.get_mut(&key) {
        Some(upload) => {
            upload.bytes = Some(body);
            sim.stats.count_upload();
            StatusCode::OK.into_response()
        }
        None => (StatusCode::NOT_FOUND, "No such upload.").into_response(),
    }
}

/// `GET channels/{id}/messages?limit=&before=&after=&around=`, newest first.
pub(crate) async fn messages(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    let channel = own_channel(&sim, &user, &channel)?;
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::form(
                    &["limit"],
                    "NUMBER_TYPE_MAX",
                    "int value should be less than or equal to 100.",
                )
            })?,
    };
    let anchor = |name: &str| -> ApiResult<Option<u64>> {
        query.get(name).map(|raw| snowflake(name, raw)).transpose()
    };
    let (before, after, around) = (anchor("before")?, anchor("after")?, anchor("around")?);
    let world = sim.world();
    let Some(history) = world.channels.get(&channel).map(|c| &c.messages) else {
        return Err(ApiError::unknown_channel());
    };
    let list: Vec<Value> = if let Some(around) = around {
        let newer = limit - limit / 2;
        let mut list: Vec<Value> = history
            .range(around..)
            .take(newer)
            .map(|(_, m)| m.clone())
            .collect();
        list.reverse();
        list.extend(
            history
                .range(..around)
                .rev()
                .take(limit / 2)
                .map(|(_, m)| m.clone()),
        );
        list
    } else if let Some(after) = after {
        let mut list: Vec<Value> = history
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect();
        list.reverse();
        list
    } else {
        history
            .range(..before.unwrap_or(u64::MAX))
            .rev()
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect()
    };
    Ok(Json(Value::Array(list)))
}

/// `GET channels/{id}/messages/{id}`: Discord serves it to bots only; a user account is
/// refused with 403 / 20002 and reads one message with `around={id}&limit=1`, as the web
/// client does.
pub(crate) async fn message(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> ApiError {
    authed(&sim, &headers)
        .err()
        .unwrap_or_else(ApiError::bots_only)
}

/// `POST channels/{id}/messages`: a message from the user, possibly with uploaded files
/// (how some proxies turn a local image into a URL for an image prompt). Each file becomes an
/// attachment served by the CDN under a signed URL. The body is judged whole before anything is
/// kept, with Discord's form errors (400 / 50035) naming the field.
pub(crate) async fn create_message(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let user = authed(&sim, &headers)?;
    let channel = own_channel(&sim, &user, &channel)?;
    let body = json_body(body)?;
    let (content, keys) = message_body(&body)?;
    let mut files = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let upload = sim.world().uploads.get(key).cloned();
        let Some(Upload {
            filename,
            bytes: Some(bytes),
            ..
        }) = upload.filter(|u| u.owner == user.id)
        else {
            return Err(ApiError::form(
                &["attachments", &i.to_string(), "uploaded_filename"],
                "ATTACHMENT_NOT_FOUND",
                "Unknown attachment.",
            ));
        };
        files.push((filename, bytes));
    }
    if content.is_empty() && files.is_empty() {
        return Err(ApiError::form(
            &["content"],
            "BASE_TYPE_REQUIRED",
            "Cannot send an empty message",
        ));
    }
    let mut attachments = Vec::with_capacity(files.len());
    for (filename, bytes) in files {
        let id = sim.ids.snowflake();
        let path = format!("/attachments/{channel}/{id}/{filename}");
        let size = bytes.len();
        let content_type = crate::cdn::mime(&filename);
        sim.put_blob(path.clone(), bytes, content_type);
        let url = sim.signed_url(&path);
        attachments.push(json!({
            "id": id.to_string(), "filename": filename, "size": size,
            "url": url, "proxy_url": url, "content_type": content_type,
        }));
    }
    let id = sim.ids.snowflake();
    let guild_id = sim.world().channels.get(&channel).map(|c| c.guild_id);
    let message = json!({
        "id": id.to_string(),
        "type": 0,
        "channel_id": channel.to_string(),
        "guild_id": guild_id.map(|g| g.to_string()),
        "author": user_json(&user),
        "content": content,
        "attachments": attachments,
        "embeds": [],
        "components": [],
        "mentions": [],
        "mention_roles": [],
        "pinned": false,
        "mention_everyone": false,
        "tts": false,
        "timestamp": iso_timestamp(unix_ms()),
        "edited_timestamp": null,
        "flags": 0,
        "nonce": body.get("nonce").cloned().unwrap_or(Value::Null),
    });
    sim.post(&message, Delivery::Normal);
    Ok(Json(message))
}

/// Discord's limits on a user's message.
const MAX_CONTENT_CHARS: usize = 2000;
const MAX_ATTACHMENTS: usize = 10;

/// A message body's content and the upload keys (`uploaded_filename`) of its attachments, or
/// the form error Discord gives for it.
fn message_body(body: &Value) -> ApiResult<(String, Vec<String>)> {
    let Some(body) = body.as_object() else {
        return Err(ApiError::form(
            &[],
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        ));
    };
    let content = match body.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) if text.chars().count() > MAX_CONTENT_CHARS => {
            return Err(ApiError::form(
                &["content"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 2000 or fewer in length.",
            ));
        }
        Some(Value::String(text)) => text.clone(),
        Some(_) => {
            return Err(ApiError::form(
                &["content"],
                "BASE_TYPE_STRING",
                "Must be a string.",
            ));
        }
    };
    let entries: &[Value] = match body.get("attachments") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(ApiError::form(
                &["attachments"],
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ));
        }
    };
    if entries.len() > MAX_ATTACHMENTS {
        return Err(ApiError::form(
            &["attachments"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    let mut keys = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = i.to_string();
        let id_given = matches!(entry.get("id"), Some(Value::String(_) | Value::Number(_)));
        if !id_given {
            return Err(ApiError::required(&["attachments", &at, "id"]));
        }
        match entry.get("uploaded_filename") {
            Some(Value::String(key)) if !key.is_empty() => keys.push(key.clone()),
            _ => {
                return Err(ApiError::required(&[
                    "attachments",
                    &at,
                    "uploaded_filename",
                ]));
            }
        }
    }
    Ok((content, keys))
}

/// `POST attachments/refresh-urls`: re-signs URLs of attachments that still exist.
pub(crate) async fn refresh_urls(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    authed(&sim, &headers)?;
    let body = json_body(body)?;
    let Some(urls) = body.get("attachment_urls").and_then(Value::as_array) else {
        return Err(ApiError::required(&["attachment_urls"]));
    };
    if urls.len() > 50 {
        return Err(ApiError::form(
            &["attachment_urls"],
            "BASE_TYPE_MAX_LENGTH",
            "Must be 50 or fewer in length.",
        ));
    }
    let refreshed: Vec<Value> = urls
        .iter()
        .filter_map(Value::as_str)
        .map(|original| {
            let path = url_path(original);
            let refreshed = if sim.has_blob(path) {
                sim.signed_url(path)
            } else {
                original.to_owned()
            };
            json!({"original": original, "refreshed": refreshed})
        })
        .collect();
    Ok(Json(json!({"refreshed_urls": refreshed})))
}

/// The path of an absolute or relative URL, without query or fragment.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = if url.contains("://") {
        rest.find('/').map_or("", |at| &rest[at..])
    } else {
        rest
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::{message_body, sanitize, url_path};
    use serde_json::json;

    #[test]
    fn paths_and_names() {
        assert_eq!(
            url_path("http://127.0.0.1:9/attachments/1/2/a.png?ex=1&is=2&hm=3&"),
            "/attachments/1/2/a.png"
        );
        assert_eq!(url_path("/x?y"), "/x");
        assert_eq!(sanitize("../../a b/ü.png"), "_.png");
        assert_eq!(sanitize("fox photo.png"), "fox_photo.png");
    }

    #[test]
    fn message_bodies_are_judged_with_discord_form_errors() {
        let ok = message_body(&json!({"content": "hi", "attachments": [
            {"id": "0", "filename": "a.png", "uploaded_filename": "k/a.png"},
            {"id": 1, "uploaded_filename": "k/b.png"}
        ]}))
        .unwrap();
        assert_eq!(
            ok,
            (
                "hi".to_owned(),
                vec!["k/a.png".to_owned(), "k/b.png".to_owned()]
            )
        );
        assert_eq!(message_body(&json!({})).unwrap(), (String::new(), vec![]));
        let field = |body: serde_json::Value| {
            let refused = message_body(&body).unwrap_err();
            assert_eq!(refused.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(refused.body["code"], 50035);
            refused.body["errors"].to_string()
        };
        assert!(field(json!([])).contains("DICT_TYPE_CONVERT"));
        assert!(
            field(json!({"content": 5}))
                .contains("\"content\":{\"_errors\":[{\"code\":\"BASE_TYPE_STRING\"")
        );
        assert!(field(json!({"content": "x".repeat(2001)})).contains("BASE_TYPE_MAX_LENGTH"));
        assert!(field(json!({"attachments": "a.png"})).contains("LIST_TYPE_CONVERT"));
        let eleven: Vec<_> = (0..11)
            .map(|i| json!({"id": i, "uploaded_filename": "k"}))
            .collect();
        assert!(field(json!({ "attachments": eleven })).contains("BASE_TYPE_MAX_LENGTH"));
        let missing =
            field(json!({"attachments": [{"id": "0", "uploaded_filename": "k"}, {"id": "1"}]}));
        assert!(
            missing.contains("\"1\":{\"uploaded_filename\":{\"_errors\""),
            "{missing}"
        );
        assert!(field(json!({"attachments": [{"uploaded_filename": "k"}]})).contains("\"id\""));
    }
}
