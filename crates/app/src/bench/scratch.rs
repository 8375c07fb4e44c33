//! Where a measurement keeps its catalogue: a `SQLite` file in a temporary directory, or a
//! scratch database made on a `PostgreSQL` server for one run and dropped after it, so every
//! run starts from empty tables whatever ran before.
//!
//! Creating and dropping the scratch database is the only SQL outside `catalogue/`: it is
//! set-up, not something measured.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::error::AppError;

/// One run's catalogue.
pub struct Scratch {
    /// The catalogue's URL, for `catalogue::open` and child processes. May hold a password:
    /// never printed.
    pub url: String,
    /// The run's temporary directory (the folder store, and the `SQLite` file when there is
    /// no server).
    pub dir: PathBuf,
    /// The server and the scratch database's name, to drop it.
    server: Option<(PgConnectOptions, String)>,
}

impl Scratch {
    /// `server` is a `postgres://` URL (its database is only where the scratch database is
    /// created from), or `None` for `SQLite`. `tag` tells runs of one process apart.
    pub async fn new(server: Option<&str>, tag: &str) -> Result<Self, AppError> {
        let dir = std::env::temp_dir().join(format!("atelier-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let Some(server) = server else {
            let url = format!("sqlite://{}", dir.join("atelier.db").display());
            return Ok(Self {
                url,
                dir,
                server: None,
            });
        };
        if !(server.starts_with("postgres://") || server.starts_with("postgresql://")) {
            return Err(AppError::Invalid(
                "--database takes a PostgreSQL server URL (postgres://…); without it the \
                 measurement runs on SQLite"
                    .into(),
            ));
        }
        let options = PgConnectOptions::from_str(server)
            .map_err(|e| AppError::Invalid(format!("invalid PostgreSQL URL: {e}")))?;
        // Only digits, lower-case letters and underscores (the callers' tags are literals): a
        // name that needs no quoting in the statements below.
        let name = format!("atelier_bench_{}_{tag}", std::process::id());
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| unreachable_server(&options, &e))?;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
            .execute(&mut conn)
            .await
            .map_err(internal)?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(internal)?;
        let _ = conn.close().await;
        Ok(Self {
            url: with_database(server, &name),
            dir,
            server: Some((options, name)),
        })
    }

    /// `postgresql` or `sqlite`, for reports.
    pub fn kind(&self) -> &'static str {
        if self.server.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Drops the scratch database (closing whatever is still connected to it) and removes the
    /// directory. The catalogue must be dropped first.
    pub async fn remove(self) -> Result<(), AppError> {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((options, name)) = self.server {
            let mut conn = PgConnection::connect_with(&options)
                .await
                .map_err(|e| unreachable_server(&options, &e))?;
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .map_err(internal)?;
            let _ = conn.close().await;
        }
        Ok(())
    }
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

/// Names the server without its password.
fn unreachable_server(options: &PgConnectOptions, e: &sqlx::Error) -> AppError {
    AppError::Internal(format!(
        "cannot connect to the PostgreSQL server {}:{} as {}: {e}",
        options.get_host(),
        options.get_port(),
        options.get_username()
    ))
}

/// `url` with its database (the path) replaced by `name`; the query string is kept.
fn with_database(url: &str, name: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[after_scheme..]
        .find('/')
        .map_or(head.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &head[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "b"),
            "postgresql://u:p@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "b"), "postgres://h:1/b");
        assert_eq!(
            with_database("postgres://h?application_name=x", "b"),
            "postgres://h/b?application_name=x"
        );
    }
}
