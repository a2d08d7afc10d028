//! Entry points for the fuzz targets (`fuzz/`, built with `--cfg fuzzing`; absent from every other
//! build): what the server parses from a client before any engine call, reached as a request reaches it.

use crate::http::Query;
use crate::routes::{container_create, container_filters::ListFilter};

/// A `POST /containers/create?QUERY` body: the query's name, then the body as create options.
pub fn create_request(query: &str, body: &[u8]) -> Result<(), crate::error::ApiError> {
    let query = Query::parse(Some(query));
    container_create::options(body, query.get("name"))?;
    Ok(())
}

/// A `GET /containers/json?QUERY`: docker's flags and the `filters` JSON, as the list parses them.
pub fn list_query(query: &str) -> Result<(), crate::error::ApiError> {
    let query = Query::parse(Some(query));
    query.flag("all")?;
    query.number::<usize>("limit")?;
    ListFilter::parse(query.filters()?)?;
    Ok(())
}
