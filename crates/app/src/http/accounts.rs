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
use crate::api::{ApiKeyView, AuditEntryView, CreditsView, LedgerEntryView, NewKeyView, UserView};
use crate::domain::{ApiKeyId, GrantKind, UserRole};

fn invalid(e: impl std::fmt::Display) -> Problem {
    Problem::invalid(e.to_string())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries older than this id (ledger, audit log).
    before: Option<i64>,
    /// Users after this id (the last of the previous page).
    after: Option<String>,
    limit: Option<u32>,
}

/// `/v1/me` without a user: the operator (a server with `auth = "none"`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Operator {
    /// `operator`.
    role: String,
}

/// Who calls.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Me {
    User(UserView),
    Operator(Operator),
}

fn page_query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::invalid(e.body_text()))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "accounts",
    operation_id = "me",
    summary = "Who calls",
    responses((status = 200, description = "The caller", body = Me))
)]
pub async fn me(State(s): State<Shared>, Caller(actor): Caller) -> Answer<Response> {
    Ok(match s.app.me(actor).await? {
        Some(user) => axum::Json(UserView::from(&user)).into_response(),
        None => axum::Json(serde_json::json!({"role": "operator"})).into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/me/credits",
    tag = "accounts",
    operation_id = "my_credits",
    summary = "The caller's balance and the latest entries of their ledger",
    params(PageQuery),
    responses(
        (status = 200, description = "The credits", body = CreditsView),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Invalid),
    )
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    email: String,
    password: String,
}

/// A session just opened: its token (shown this once) and its user.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Session {
    /// Send it as `Authorization: Bearer <token>`.
    token: String,
    user: UserView,
}

#[utoipa::path(
    post,
    path = "/sessions",
    tag = "accounts",
    operation_id = "sign_in",
    summary = "Sign in with email and password for a session token",
    security(()),
    request_body = Login,
    responses(
        (status = 201, description = "Signed in", body = Session),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 429, response = super::openapi::TooManyRequests),
        (status = 503, response = super::openapi::Unavailable),
    )
)]
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

#[utoipa::path(
    delete,
    path = "/sessions",
    tag = "accounts",
    operation_id = "sign_out",
    summary = "End the session whose token signs this request",
    responses((status = 204, description = "Signed out"))
)]
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

#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    operation_id = "list_users",
    summary = "The users",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = Vec<UserView>),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Invalid),
    )
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/users",
    tag = "admin",
    operation_id = "add_user",
    summary = "Add a user (an administrator with `admin`)",
    request_body = NewUser,
    responses(
        (status = 201, description = "The user", body = UserView),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
    )
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/users/{email}/keys",
    tag = "admin",
    operation_id = "create_key",
    summary = "Make an API key for a user (its secret is shown this once)",
    params(("email" = String, Path, description = "The user's email")),
    request_body = NewKey,
    responses(
        (status = 201, description = "The key, with its secret", body = NewKeyView),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
    )
)]
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

#[utoipa::path(
    get,
    path = "/admin/users/{email}/keys",
    tag = "admin",
    operation_id = "list_keys",
    summary = "A user's API keys (their first characters only)",
    params(("email" = String, Path, description = "The user's email")),
    responses(
        (status = 200, description = "The keys", body = Vec<ApiKeyView>),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn user_keys(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(email): Path<String>,
) -> Answer<axum::Json<Vec<ApiKeyView>>> {
    let keys = s.app.keys(actor, &email).await?;
    Ok(axum::Json(keys.iter().map(ApiKeyView::from).collect()))
}

#[utoipa::path(
    delete,
    path = "/admin/keys/{id}",
    tag = "admin",
    operation_id = "revoke_key",
    summary = "Revoke an API key: it no longer signs anyone in",
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key, revoked", body = ApiKeyView),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
    )
)]
pub async fn revoke_key(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(raw): Path<String>,
) -> Answer<axum::Json<ApiKeyView>> {
    let id: ApiKeyId = super::input::id(&raw, "key")?;
    let key = s.app.revoke_key(actor, id).await?;
    Ok(axum::Json(ApiKeyView::from(&key)))
}

#[utoipa::path(
    get,
    path = "/admin/users/{email}/credits",
    tag = "admin",
    operation_id = "user_credits",
    summary = "A user's balance and the latest entries of their ledger",
    params(("email" = String, Path, description = "The user's email"), PageQuery),
    responses(
        (status = 200, description = "The credits", body = CreditsView),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Invalid),
    )
)]
pub async fn user_credits(
    State(s): State<Shared>,
    Caller(actor): Caller,
    Path(email): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<axum::Json<CreditsView>> {
    let q = page_query(query)?;
    let user = s.app.user_by_email(actor, &email).await?;
    let credits = s.app.credits(actor, user.id).await?;
    let limit = q.limit.unwrap_or(50);
    let ledger = if limit == 0 {
        Vec::new()
    } else {
        s.app.ledger(actor, user.id, q.before, limit).await?
    };
    Ok(axum::Json(CreditsView::of(&user, credits, &ledger)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    amount: i64,
    /// `purchase` (default) or `bonus`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/users/{email}/credits",
    tag = "admin",
    operation_id = "grant_credits",
    summary = "Grant credits to a user",
    params(("email" = String, Path, description = "The user's email")),
    request_body = NewGrant,
    responses(
        (status = 201, description = "The ledger entry", body = LedgerEntryView),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
    )
)]
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

#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    operation_id = "audit_log",
    summary = "The audit log, newest first",
    params(PageQuery),
    responses(
        (status = 200, description = "Entries", body = Vec<AuditEntryView>),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Invalid),
    )
)]
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

#[utoipa::path(
    get,
    path = "/admin/accounts",
    tag = "admin",
    operation_id = "provider_accounts",
    summary = "The provider accounts this node pools, with their health",
    responses(
        (status = 200, description = "The accounts", body = Vec<crate::app::AccountView>),
        (status = 403, response = super::openapi::Forbidden),
    )
)]
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
