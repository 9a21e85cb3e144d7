//! The Redis protocol: parsing requests ([`parse`]) and writing replies ([`reply`]).

pub mod parse;
pub mod reply;

pub use parse::{ProtocolError, RequestLimits, RequestParser};
pub use reply::{Protocol, Reply};
