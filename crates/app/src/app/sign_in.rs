//! Who a bearer token stands for: an API key (`atl_…`), a password session (`ats_…`), or a
//! JSON Web Token of a trusted sign-in service (`[server.jwt]`, Supabase Auth), whose subject
//! is the Atelier user's id, the user being made the first time one of their tokens arrives.

use super::App;
use crate::catalogue::CatalogueError;
use crate::domain::{Actor, AuditAction, AuditEntry, Email, User, UserId, UserRole};
use crate::error::AppError;
use crate::jwt::{JwtError, JwtSubject, looks_like_jwt};

impl App {
    /// The actor a token stands for; a revoked, expired, unknown or forged one, or a disabled
    /// user's, is "not found". A JWT whose keys cannot be fetched now is `Internal` (the
    /// server cannot tell, which is not the caller's fault).
    pub async fn authenticate(&self, token: &str) -> Result<Actor, AppError> {
        if let Some(actor) = self.authenticate_key(token).await? {
            return Ok(actor);
        }
        if let Some(actor) = self.authenticate_session(token).await? {
            return Ok(actor);
        }
        if let Some(jwt) = &self.jwt
            && looks_like_jwt(token)
        {
            return match jwt.verify(token).await {
                Ok(subject) => self.jwt_user(subject).await,
                Err(JwtError::Invalid(why)) => {
                    tracing::debug!(%why, "bearer token refused");
                    Err(AppError::NotFound("API key, session or token".into()))
                }
                Err(e @ JwtError::Unavailable(_)) => Err(AppError::Internal(e.to_string())),
            };
        }
        Err(AppError::NotFound("API key or session".into()))
    }

    /// The user a valid token names, made now if this is their first request. Its address is
    /// the token's (`<id>@users.invalid` when it has none, e.g. a phone sign-in); an address
    /// already taken by another Atelier user is refused rather than merged, since the two may
    /// not be the same person.
    async fn jwt_user(&self, subject: JwtSubject) -> Result<Actor, AppError> {
        let id = UserId::from_uuid(subject.id);
        match self.directory.user(id).await {
            Ok(user) if user.disabled => {
                return Err(AppError::NotFound("API key, session or token".into()));
            }
            Ok(user) => return Ok(user.actor()),
            Err(CatalogueError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let email = subject
            .email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .map_or_else(|| Email::parse(&format!("{id}@users.invalid")), Ok)?;
        let mut user = User::new(email, UserRole::User);
        user.id = id;
        let initial = i64::from(self.credits.initial);
        let audit = AuditEntry::new(
            Actor::User(id),
            AuditAction::UserAdd,
            format!("user:{id}"),
            serde_json::json!({"email": user.email.as_str(), "role": "user", "initial_credits": initial, "via": "jwt"}),
        );
        match self.directory.add_user(&user, None, initial, &audit).await {
            Ok(()) => Ok(user.actor()),
            // Two first requests at once: the other made the user.
            Err(CatalogueError::Conflict(_)) => match self.directory.user(id).await {
                Ok(user) if !user.disabled => Ok(user.actor()),
                Ok(_) => Err(AppError::NotFound("API key, session or token".into())),
                Err(_) => Err(AppError::Forbidden(
                    "this token's address belongs to another Atelier user; an administrator must settle which account is whose".into(),
                )),
            },
            Err(e) => Err(e.into()),
        }
    }
}
