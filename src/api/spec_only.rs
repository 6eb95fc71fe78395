//! [`SpecOnly`]: the API's types without their services, so the OpenAPI document can be written
//! with nothing connected (`firstcome openapi`). poem-openapi builds the document from the types
//! alone; only serving needs the values.

use std::{collections::HashMap, marker::PhantomData};

use poem::{endpoint::BoxEndpoint, http::Method};
use poem_openapi::{
    registry::{MetaApi, Registry},
    OpenApi,
};

/// Describes `T`'s operations; serves none of them.
pub struct SpecOnly<T>(PhantomData<T>);

impl<T> Default for SpecOnly<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T: OpenApi> OpenApi for SpecOnly<T> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, _: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {}
}
