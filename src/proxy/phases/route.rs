//! Route: the alias the client asked for, in the current route table.

use super::super::outcome::{Next, Outcome};
use super::super::session::{ClientRequest, Session};
use crate::api::{ApiError, ErrorKind};
use crate::route::ModelRoute;

/// The alias's route, or `model_not_found`.
pub fn choose<'a>(s: &Session<'a>, request: &ClientRequest) -> Next<&'a ModelRoute> {
    let table = s.table;
    table
        .model(&request.view.model)
        .map(|r| &**r)
        .ok_or_else(|| {
            Outcome::Fail(
                ApiError::new(
                    ErrorKind::NotFound,
                    "model_not_found",
                    format!(
                        "The model `{}` does not exist or you do not have access to it.",
                        crate::api::bounded(&request.view.model)
                    ),
                )
                .with_param("model"),
            )
        })
}
