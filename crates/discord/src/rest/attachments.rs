//! Attachment upload for interactions, and CDN downloads.
//!
//! Uploading is two steps: `POST channels/{id}/attachments` announces the files and gets
//! back a signed storage URL per file, then the bytes are `PUT` to that URL. The
//! interaction then references each file by `uploaded_filename`. The storage host is not
//! Discord, so the PUT carries no Discord headers and its errors drop the signed URL.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, DISCORD_CDN, RestClient, RestError, snowflake};

/// A file uploaded to Discord's storage, ready to be referenced by an interaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedAttachment {
    /// Position in the upload request (`"0"`, `"1"`, …); attachment options refer to it.
    pub id: String,
    pub filename: String,
    /// The opaque storage path Discord returned (`upload_filename`).
    pub uploaded_filename: String,
}

impl UploadedAttachment {
    /// The entry for an interaction's `data.attachments` array.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "filename": self.filename,
            "uploaded_filename": self.uploaded_filename,
        })
    }
}

#[derive(Deserialize)]
struct SlotsResponse {
    attachments: Vec<Slot>,
}

#[derive(Deserialize)]
struct Slot {
    upload_url: String,
    upload_filename: String,
}

impl RestClient {
    /// Uploads one file; see [`RestClient::upload_attachments`].
    pub async fn upload_attachment(
        &self,
        channel_id: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Result<UploadedAttachment, RestError> {
        let mut uploaded = self
            .upload_attachments(channel_id, vec![(filename.to_owned(), bytes)])
            .await?;
        uploaded
            .pop()
            .ok_or_else(|| RestError::Decode("no upload slot returned".into()))
    }

    /// Uploads files (name, bytes) for use in an interaction in `channel_id`.
    pub async fn upload_attachments(
        &self,
        channel_id: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Vec<UploadedAttachment>, RestError> {
        let announced: Vec<Value> = files
            .iter()
            .enumerate()
            .map(|(i, (name, bytes))| {
                json!({"filename": name, "file_size": bytes.len(), "id": i.to_string()})
            })
            .collect();
        let path = format!("channels/{}/attachments", snowflake(channel_id)?);
        let response: SlotsResponse = self
            .execute_json(Call::post(path, json!({ "files": announced })))
            .await?;
        if response.attachments.len() != files.len() {
            return Err(RestError::Decode(format!(
                "{} upload slots for {} files",
                response.attachments.len(),
                files.len()
            )));
        }
        let mut uploaded = Vec::with_capacity(files.len());
        for (i, ((filename, bytes), slot)) in
            files.into_iter().zip(response.attachments).enumerate()
        {
            self.put_upload(&slot.upload_url, bytes).await?;
            uploaded.push(UploadedAttachment {
                id: i.to_string(),
                filename,
                uploaded_filename: slot.upload_filename,
            });
        }
        Ok(uploaded)
    }

    async fn put_upload(&self, url: &str, bytes: Vec<u8>) -> Result<(), RestError> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(RestError::Decode("upload_url is not an HTTP URL".into()));
        }
        let response = self
            .inner
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| RestError::Transport(e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(RestError::from_body(status.as_u16(), &body))
    }

    /// Rewrites a `https://cdn.discordapp.com/...` URL onto the configured CDN base;
    /// other URLs are returned unchanged.
    pub fn cdn_url(&self, url: &str) -> String {
        match url.strip_prefix(DISCORD_CDN) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", self.inner.cdn_base)
            }
            _ => url.to_owned(),
        }
    }

    /// Downloads an attachment (signed URL query kept intact) without Discord
    /// credentials, refusing bodies over `max_bytes`.
    pub async fn download(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>, RestError> {
        let url = self.cdn_url(url);
        let mut response = self
            .inner
            .http
            .get(&url)
            .header(
                reqwest::header::ACCEPT,
                "image/avif,image/webp,image/*,*/*;q=0.8",
            )
            .send()
            .await
            .map_err(RestError::Transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(RestError::Http {
                status: status.as_u16(),
                code: None,
                message: "download failed".into(),
                errors: None,
            });
        }
        if response
            .content_length()
            .is_some_and(|len| len > max_bytes as u64)
        {
            return Err(RestError::TooLarge { limit: max_bytes });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(RestError::Transport)? {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(RestError::TooLarge { limit: max_bytes });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
