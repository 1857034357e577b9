//! `Display` for the search tree: valid filter and `order_by` text that parses back to the
//! same tree (for logs, error messages and round-trip tests).

use super::{Comparison, Entity, Expr, Key, Op, OrderBy, Value};
use std::fmt::{self, Display, Formatter, Write};

impl Display for Op {
    /// The comparator as written in a filter: `=`, `LIKE`, `NOT IN`, `IS NOT NULL`, ...
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
            Op::RLike => "RLIKE",
        })
    }
}

/// Whether `s` can be written without quotes as a key.
fn is_plain(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Writes `s` between `quote`s, escaping the quote and backslashes with a backslash.
fn write_quoted(f: &mut Formatter<'_>, s: &str, quote: char) -> fmt::Result {
    f.write_char(quote)?;
    for c in s.chars() {
        if c == quote || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char(quote)
}

impl Display for Key {
    /// `metrics.loss`, ``tags.`mlflow.source.type` ``, or a bare attribute name.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let prefix = match self.entity {
            Entity::Attribute if is_plain(&self.name) => return f.write_str(&self.name),
            Entity::Attribute => "attributes",
            Entity::Metric => "metrics",
            Entity::Param => "params",
            Entity::Tag => "tags",
            Entity::Dataset => "datasets",
            Entity::Metadata => "metadata",
            Entity::Span => "span",
            Entity::Feedback => "feedback",
            Entity::Expectation => "expectation",
            Entity::Issue => "issue",
        };
        write!(f, "{prefix}.")?;
        if is_plain(&self.name) {
            f.write_str(&self.name)
        } else {
            write_quoted(f, &self.name, '`')
        }
    }
}

impl Display for Value {
    /// `'text'`, `1.5`, `('a', 'b')`, or nothing for [`Value::None`].
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write_quoted(f, s, '\''),
            // Rust prints the shortest text that parses back to the same f64, and integral
            // values without a fraction (`3`, not `3.0`), so integers stay integers.
            Value::Number(n) => write!(f, "{n}"),
            Value::List(items) => {
                f.write_char('(')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_quoted(f, item, '\'')?;
                }
                f.write_char(')')
            }
            Value::None => Ok(()),
        }
    }
}

impl Display for Comparison {
    /// `<key> <op> <value>`, or `<key> IS [NOT] NULL`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.value {
            Value::None => write!(f, "{} {}", self.key, self.op),
            _ => write!(f, "{} {} {}", self.key, self.op, self.value),
        }
    }
}

impl Display for Expr {
    /// Operands joined by ` AND ` / ` OR `; nested groups are parenthesised where precedence
    /// (or the grouping of nested `AND`s) needs it.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (items, sep) = match self {
            Expr::Compare(c) => return c.fmt(f),
            Expr::And(items) => (items, " AND "),
            Expr::Or(items) => (items, " OR "),
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            let wrap = !matches!(
                (self, item),
                (_, Expr::Compare(_)) | (Expr::Or(_), Expr::And(_))
            );
            if wrap {
                write!(f, "({item})")?;
            } else {
                write!(f, "{item}")?;
            }
        }
        Ok(())
    }
}

impl Display for OrderBy {
    /// `<key> ASC` or `<key> DESC`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let direction = if self.ascending { "ASC" } else { "DESC" };
        write!(f, "{} {direction}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{SearchKind, parse_filter, parse_order_by};
    use proptest::prelude::*;

    fn c(entity: Entity, name: &str, op: Op, value: Value) -> Expr {
        Expr::Compare(Comparison {
            key: Key::new(entity, name),
            op,
            value,
        })
    }

    #[test]
    fn writes_filter_syntax() {
        let e = Expr::And(vec![
            Expr::Or(vec![
                c(Entity::Metric, "a b", Op::Gt, Value::Number(1.5)),
                c(Entity::Tag, "t", Op::IsNull, Value::None),
            ]),
            c(
                Entity::Attribute,
                "run_id",
                Op::NotIn,
                Value::List(vec!["x".into(), "it's".into()]),
            ),
            c(Entity::Param, "p", Op::Like, Value::String(r"a\%".into())),
        ]);
        assert_eq!(
            e.to_string(),
            r"(metrics.`a b` > 1.5 OR tags.t IS NULL) AND run_id NOT IN ('x', 'it\'s') AND params.p LIKE 'a\\%'"
        );
        let o = Expr::Or(vec![
            Expr::And(vec![
                c(Entity::Dataset, "name", Op::Eq, Value::String("d".into())),
                c(Entity::Attribute, "start_time", Op::Ge, Value::Number(3.0)),
            ]),
            c(
                Entity::Attribute,
                "run name",
                Op::Ne,
                Value::String(String::new()),
            ),
        ]);
        assert_eq!(
            o.to_string(),
            "datasets.name = 'd' AND start_time >= 3 OR attributes.`run name` != ''"
        );
        let order = OrderBy {
            key: Key::new(Entity::Tag, "mlflow.user"),
            ascending: false,
        };
        assert_eq!(order.to_string(), "tags.`mlflow.user` DESC");
    }

    #[test]
    fn nested_same_kind_groups_are_parenthesised_and_reparse_flat() {
        let a = c(Entity::Metric, "a", Op::Eq, Value::Number(1.0));
        let b = c(Entity::Metric, "b", Op::Eq, Value::Number(2.0));
        let nested = Expr::And(vec![Expr::And(vec![a.clone(), b.clone()]), a.clone()]);
        assert_eq!(
            nested.to_string(),
            "(metrics.a = 1 AND metrics.b = 2) AND metrics.a = 1"
        );
        assert_eq!(
            parse_filter(SearchKind::Runs, &nested.to_string()).unwrap(),
            Some(Expr::And(vec![a.clone(), b, a]))
        );
    }

    #[test]
    fn other_kinds_round_trip() {
        for (kind, text) in [
            (
                SearchKind::Experiments,
                "name LIKE 'x%' AND experiment_id IN ('1', '2') OR creation_time < 5",
            ),
            (SearchKind::Experiments, "tags.`a.b` IS NOT NULL"),
            (
                SearchKind::RegisteredModels,
                "name NOT IN ('m') AND tags.t ILIKE '%x'",
            ),
            (
                SearchKind::ModelVersions,
                "version_number >= 10 AND (run_id IN ('r') OR source_path = 's')",
            ),
            (
                SearchKind::LoggedModels,
                "creation_timestamp > -1 AND metrics.acc >= 0.25 AND params.p != 'q'",
            ),
        ] {
            let e = parse_filter(kind, text).unwrap().unwrap();
            assert_eq!(e.to_string(), text);
            assert_eq!(parse_filter(kind, &e.to_string()).unwrap(), Some(e));
        }
    }

    /// `e` with nested groups of the same kind flattened, as the parser builds it.
    fn normalise(e: Expr) -> Expr {
        fn flatten(items: Vec<Expr>, or: bool) -> Vec<Expr> {
            let mut out = Vec::new();
            for item in items.into_iter().map(normalise) {
                match (item, or) {
                    (Expr::Or(inner), true) | (Expr::And(inner), false) => out.extend(inner),
                    (item, _) => out.push(item),
                }
            }
            out
        }
        match e {
            Expr::And(items) => Expr::And(flatten(items, false)),
            Expr::Or(items) => Expr::Or(flatten(items, true)),
            e => e,
        }
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::string::string_regex("(?s).{0,8}").unwrap(),
            prop::string::string_regex("[a-z_'\"`\\\\%. ]{0,8}").unwrap(),
        ]
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            (-5i32..5).prop_map(f64::from),
        ]
    }

    fn string_value(op: Op) -> BoxedStrategy<Value> {
        match op {
            Op::In | Op::NotIn => prop::collection::vec(any_text(), 1..4)
                .prop_map(Value::List)
                .boxed(),
            Op::IsNull | Op::IsNotNull => Just(Value::None).boxed(),
            _ => any_text().prop_map(Value::String).boxed(),
        }
    }

    /// A valid comparison of a runs filter.
    fn run_comparison() -> impl Strategy<Value = Comparison> {
        let numeric_op = prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge]);
        let metric = (any_text(), numeric_op.clone(), finite())
            .prop_map(|(k, op, v)| (Key::new(Entity::Metric, k), op, Value::Number(v)));
        let numeric_attr = (
            prop::sample::select(vec!["start_time", "end_time"]),
            numeric_op,
            finite(),
        )
            .prop_map(|(k, op, v)| (Key::attribute(k), op, Value::Number(v)));
        let kv_ops = vec![
            Op::Eq,
            Op::Ne,
            Op::Like,
            Op::ILike,
            Op::IsNull,
            Op::IsNotNull,
        ];
        let kv = (
            prop::sample::select(vec![Entity::Param, Entity::Tag]),
            any_text(),
            prop::sample::select(kv_ops),
        )
            .prop_flat_map(|(entity, k, op)| {
                string_value(op).prop_map(move |v| (Key::new(entity, k.clone()), op, v))
            });
        let string_attr = (
            prop::sample::select(vec![
                "run_id",
                "run_name",
                "user_id",
                "status",
                "artifact_uri",
            ]),
            prop::sample::select(vec![Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn]),
        )
            .prop_filter("lists only for run_id", |(k, op)| {
                *k == "run_id" || !matches!(op, Op::In | Op::NotIn)
            })
            .prop_flat_map(|(k, op)| {
                string_value(op).prop_map(move |v| (Key::attribute(k), op, v))
            });
        let dataset = (
            prop::sample::select(vec!["name", "digest", "context"]),
            prop::sample::select(vec![Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn]),
        )
            .prop_flat_map(|(k, op)| {
                string_value(op).prop_map(move |v| (Key::new(Entity::Dataset, k), op, v))
            });
        prop_oneof![metric, numeric_attr, kv, string_attr, dataset]
            .prop_map(|(key, op, value)| Comparison { key, op, value })
    }

    fn run_expr() -> impl Strategy<Value = Expr> {
        run_comparison()
            .prop_map(Expr::Compare)
            .prop_recursive(4, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                    prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
                ]
            })
    }

    fn run_order_by() -> impl Strategy<Value = OrderBy> {
        let key = prop_oneof![
            (
                prop::sample::select(vec![Entity::Metric, Entity::Param, Entity::Tag]),
                any_text()
            )
                .prop_map(|(e, k)| Key::new(e, k)),
            prop::sample::select(vec![
                "run_id",
                "run_name",
                "user_id",
                "status",
                "start_time",
                "end_time",
                "artifact_uri"
            ])
            .prop_map(Key::attribute),
        ];
        (key, any::<bool>()).prop_map(|(key, ascending)| OrderBy { key, ascending })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn printed_filters_parse_back_to_the_same_tree(e in run_expr()) {
            let text = e.to_string();
            let parsed = parse_filter(SearchKind::Runs, &text);
            prop_assert!(parsed.is_ok(), "{text}: {:?}", parsed.err());
            prop_assert_eq!(parsed.unwrap(), Some(normalise(e)), "{}", text);
        }

        #[test]
        fn printed_order_by_parses_back(order in prop::collection::vec(run_order_by(), 0..4)) {
            let text: Vec<String> = order.iter().map(ToString::to_string).collect();
            let parsed = parse_order_by(SearchKind::Runs, &text);
            prop_assert!(parsed.is_ok(), "{text:?}: {:?}", parsed.err());
            prop_assert_eq!(parsed.unwrap(), order);
        }
    }
}
