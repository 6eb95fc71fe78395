//! The HTTP API as clients see it: campaigns, validation and every boundary, the committed
//! OpenAPI and AsyncAPI documents.

mod asyncapi;
mod boundary_sweep;
mod campaigns;
mod openapi;
mod validation;
