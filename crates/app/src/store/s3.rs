//! The S3 store: a bucket of an S3-compatible service (AWS S3, Supabase Storage, `MinIO`, R2)
//! through `OpenDAL`'s S3 service.
//!
//! Requests are path-style (`{endpoint}/{bucket}/{key}`, `OpenDAL`'s default, which Supabase
//! needs) and carry no checksum or request-payer headers, which Supabase refuses. Each blob is
//! one `PutObject` (whole-object puts: a reader sees the old blob or the new one, never half).
//! The keys come from the caller only: nothing is read from `~/.aws` or the instance
//! metadata service, so the store never talks to anything but its endpoint.

use std::time::Duration;

use futures_util::StreamExt;
use opendal::{HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::StoreError;
use crate::secret::Secret;

/// Where a bucket is and how to reach it.
#[derive(Clone, Debug)]
pub struct S3Target {
    /// The service's URL, such as `https://<project>.supabase.co/storage/v1/s3`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// A prefix every key goes under; empty for none.
    pub root: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// The longest one request may take.
    pub timeout: Duration,
}

impl S3Target {
    /// Where the bucket is, for messages (no key in it).
    pub fn describe(&self) -> String {
        format!(
            "bucket {:?} at {}",
            self.bucket,
            self.endpoint.trim_end_matches('/')
        )
    }

    /// The operator for the bucket; sends nothing.
    pub fn operator(&self) -> Result<Operator, StoreError> {
        let open_err = |source| StoreError::Open {
            path: self.describe(),
            source,
        };
        // The HTTP client's TLS needs the process's crypto provider (ring) for https endpoints.
        atelier_discord::install_crypto_provider();
        let builder = opendal::services::S3::default()
            .endpoint(self.endpoint.trim_end_matches('/'))
            .bucket(&self.bucket)
            .region(&self.region)
            .root(&format!("/{}", self.root.trim_matches('/')))
            .access_key_id(self.access_key_id.expose())
            .secret_access_key(self.secret_access_key.expose())
            .disable_config_load()
            .disable_ec2_metadata();
        let op = Operator::new(builder).map_err(open_err)?;
        // A refused connection fails at once; an endpoint that does not answer fails within
        // the timeout rather than hanging a job.
        let client = reqwest::Client::builder()
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .timeout(self.timeout)
            .build()
            .map_err(|e| StoreError::Open {
                path: self.describe(),
                source: opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string()),
            })?;
        let ctx = op
            .context()
            .with_http_transport(HttpTransporter::new(ReqwestTransport::new(client)));
        Ok(op.with_context(ctx))
    }
}

/// Lists the bucket's first key: proves the endpoint answers, the bucket exists and the keys
/// are accepted, before anything is written.
pub async fn probe(op: &Operator, target: &S3Target) -> Result<(), StoreError> {
    let failed = |source: opendal::Error| StoreError::Unreachable {
        target: target.describe(),
        cause: innermost(&source),
    };
    let listing = async {
        let mut lister = op.lister_with("/").limit(1).await?;
        lister.next().await.transpose().map(|_| ())
    };
    let wrong = |reason: &'static str, source: opendal::Error| StoreError::Misconfigured {
        target: target.describe(),
        reason,
        detail: source.message().to_owned(),
    };
    match tokio::time::timeout(target.timeout, listing).await {
        // `OpenDAL` reads S3's `NoSuchBucket` as a configuration error, not a missing key.
        Ok(Err(source))
            if matches!(
                source.kind(),
                opendal::ErrorKind::ConfigInvalid | opendal::ErrorKind::NotFound
            ) && source.message().contains("NoSuchBucket") =>
        {
            Err(wrong("the bucket does not exist", source))
        }
        Ok(Err(source)) if source.kind() == opendal::ErrorKind::ConfigInvalid => {
            Err(wrong("the service refuses the settings", source))
        }
        Ok(Err(source)) if source.kind() == opendal::ErrorKind::PermissionDenied => {
            Err(wrong("the keys are refused", source))
        }
        Ok(done) => done.map_err(failed),
        Err(_) => Err(failed(opendal::Error::new(
            opendal::ErrorKind::Unexpected,
            format!("no answer within {} s", target.timeout.as_secs_f64()),
        ))),
    }
}

/// The deepest cause of an error ("Connection refused", "operation timed out"), which says
/// more than `OpenDAL`'s "send http request".
fn innermost(e: &opendal::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if std::ptr::addr_eq(cause, e) {
        e.message().to_owned()
    } else {
        cause.to_string()
    }
}
