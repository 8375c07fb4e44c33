//! Who acts: every use case is run on behalf of an actor, and sees only what that actor may.

use super::UserId;

/// The one on whose behalf a use case runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Actor {
    /// Whoever runs the binary on the machine that holds the data (the CLI without a server):
    /// sees and changes everything, and owns what it creates with no owner.
    Operator,
    /// A signed-in user of a server: owns what they create and sees only that.
    User(UserId),
    /// An administrator of a server: owns what they create and sees everything.
    Admin(UserId),
}

impl Actor {
    /// The owner written on what this actor creates.
    pub fn owner(self) -> Option<UserId> {
        match self {
            Self::Operator => None,
            Self::User(id) | Self::Admin(id) => Some(id),
        }
    }

    /// Whether this actor sees everything rather than only what it owns.
    pub fn sees_all(self) -> bool {
        matches!(self, Self::Operator | Self::Admin(_))
    }

    /// Whether this actor may see or change what `owner` owns.
    pub fn may_see(self, owner: Option<UserId>) -> bool {
        self.sees_all() || (owner.is_some() && owner == self.owner())
    }

    /// The owner a query must be limited to: `None` for an actor that sees everything.
    pub fn scope(self) -> Option<UserId> {
        if self.sees_all() { None } else { self.owner() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_sees_only_what_they_own() {
        let (a, b) = (UserId::new(), UserId::new());
        assert!(Actor::User(a).may_see(Some(a)));
        assert!(!Actor::User(a).may_see(Some(b)));
        assert!(!Actor::User(a).may_see(None));
        assert_eq!(Actor::User(a).scope(), Some(a));
    }

    #[test]
    fn the_operator_and_admins_see_everything() {
        let (a, b) = (UserId::new(), UserId::new());
        assert!(Actor::Operator.may_see(None));
        assert!(Actor::Operator.may_see(Some(b)));
        assert!(Actor::Admin(a).may_see(Some(b)));
        assert_eq!(Actor::Admin(a).scope(), None);
        assert_eq!(Actor::Admin(a).owner(), Some(a));
        assert_eq!(Actor::Operator.owner(), None);
    }
}
