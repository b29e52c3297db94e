//! Forwarding: the MCP endpoint of each resource ([`proxy::Endpoint`]), the MCP policy's reading
//! of a request ([`inspect`]), its record ([`audit`]) and its filtering of list answers ([`lists`]), the streaming exchange with the MCP server and its answer's deadline ([`deadline`]), the bounded upload, the upstream clients and their connection pool, and
//! the main listener's response body.

pub mod audit;
pub mod body;
pub mod deadline;
pub mod expiry;
pub mod inspect;
pub mod lists;
pub mod pool;
pub mod proxy;
pub mod upload;
pub mod upstream;
