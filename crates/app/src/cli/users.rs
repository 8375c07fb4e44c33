//! `user add | list`, `key create | list | revoke`, `credits grant | show`, `audit`: a server's
//! accounts, managed by the operator on the machine that holds the data. Input is checked
//! before the catalogue is opened, so a mistake changes nothing.

use std::fmt::Write as _;
use std::io::Read as _;

use super::args::{CreditsCommand, KeyCommand, UserCommand};
use super::load_parsed;
use super::output::Out;
use crate::api::{ApiKeyView, AuditEntryView, CreditsView, NewKeyView, UserView};
use crate::app::App;
use crate::config::Config;
use crate::domain::{
    Actor, ApiKeyId, Email, GrantKind, UserRole, amount_of, check_password, key_name, note_of,
};
use crate::error::AppError;
use crate::wiring;

/// The CLI acts as the operator: whoever runs it where the data is.
const OPERATOR: Actor = Actor::Operator;

/// More than any password line: stdin is read no further.
const MAX_PASSWORD_BYTES: u64 = 4096;

async fn app(config: &Config, create: bool) -> Result<std::sync::Arc<App>, AppError> {
    wiring::open(config, wiring::providers(config)?, create).await
}

pub(super) fn checked_email(raw: &str) -> Result<Email, AppError> {
    Ok(Email::parse(raw)?)
}

pub async fn user(config: &Config, command: UserCommand, out: &Out) -> Result<u8, AppError> {
    match command {
        UserCommand::Add {
            email,
            admin,
            password_stdin,
        } => {
            checked_email(&email)?;
            let password = new_password(password_stdin)?;
            let role = if admin {
                UserRole::Admin
            } else {
                UserRole::User
            };
            let app = app(config, true).await?;
            let user = app
                .add_user(OPERATOR, &email, role, password.as_deref())
                .await?;
            let view = UserView::from(&user);
            out.result(&view, || user_line(&view));
            Ok(0)
        }
        UserCommand::List { limit } => {
            let users = match app(config, false).await {
                Err(AppError::NotFound(_)) => Vec::new(),
                Ok(app) => app.users(OPERATOR, None, limit).await?,
                Err(e) => return Err(e),
            };
            let views: Vec<UserView> = users.iter().map(UserView::from).collect();
            out.result(&views, || users_table(&views));
            Ok(0)
        }
    }
}

/// With `--password-stdin`, the new user's password, read and checked.
pub(super) fn new_password(from_stdin: bool) -> Result<Option<String>, AppError> {
    if !from_stdin {
        return Ok(None);
    }
    let p = read_password()?;
    check_password(&p)?;
    Ok(Some(p))
}

/// One line of stdin without its line ending.
fn read_password() -> Result<String, AppError> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_PASSWORD_BYTES + 1)
        .read_to_end(&mut input)
        .map_err(|e| AppError::Invalid(format!("cannot read the password from stdin: {e}")))?;
    if input.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(AppError::Invalid(
            "the password on stdin is longer than 4 KiB".into(),
        ));
    }
    let text = String::from_utf8(input)
        .map_err(|_| AppError::Invalid("the password on stdin is not UTF-8".into()))?;
    let line = text.lines().next().unwrap_or_default();
    Ok(line.to_owned())
}

pub async fn key(config: &Config, command: KeyCommand, out: &Out) -> Result<u8, AppError> {
    match command {
        KeyCommand::Create { user, name } => {
            checked_email(&user)?;
            key_name(&name)?;
            let app = app(config, false).await?;
            let (key, secret) = app.create_key(OPERATOR, &user, &name).await?;
            print_new_key(
                out,
                &NewKeyView {
                    key: secret.expose().to_owned(),
                    record: ApiKeyView::from(&key),
                },
                &user,
            );
            Ok(0)
        }
        KeyCommand::List { user } => {
            checked_email(&user)?;
            let keys = app(config, false).await?.keys(OPERATOR, &user).await?;
            let views: Vec<ApiKeyView> = keys.iter().map(ApiKeyView::from).collect();
            out.result(&views, || keys_table(&views));
            Ok(0)
        }
        KeyCommand::Revoke { id } => {
            let id: ApiKeyId = load_parsed(&id)?;
            let key = app(config, false).await?.revoke_key(OPERATOR, id).await?;
            let view = ApiKeyView::from(&key);
            out.result(&view, || revoked_line(&view));
            Ok(0)
        }
    }
}

pub async fn credits(config: &Config, command: CreditsCommand, out: &Out) -> Result<u8, AppError> {
    match command {
        CreditsCommand::Grant {
            user,
            amount,
            note,
            kind,
        } => {
            checked_email(&user)?;
            amount_of(amount)?;
            note_of(note.as_deref())?;
            let kind = GrantKind::parse(&kind)?;
            let app = app(config, false).await?;
            app.grant(OPERATOR, &user, amount, kind, note.as_deref())
                .await?;
            show(&app, &user, 1, out).await
        }
        CreditsCommand::Show { user, limit } => {
            checked_email(&user)?;
            show(&*app(config, false).await?, &user, limit, out).await
        }
    }
}

async fn show(app: &App, email: &str, limit: u32, out: &Out) -> Result<u8, AppError> {
    let user = app.user_by_email(OPERATOR, email).await?;
    let credits = app.credits(OPERATOR, user.id).await?;
    let ledger = if limit == 0 {
        Vec::new()
    } else {
        app.ledger(OPERATOR, user.id, None, limit).await?
    };
    let view = CreditsView::of(&user, credits, &ledger);
    out.result(&view, || credits_text(&user.email.to_string(), &view));
    Ok(0)
}

pub async fn audit(
    config: &Config,
    before: Option<i64>,
    limit: u32,
    out: &Out,
) -> Result<u8, AppError> {
    let entries = match app(config, false).await {
        Err(AppError::NotFound(_)) => Vec::new(),
        Ok(app) => app.audit_log(OPERATOR, before, limit).await?,
        Err(e) => return Err(e),
    };
    let views: Vec<AuditEntryView> = entries.iter().map(AuditEntryView::from).collect();
    out.result(&views, || audit_table(&views));
    Ok(0)
}

// The human forms, shared with `--server` mode (`remote.rs`).

pub(super) fn user_line(v: &UserView) -> String {
    format!("user {} {} ({})", v.id, v.email, v.role)
}

pub(super) fn users_table(views: &[UserView]) -> String {
    let mut text = String::new();
    for v in views {
        let disabled = if v.disabled { " disabled" } else { "" };
        let _ = writeln!(text, "{}  {:<6} {}{disabled}", v.id, v.role, v.email);
    }
    text.trim_end().to_owned()
}

/// A new key: the secret alone on stdout (for a pipe), what it is on stderr; or one document.
pub(super) fn print_new_key(out: &Out, view: &NewKeyView, user: &str) {
    if out.json {
        out.print_json(view);
    } else {
        out.text(&view.key);
        eprintln!(
            "API key {} ({}) for {user}: it is shown this once and cannot be shown again",
            view.record.id, view.record.name
        );
    }
}

pub(super) fn keys_table(views: &[ApiKeyView]) -> String {
    let mut text = String::new();
    for v in views {
        let state = match (&v.revoked_at, &v.last_used_at) {
            (Some(at), _) => format!("revoked {at}"),
            (None, Some(at)) => format!("last used {at}"),
            (None, None) => "never used".to_owned(),
        };
        let _ = writeln!(text, "{}  {}…  {:<16} {state}", v.id, v.prefix, v.name);
    }
    text.trim_end().to_owned()
}

pub(super) fn revoked_line(v: &ApiKeyView) -> String {
    format!("key {} ({}) revoked", v.id, v.name)
}

pub(super) fn credits_text(email: &str, view: &CreditsView) -> String {
    let mut text = format!("{email}: {} credits", view.balance);
    if view.held > 0 {
        let _ = write!(text, " ({} held by running generations)", view.held);
    }
    for e in &view.ledger {
        let _ = write!(
            text,
            "\n{}  {:<8} {:>+6}  = {:<6} {}{}",
            e.at,
            e.kind,
            e.amount,
            e.balance_after,
            e.generation_id.as_deref().unwrap_or(""),
            e.note.as_deref().unwrap_or("")
        );
    }
    text
}

pub(super) fn audit_table(views: &[AuditEntryView]) -> String {
    let mut text = String::new();
    for v in views {
        let _ = writeln!(
            text,
            "{:>6}  {}  {:<13} {:<45} by {}  {}",
            v.id,
            v.at,
            v.action,
            v.target,
            v.actor.as_deref().unwrap_or("operator"),
            v.details
        );
    }
    text.trim_end().to_owned()
}
