//! The filter and order-by parser (winnow).
use super::{Expr, OrderBy, SearchKind};
use crate::{Error, Result};

/// Parses `filter` for a search of `kind`; an empty or blank filter is `None`.
pub fn parse_filter(kind: SearchKind, filter: &str) -> Result<Option<Expr>> {
    let _ = (kind, filter);
    Err(Error::unsupported("parse_filter"))
}

/// Parses the `order_by` clauses of a search of `kind`.
pub fn parse_order_by(kind: SearchKind, clauses: &[String]) -> Result<Vec<OrderBy>> {
    let _ = (kind, clauses);
    Err(Error::unsupported("parse_order_by"))
}
