//! REST client placeholder.
pub struct RestClient;
pub struct RestConfig;
pub struct RestError;
