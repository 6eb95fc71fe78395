//! The HTTP API as clients see it: campaigns, named admin tokens, validation and every boundary, the committed
//! OpenAPI and AsyncAPI documents.

mod admin_tokens;
mod asyncapi;
mod boundary_sweep;
mod campaigns;
mod openapi;
mod validation;
