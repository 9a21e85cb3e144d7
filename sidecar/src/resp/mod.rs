//! The Redis protocol: parsing requests ([`parse`]) and writing replies ([`reply`]).

pub mod parse;
pub mod reply;

pub use parse::{parse_request, ProtocolError, RequestLimits};
pub use reply::{Protocol, Reply};
