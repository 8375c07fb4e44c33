//! Accounts over HTTP: who am I and my credits (`/v1/me`), password sign-in (`/v1/sessions`),
//! and the administrators' routes (`/v1/admin/…`: users, their keys and credit grants, the
//! provider accounts' health, the audit log). A user who is not an administrator gets 403 on
//! the latter.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Caller;
use super::input::Body;
use super::problem::Answer;
use super::{Problem, Shared};
use crate::api::{AuditEntryView, CreditsView, LedgerEntryView, NewKeyView, UserView};
use crate::domain::{GrantKind, UserRole};

fn invalid(e: impl std::fmt::Display) -> Problem {
    Problem::invalid(e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    before: Option<i64>,
    after: Option<String>,
    limit: Option<u32>,
}

fn page_query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::invalid(e.body_text()))
}

pub async fn me(State(s): State<Shared>, Caller(actor): Caller) -> Answer<Response> {
    Ok(match s.app.me(actor).await? {
        Some(user) => axum::Json(UserView::from(&user)).into_response(),
        None => axum::Json(serde_json::json!({"role": "operator"})).into_response(),
    })
}

pub async fn my_credits(
    State(s): State<Shared>,
    Caller(actor): Caller,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<axum::Json<CreditsView>> {
    let q = page_query(query)?;
    let user = s
        .app
        .me(actor)
        .await?
        .ok_or_else(|| Problem::not_found("the operator has no credits: sign in as a user"))?;
    let credits = s.app.credits(actor, user.id).await?;
    let ledger = s
        .app
        .ledger(actor, user.id, q.before, q.limit.unwrap_or(50))
        .await?;
    Ok(axum::Json(CreditsView::of(&user, credits, &ledger)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

/// `POST /v1/sessions`: email and password for a session token (shown once).
pub async fn login(
    State(s): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Body(body): Body<Login>,
) -> Answer<Response> {
    // Every attempt counts, before the password's hash is checked: that check is the costly
    // part, and the limit is what makes guessing slow.
    s.rate.attempt(Some(client.ip()))?;
    let Some((token, user)) = s.app.login(&body.email, &body.password).await? else {
        return Err(Problem::unauthorized("wrong email or password"));
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"token": token.expose(), "user": UserView::from(&user)})),
    )
        .into_response())
}

/// `DELETE /v1/sessions`: ends the session whose token signs the request.
pub async fn logout(
    State(s): State<Shared>,
    Caller(_): Caller,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    if let Some(token) = super::auth::bearer(&headers) {
        s.app.logout(token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn users(
    State(s): State<Shared>,
    Caller(actor): Caller,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<axum::Json<Vec<UserView>>> {
    let q = page_query(query)?;
    let after = q
        .after
        .as_deref()
        .map(|a| a.parse().map_err(invalid))
        .transpose()?;
    let users = s.app.users(actor, after, q.limit.unwrap_or(100)).await?;
    Ok(axum::Json(users.iter().map(UserView::from).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    password: Option<String>,
}

pub async fn add_user(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Body(body): Body<NewUser>,
) -> Answer<Response> {
    let role = if body.admin {
        UserRole::Admin
    } else {
        UserRole::User
    };
    let user = s
        .app
        .add_user(actor, &body.email, role, body.password.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::from(&user))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    name: Option<String>,
}

pub async fn create_key(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(email): Path<String>,
    Body(body): Body<NewKey>,
) -> Answer<Response> {
    let (key, secret) = s
        .app
        .create_key(actor, &email, body.name.as_deref().unwrap_or("api"))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewKeyView {
            key: secret.expose().to_owned(),
            record: (&key).into(),
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    amount: i64,
    /// `purchase` (default) or `bonus`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

pub async fn grant(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(email): Path<String>,
    Body(body): Body<NewGrant>,
) -> Answer<Response> {
    let kind = GrantKind::parse(body.kind.as_deref().unwrap_or("purchase")).map_err(invalid)?;
    let entry = s
        .app
        .grant(actor, &email, body.amount, kind, body.note.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(LedgerEntryView::from(&entry)),
    )
        .into_response())
}

pub async fn audit(
    State(s): State<Shared>,
    Caller(actor): Caller,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<axum::Json<Vec<AuditEntryView>>> {
    let q = page_query(query)?;
    let entries = s
        .app
        .audit_log(actor, q.before, q.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(
        entries.iter().map(AuditEntryView::from).collect(),
    ))
}

/// The provider accounts this node pools, with their health (administrators only).
pub async fn provider_accounts(State(s): State<Shared>, Caller(actor): Caller) -> Answer<Response> {
    if !actor.sees_all() {
        return Err(Problem::forbidden(
            "only an administrator sees the provider accounts",
        ));
    }
    let accounts = s.app.accounts(None).await?;
    Ok(axum::Json(accounts).into_response())
}
