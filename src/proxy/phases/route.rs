//! Route: the alias the client asked for, in the current route table.

use super::super::outcome::{Next, Outcome};
use super::super::session::{ClientRequest, Session};
use crate::api::{ApiError, ErrorKind};
use crate::route::{ModelRoute, RouteTable};

/// The alias's route, or `model_not_found`.
pub fn choose<'a>(s: &Session<'a>, request: &ClientRequest) -> Next<&'a ModelRoute> {
    route_for(s.table, &request.view.model).map_err(Outcome::Fail)
}

/// The route of `alias` in `table`.
fn route_for<'a>(table: &'a RouteTable, alias: &str) -> Result<&'a ModelRoute, ApiError> {
    table.model(alias).map(|r| &**r).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "model_not_found",
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                crate::api::bounded(alias)
            ),
        )
        .with_param("model")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn an_unknown_alias_is_a_404_naming_the_model_parameter() {
        let cfg = "[providers.m]\nkind = \"mock\"\n\n[models.fast]\ntargets = [{ provider = \"m\", model = \"mock-1\" }]\n";
        let table = RouteTable::compile(&Config::parse(cfg).unwrap()).unwrap();
        assert_eq!(&*route_for(&table, "fast").unwrap().alias, "fast");
        let err = route_for(&table, "slow").unwrap_err();
        assert_eq!(
            (err.status(), err.code, err.param),
            (404, "model_not_found", Some("model"))
        );
        // A hostile alias is bounded in the message.
        let long = "x".repeat(10_000);
        assert!(route_for(&table, &long).unwrap_err().message.len() < 1_000);
    }
}
