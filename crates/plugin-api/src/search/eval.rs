//! The reference evaluator: what a filter and an ordering mean, over plugin-api types.
