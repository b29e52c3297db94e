//! Pieces every layer above may use: request classification, conditional requests, the edge's
//! own JSON answers, forwarding headers, connection activity, the calendar, and the one
//! outbound client. Pure functions apart from [`client`].

pub mod activity;
pub mod answer;
pub mod client;
pub mod conditional;
pub mod date;
pub mod forwarding;
pub mod json;
pub mod route;
