//! The HTTP API as clients see it: campaigns and their live controls, named admin tokens,
//! verified users, validation and every boundary, the committed OpenAPI and AsyncAPI documents.

mod admin_tokens;
mod asyncapi;
pub(crate) mod boundary_sweep;
mod campaign_create;
mod campaigns;
mod controls;
mod door;
mod guesses;
mod http2;
mod openapi;
mod slow_clients;
mod user_auth;
mod validation;
